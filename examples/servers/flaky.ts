/**
 * A deliberately misbehaving MCP server for the upstream pool's lifecycle tests: it sleeps (reporting
 * progress and noticing cancellation), crashes mid-call, hangs, fails, throws, and reports what it saw
 * (calls, cancellations, the most calls it ran at once, lookups of its read-only tool, its pid). State is per process, shared by every
 * connection and era instance the SDK builds in it. Run: `node dist/examples/servers/flaky.js`;
 * FLAKY_STUBBORN=1 makes it ignore the end of stdin and SIGTERM.
 */

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  McpServer,
  ProtocolError,
  ProtocolErrorCode,
  type ServerContext,
} from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { z } from 'zod';

const stats = { calls: 0, cancellations: 0, running: 0, maxConcurrent: 0, completed: 0, lookups: 0 };
let extraEnabled = false;

function json(value: Record<string, unknown>) {
  return { content: [{ type: 'text' as const, text: JSON.stringify(value) }], structuredContent: value };
}

/** Resolves after `ms`, or early (with true) when the call is cancelled. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(true);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Counts every call and tracks how many run at once. */
async function tracked<T>(fn: () => Promise<T>): Promise<T> {
  stats.calls++;
  stats.running++;
  stats.maxConcurrent = Math.max(stats.maxConcurrent, stats.running);
  try {
    return await fn();
  } finally {
    stats.running--;
    stats.completed++;
  }
}

function noteCancellation(ctx: ServerContext): void {
  if (ctx.mcpReq.signal.aborted) stats.cancellations++;
}

