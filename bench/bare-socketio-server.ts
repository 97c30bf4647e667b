import { createServer } from 'node:http';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { Server } from 'socket.io';
import { everything } from './lib/everything-hub.js';

// The bare socket.io floor: same library and client path as the hub's streams, with no work behind the events.
// `client-message` is answered with a `server-response` echoing its id; `publish` is broadcast to every socket.
// With BARE_RELAY=1 it is the least a socket.io → MCP relay can do instead: each `client-message` goes to
// server-everything's echo through one SDK client, with no auth, validation, sequencing, recording or metrics.
const relay = process.env.BARE_RELAY === '1' ? await connectEverything() : undefined;

async function connectEverything(): Promise<Client> {
  const client = new Client({ name: 'bare-relay', version: '0' }, { versionNegotiation: { mode: 'auto' } });
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: [everything, 'stdio'], stderr: 'ignore' }),
  );
  return client;
}

const http = createServer((req, res) => {
  if (req.url === '/ready') res.end('ok');
});
const io = new Server(http, { serveClient: false });
io.on('connection', (socket) => {
  socket.on('client-message', async (m: { id: string; data: { message: string } }) => {
    const started = performance.now();
    const result = relay
      ? await relay.callTool({ name: 'echo', arguments: m.data })
      : { content: [{ type: 'text', text: `Echo: ${m.data.message}` }] };
    socket.emit('server-response', {
      id: m.id,
      type: 'echo',
      ok: true,
      result,
      durationMs: performance.now() - started,
      seq: 0,
    });
  });
  socket.on('publish', (m: { topic: string; data: unknown }) => {
    io.emit('topic-message', { topic: m.topic, data: m.data, from: 'bench', seq: 0 });
  });
});
http.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () =>
  io.close(() => void (relay?.close() ?? Promise.resolve()).then(() => process.exit(0))),
);
