// A tiny MCP server for the bundle tests of share_context: `remember` takes the shared context (it declares a
// `context` argument) and answers with what it saw plus a `context` object that extends it.
// Run: node test/helpers/context-server.mjs
import { McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { z } from 'zod';

serveStdio(() => {
  const server = new McpServer({ name: 'context-fixture', version: '1.0.0' });
  server.registerTool(
    'remember',
    {
      description: 'Adds { [key]: value } to the shared context; reports the context it was given.',
      inputSchema: z.object({
        key: z.string(),
        value: z.unknown(),
        context: z.record(z.string(), z.unknown()).optional(),
      }),
    },
    (args) => {
      const out = { saw: args.context ?? null, context: { [args.key]: args.value } };
      return { content: [{ type: 'text', text: JSON.stringify(out) }], structuredContent: out };
    },
  );
  return server;
});
