// The seed's first stream example, as written plus the bearer token and the stream token:
// start a stream on server 1 (seo), ask it to analyse a page, print the server-response, stop.
//
//   SWITCHBOARD_API_TOKEN=$(cat data/api-token) node examples/clients/stream-seo.mjs https://example.com
//
// SWITCHBOARD_URL defaults to http://127.0.0.1:3000.
import { io } from 'socket.io-client';

const base = process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:3000';
const apiToken = process.env.SWITCHBOARD_API_TOKEN;
if (!apiToken)
  throw new Error('Set SWITCHBOARD_API_TOKEN (the hub prints it on first start; see data/api-token)');
const pageUrl = process.argv[2] ?? 'https://example.com';
const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${apiToken}` };

// Start a streaming session
const response = await fetch(`${base}/api/mcp/stream/start`, {
  method: 'POST',
  headers,
  body: JSON.stringify({
    serverId: 1,
    clientId: 'client-123',
    streamConfig: { topics: ['seo-analysis', 'data-mining'], buffer_size: 1000 },
  }),
});
const started = await response.json();
if (!started.success) throw new Error(`stream/start failed: ${JSON.stringify(started.error)}`);
const { streamId, wsUrl, token } = started;
console.log('Stream started:', streamId);

// Connect via WebSocket (socket.io); the stream token goes in the handshake
const socket = io(`${base}${wsUrl}`, { auth: { token } });
socket.on('connect_error', (err) => {
  console.error('Refused:', err.message);
  process.exit(1);
});

// Send message to server
socket.emit('client-message', {
  type: 'analyze',
  data: { url: pageUrl },
});

// Receive responses
socket.on('server-response', async (data) => {
  console.log('Server processed:', JSON.stringify(data));
  const status = await (await fetch(`${base}/api/mcp/stream/status`, { headers })).json();
  console.log('Stream status:', JSON.stringify(status.streams.find((s) => s.streamId === streamId)));
  await fetch(`${base}/api/mcp/stream/stop`, { method: 'POST', headers, body: JSON.stringify({ streamId }) });
  socket.close();
});

// Subscribe to topics
socket.emit('subscribe-topic', 'seo-analysis');
