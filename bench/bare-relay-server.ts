import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import Fastify from 'fastify';
import { everything } from './lib/everything-hub.js';

// The least a REST → MCP relay can do: one Fastify route handing the body's arguments to one SDK client of
// server-everything. No auth, validation, queueing, recording or metrics: what the hub's own work is measured
// against, on top of the two-hop ceiling that ignores the cost of joining the two hops.
const client = new Client({ name: 'bare-relay', version: '0' }, { versionNegotiation: { mode: 'auto' } });
await client.connect(
  new StdioClientTransport({ command: process.execPath, args: [everything, 'stdio'], stderr: 'ignore' }),
);
const app = Fastify({ bodyLimit: 1024 * 1024 });
app.post<{ Body: { arguments: Record<string, unknown> } }>('/call', async (req) => {
  const started = performance.now();
  const result = await client.callTool({ name: 'echo', arguments: req.body.arguments });
  return { success: true, ok: true, outcome: 'success', durationMs: performance.now() - started, result };
});
app.get('/ready', async () => ({ ok: true }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.on('SIGTERM', () => {
  void Promise.all([app.close(), client.close()]).then(() => process.exit(0));
});
