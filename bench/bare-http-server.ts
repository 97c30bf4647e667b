import Fastify from 'fastify';

// The bare-HTTP floor: the same framework and client path as the hub, with no work behind the route.
const app = Fastify({ bodyLimit: 1024 * 1024 });
const answer = {
  success: true,
  ok: true,
  outcome: 'success',
  durationMs: 0,
  result: { content: [{ type: 'text', text: `Echo: ${'x'.repeat(55)}` }] },
};
app.post('/call', async () => answer);
app.get('/ready', async () => ({ ok: true }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
