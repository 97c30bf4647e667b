// The seed's "Real-Time Data Mining Stream" example, as written plus the bearer token and the stream token:
// every second it asks server 1 (seo) to mine the next page and prints each server-response; it stops the
// stream after the last url.
//
//   SWITCHBOARD_API_TOKEN=$(cat data/api-token) node examples/clients/stream-data-mining.mjs \
//     https://example.com https://example.org
//
// SWITCHBOARD_URL defaults to http://127.0.0.1:3000; STREAM_INTERVAL_MS (default 1000) sets the pace.
import { io } from 'socket.io-client';

const base = process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:3000';
const apiToken = process.env.SWITCHBOARD_API_TOKEN;
if (!apiToken)
  throw new Error('Set SWITCHBOARD_API_TOKEN (the hub prints it on first start; see data/api-token)');
const urls = process.argv.length > 2 ? process.argv.slice(2) : ['https://example.com'];
const intervalMs = Number(process.env.STREAM_INTERVAL_MS ?? 1000);
const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${apiToken}` };
let next = 0;
const getNextUrl = () => urls[next++];
let received = 0;

// Start streaming session
const response = await fetch(`${base}/api/mcp/stream/start`, {
  method: 'POST',
  headers,
  body: JSON.stringify({
    serverId: 1,
    clientId: 'data-miner-1',
    streamConfig: {
      topics: ['data-mining'],
      buffer_size: 500,
    },
  }),
});

const { streamId, wsUrl, token } = await response.json();

// Connect WebSocket
const socket = io(`${base}${wsUrl}`, { auth: { token } });
let timer;

socket.on('connect', () => {
  console.log('Connected to stream');

  // Subscribe to data mining topic
  socket.emit('subscribe-topic', 'data-mining');

  // Send continuous requests
  timer = setInterval(() => {
    if (next >= urls.length) return clearInterval(timer);
    socket.emit('client-message', {
      type: 'mine-data',
      url: getNextUrl(),
      attributes: ['title', 'meta', 'content'],
    });
  }, intervalMs);
});

socket.on('connect_error', (err) => {
  console.error('Refused:', err.message);
  process.exit(1);
});

socket.on('server-response', async (data) => {
  console.log('Mined data:', JSON.stringify(data));
  if (++received === urls.length) {
    clearInterval(timer);
    await fetch(`${base}/api/mcp/stream/stop`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ streamId }),
    });
    socket.close();
  }
});
