import { createServer } from 'node:http';
import { Server } from 'socket.io';

// The bare socket.io floor: same library and client path as the hub's streams, with no work behind the events.
// `client-message` is answered with a `server-response` echoing its id; `publish` is broadcast to every socket.
const http = createServer((req, res) => {
  if (req.url === '/ready') res.end('ok');
});
const io = new Server(http, { serveClient: false });
io.on('connection', (socket) => {
  socket.on('client-message', (m: { id: string; data: { message: string } }) => {
    socket.emit('server-response', {
      id: m.id,
      type: 'echo',
      ok: true,
      result: { content: [{ type: 'text', text: `Echo: ${m.data.message}` }] },
      durationMs: 0,
      seq: 0,
    });
  });
  socket.on('publish', (m: { topic: string; data: unknown }) => {
    io.emit('topic-message', { topic: m.topic, data: m.data, from: 'bench', seq: 0 });
  });
});
http.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => io.close(() => process.exit(0)));