export function createFlakyServer(): McpServer {
  const server = new McpServer({ name: 'flaky', version: '1.0.0' }, { capabilities: { logging: {} } });

  server.registerTool(
    'sleep',
    {
      description:
        'Waits `ms` milliseconds, reporting progress every `progressEvery` ms; stops when cancelled.',
      inputSchema: z.object({
        ms: z.number().int().min(0).max(600_000),
        progressEvery: z.number().int().min(1).optional(),
      }),
    },
    (args, ctx) =>
      tracked(async () => {
        const token = ctx.mcpReq._meta?.progressToken;
        const started = Date.now();
        let elapsed = 0;
        let step = 0;
        while (elapsed < args.ms) {
          const chunk = Math.min(args.progressEvery ?? args.ms, args.ms - elapsed);
          if (await sleep(chunk, ctx.mcpReq.signal)) {
            noteCancellation(ctx);
            return json({ cancelled: true, sleptMs: Date.now() - started, pid: process.pid });
          }
          elapsed += chunk;
          step++;
          if (args.progressEvery && token !== undefined && elapsed < args.ms) {
            await ctx.mcpReq.notify({
              method: 'notifications/progress',
              params: {
                progressToken: token,
                progress: step,
                total: Math.ceil(args.ms / args.progressEvery),
              },
            });
          }
        }
        return json({ cancelled: false, sleptMs: Date.now() - started, pid: process.pid });
      }),
  );

  server.registerTool(
    'crash',
    {
      description: 'Exits the process in the middle of the call (after `afterMs`).',
      inputSchema: z.object({ afterMs: z.number().int().min(0).max(60_000).optional() }),
    },
    (args) =>
      tracked(async () => {
        await new Promise((resolve) => setTimeout(resolve, args.afterMs ?? 0));
        process.exit(3);
      }),
  );

  server.registerTool('hang', { description: 'Never answers (but counts a cancellation).' }, (ctx) =>
    tracked(
      () =>
        new Promise<never>(() => {
          ctx.mcpReq.signal.addEventListener('abort', () => noteCancellation(ctx), { once: true });
        }),
    ),
  );

  server.registerTool(
    'concurrency',
    {
      description: 'Holds the call for `ms`; reports the most calls this process ran at once, and its pid.',
      inputSchema: z.object({ ms: z.number().int().min(0).max(60_000) }),
    },
    (args, ctx) =>
      tracked(async () => {
        if (await sleep(args.ms, ctx.mcpReq.signal)) noteCancellation(ctx);
        return json({ maxConcurrent: stats.maxConcurrent, pid: process.pid });
      }),
  );

  server.registerTool(
    'stats',
    { description: 'Calls and cancellations seen by this process, and its pid.' },
    () =>
      // Not counted itself, so that a test reads exactly what the calls before it did.
      Promise.resolve(
        json({
          calls: stats.calls,
          cancellations: stats.cancellations,
          maxConcurrent: stats.maxConcurrent,
          completed: stats.completed,
          running: stats.running,
          lookups: stats.lookups,
          pid: process.pid,
        }),
      ),
  );

  server.registerTool('fail', { description: 'Answers with a tool error (isError: true).' }, () =>
    tracked(async () => ({
      content: [{ type: 'text' as const, text: 'flaky: failing on purpose' }],
      isError: true,
    })),
  );

  server.registerTool('throw', { description: 'Answers with a JSON-RPC error.' }, () =>
    tracked(async () => {
      // Unreachable: the tools/call wrapper below answers for it (McpServer turns thrown errors into tool errors).
      return json({});
    }),
  );

  server.registerTool(
    'echo',
    { description: 'Returns its arguments.', inputSchema: z.object({ message: z.string() }) },
    (args) => tracked(async () => json({ message: args.message, pid: process.pid })),
  );

  server.registerTool(
    'lookup',
    {
      description:
        'Read-only: returns its arguments and how many lookups this process has really run (itself included); ' +
        "`fail: true` answers with a tool error, `ms` answers that much later. For the hub's result cache.",
      inputSchema: z.object({
        key: z.string(),
        options: z.record(z.string(), z.unknown()).optional(),
        fail: z.boolean().optional(),
        ms: z.number().int().min(0).optional(),
      }),
      annotations: { readOnlyHint: true },
    },
    async (args, ctx) => {
      // Counted apart from `calls`, so that a test reads exactly how many lookups reached the process.
      const lookups = ++stats.lookups;
      if (args.ms && (await sleep(args.ms, ctx.mcpReq.signal))) noteCancellation(ctx);
      if (args.fail) {
        return {
          content: [{ type: 'text' as const, text: `flaky: lookup ${args.key} failed` }],
          isError: true,
        };
      }
      return json({ ...args, lookups, pid: process.pid });
    },
  );

  server.registerTool('env', { description: 'Returns the environment of the process.' }, () =>
    Promise.resolve(json({ env: { ...process.env }, cwd: process.cwd() })),
  );

  const extra = server.registerTool('extra', { description: 'Only listed while toggled on.' }, () =>
    Promise.resolve(json({ extra: true })),
  );
  if (!extraEnabled) extra.disable();
  server.registerTool(
    'toggle_extra',
    { description: 'Lists or unlists the `extra` tool (tools/list_changed).' },
    () => {
      extraEnabled = !extraEnabled;
      if (extraEnabled) extra.enable();
      else extra.disable();
      return Promise.resolve(json({ extraEnabled }));
    },
  );

  server.registerResource('note', 'flaky://note', { mimeType: 'text/plain' }, (uri) =>
    Promise.resolve({ contents: [{ uri: uri.href, text: 'a note' }] }),
  );
  server.registerTool(
    'touch_resources',
    { description: 'Says that the resource list changed (notifications/resources/list_changed).' },
    () => {
      server.sendResourceListChanged();
      return Promise.resolve(json({ touched: true }));
    },
  );

  // McpServer answers any error a tool throws with an `isError` result; a JSON-RPC error needs the
  // request handler itself to throw. The wrapper reads the handler McpServer installed (a protected member).
  // biome-ignore lint/complexity/useLiteralKeys: a protected member is only reachable by element access
  const inner = server.server['_getRequestHandler']('tools/call');
  if (inner) {
    server.server.removeRequestHandler('tools/call');
    server.server.setRequestHandler('tools/call', (request, ctx) => {
      if (request.params.name === 'throw') {
        stats.calls++;
        throw new ProtocolError(ProtocolErrorCode.InternalError, 'flaky: throwing on purpose');
      }
      const raw = { jsonrpc: '2.0', id: ctx.mcpReq.id, ...request } as unknown as Parameters<typeof inner>[0];
      return inner(raw, ctx) as never;
    });
  }
  return server;
}

/** Serves on stdio only when run as a program: tests import createFlakyServer() in-process. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  serveStdio(() => createFlakyServer(), {
    onerror: (error) => process.stderr.write(`[flaky] transport error: ${error.message}\n`),
  });
  process.stderr.write(`[flaky] serving on stdio (pid ${process.pid})\n`);
  if (process.env.FLAKY_STUBBORN === '1') {
    // For shutdown tests: outlives its stdin and ignores SIGTERM, so only SIGKILL ends it.
    process.on('SIGTERM', () => process.stderr.write('[flaky] ignoring SIGTERM\n'));
    setInterval(() => {}, 60_000);
  }
}
