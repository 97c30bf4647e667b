import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { abortOnClose } from '../http/abort-on-close.js';
import type { UpstreamPool } from '../mcp/upstream-pool.js';
import { createServerSchema, importSchema, serverIdParams, updateServerSchema } from './payloads.js';
import type { ServerRegistry } from './service.js';

const toolParams = z.strictObject({
  id: serverIdParams.shape.id,
  tool: z.string().min(1).max(255),
});
const callBody = z.strictObject({
  arguments: z.record(z.string(), z.unknown()).optional(),
});

export const serverRoutes =
  (registry: ServerRegistry, pool: UpstreamPool): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['servers'];

    app.get('/api/mcp/servers', { schema: { tags, summary: 'List servers' } }, async () => ({
      success: true,
      servers: await registry.list(),
    }));

    app.post(
      '/api/mcp/servers',
      { schema: { tags, summary: 'Register a server', body: createServerSchema } },
      async (req, reply) => {
        const server = await registry.create(req.body);
        return reply.status(201).send({ success: true, server });
      },
    );

    app.post(
      '/api/mcp/servers/import',
      {
        schema: { tags, summary: 'Import an { "mcpServers": { … } } client config file', body: importSchema },
      },
      async (req, reply) => {
        const result = await registry.import(req.body);
        return reply.status(result.created.length > 0 ? 201 : 200).send({ success: true, ...result });
      },
    );

    app.get(
      '/api/mcp/servers/:id',
      {
        schema: {
          tags,
          summary: 'One server, with its negotiated protocol and pool state',
          params: serverIdParams,
        },
      },
      async (req) => ({ success: true, server: await registry.get(req.params.id) }),
    );

    app.patch(
      '/api/mcp/servers/:id',
      { schema: { tags, summary: 'Change a server', params: serverIdParams, body: updateServerSchema } },
      async (req) => ({ success: true, server: await registry.update(req.params.id, req.body) }),
    );

    app.delete(
      '/api/mcp/servers/:id',
      { schema: { tags, summary: 'Remove a server and stop its processes', params: serverIdParams } },
      async (req) => {
        await registry.remove(req.params.id);
        return { success: true, deleted: req.params.id };
      },
    );

    app.get(
      '/api/mcp/servers/:id/tools',
      { schema: { tags, summary: "The server's tools", params: serverIdParams } },
      async (req, reply) => {
        await registry.require(req.params.id);
        const tools = await pool.listTools(req.params.id, { signal: abortOnClose(reply).signal });
        return { success: true, serverId: req.params.id, tools };
      },
    );

    app.post(
      '/api/mcp/servers/:id/tools/:tool/call',
      {
        schema: {
          tags,
          summary: 'Call a tool; the result is the MCP CallToolResult',
          params: toolParams,
          body: callBody,
        },
      },
      async (req, reply) => {
        const { id, tool } = req.params;
        // The pool records this call as a tool_call event, whatever its outcome.
        req.eventRecorded = true;
        const call = await pool.callTool(id, tool, req.body.arguments ?? {}, {
          controller: abortOnClose(reply),
          source: 'rest',
        });
        // The result's JSON is already made (the event log records its size): sent as is, not serialized
        // again, which for a large result (a page's analysis) is the largest cost of the answer.
        const head = JSON.stringify({
          success: true,
          ok: call.outcome === 'success',
          outcome: call.outcome,
          durationMs: call.durationMs,
        });
        return reply
          .type('application/json; charset=utf-8')
          .send(`${head.slice(0, -1)},"result":${call.resultJson}}`);
      },
    );
  };
