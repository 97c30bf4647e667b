import Fastify from 'fastify';
import { directClients, directWorkflow, type Step } from './lib/direct-workflow.js';

// The least an HTTP service running a workflow can do: one Fastify route running the posted steps through one
// SDK client per server process, each step when its dependencies are done (as bench:bundle's ceiling does in
// process). No auth, validation, planning, storing, recording or live updates: it measures what the HTTP hop
// in front of the ceiling costs by itself, which the hub's bundle pays too.
const clients = await directClients();
const app = Fastify({ bodyLimit: 1024 * 1024 });
app.post<{ Body: { steps: Step[] } }>('/workflow', async (req) => {
  const started = performance.now();
  await directWorkflow(clients, req.body.steps);
  return { success: true, status: 'succeeded', durationMs: performance.now() - started };
});
app.get('/ready', async () => ({ ok: true }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.on('SIGTERM', () => {
  void Promise.all([app.close(), ...clients.map((c) => c.close())]).then(() => process.exit(0));
});
