/**
 * What the example servers share: how a server is run over stdio, how a tool reports progress, and how
 * results and errors are shaped. stdout carries the protocol, so everything else goes to stderr.
 */

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CallToolResult, ContentBlock, McpServer, ServerContext } from '@modelcontextprotocol/server';
import { StdioServerTransport, serveStdio } from '@modelcontextprotocol/server/stdio';
import { FetchUrlError } from './fetch-url.js';

/**
 * The SDK's stdio transport closes the connection when one incoming message is over 10 MB. A base64 image
 * under the graphics server's 20 MB cap is ~27 MB of JSON, and must be refused as a tool error, not end
 * the process: so the framing limit sits above every tool-level limit.
 */
export const STDIO_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export function log(server: string, message: string): void {
  process.stderr.write(`[${server}] ${message}\n`);
}

/**
 * True when the module at `moduleUrl` is the process's entry point (`node dist/examples/servers/seo.js`),
 * false when it is imported: a test may build a server in-process without it grabbing this process's stdio.
 */
export function isEntryPoint(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/**
 * Serves the server built by `factory` on this process's stdio. `serveStdio` picks the protocol era from
 * the opening message (2025-11-25 `initialize` or 2026-07-28 `server/discover`) and builds one instance
 * for the connection; the process ends by itself once the client closes stdin.
 */
export function runStdioServer(name: string, factory: () => McpServer): void {
  const transport = new StdioServerTransport(process.stdin, process.stdout, {
    maxBufferSize: STDIO_MAX_MESSAGE_BYTES,
  });
  serveStdio(factory, { transport, onerror: (error) => log(name, `transport error: ${error.message}`) });
  log(name, `serving on stdio (pid ${process.pid})`);
}

/** An error whose message is written for the caller; anything else is logged as unexpected. */
export class ToolInputError extends Error {
  override name = 'ToolInputError';
}

/** A success result: `structured` as structuredContent and as JSON text, plus any extra content blocks. */
export function jsonResult<T extends Record<string, unknown>>(
  structured: T,
  options: { content?: ContentBlock[]; omitFromText?: readonly (keyof T)[] } = {},
): CallToolResult {
  // Large binary fields (base64 images) are already sent as image content and in structuredContent;
  // repeating them in the text block would triple the message.
  const forText: Record<string, unknown> = { ...structured };
  for (const key of options.omitFromText ?? []) {
    if (key in forText) forText[key as string] = '[omitted: see structuredContent]';
  }
  return {
    content: [{ type: 'text', text: JSON.stringify(forText) }, ...(options.content ?? [])],
    structuredContent: structured,
  };
}

export function toolError(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}

/** A failure caused by the caller's input (a bad argument, an unreachable url): not logged as unexpected. */
export function isCallerError(error: unknown): error is Error {
  return error instanceof ToolInputError || error instanceof FetchUrlError;
}

/**
 * Wraps a tool handler so that every failure becomes a tool error (`isError: true`) with a clear message;
 * failures that are not the caller's fault are also logged to stderr.
 */
export function toolHandler<A>(
  server: string,
  tool: string,
  handler: (args: A, ctx: ServerContext) => Promise<CallToolResult>,
): (args: A, ctx: ServerContext) => Promise<CallToolResult> {
  return async (args, ctx) => {
    try {
      return await handler(args, ctx);
    } catch (error) {
      if (ctx.mcpReq.signal.aborted) return toolError(`${tool} was cancelled`);
      if (isCallerError(error)) {
        return toolError(error.message);
      }
      const message = error instanceof Error ? error.message : String(error);
      log(server, `${tool} failed: ${error instanceof Error ? (error.stack ?? message) : message}`);
      return toolError(`${tool} failed: ${message}`);
    }
  };
}

/** Sends a progress notification if the caller asked for progress (sent a progressToken). */
export async function reportProgress(
  ctx: ServerContext,
  progress: number,
  total: number | undefined,
  message: string,
): Promise<void> {
  const progressToken = ctx.mcpReq._meta?.progressToken;
  if (progressToken === undefined) return;
  await ctx.mcpReq.notify({
    method: 'notifications/progress',
    params: { progressToken, progress, ...(total === undefined ? {} : { total }), message },
  });
}

/** Runs `work` on every item with at most `limit` at a time; `onDone` sees each result as it finishes. */
export async function mapWithLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
  onDone: (result: R, index: number) => Promise<void> | void,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      const result = await work(items[index] as T, index);
      results[index] = result;
      await onDone(result, index);
    }
  });
  await Promise.all(runners);
  return results;
}
