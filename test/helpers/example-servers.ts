/**
 * Helpers for the example-server tests: spawn a BUILT example server (`npm run build` first) through the
 * SDK client, and serve fixture pages and images on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { keepProgressBeforeResponses } from '../../src/mcp/progress-order.js';

export type ExampleName = 'seo' | 'content' | 'graphics';

export function exampleServerPath(name: ExampleName): string {
  return fileURLToPath(new URL(`../../dist/examples/servers/${name}.js`, import.meta.url));
}

export interface ExampleConnection {
  client: Client;
  transport: StdioClientTransport;
  /** What the server wrote to stderr so far. */
  stderr: () => string;
  close: () => Promise<void>;
}

/**
 * Connects to an example server. `era: 'auto'` negotiates (and should land on 2026-07-28); `'legacy'` is a
 * client without version negotiation, which opens with a 2025-11-25 `initialize`.
 */
export async function connectExample(
  name: ExampleName,
  options: { era?: 'auto' | 'legacy'; env?: Record<string, string> } = {},
): Promise<ExampleConnection> {
  const path = exampleServerPath(name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` before these tests`);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [path],
    env: { ...getDefaultEnvironment(), ...options.env },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const client =
    (options.era ?? 'auto') === 'auto'
      ? new Client({ name: 'test', version: '0' }, { versionNegotiation: { mode: 'auto' } })
      : new Client({ name: 'test', version: '0' });
  await client.connect(transport);
  keepProgressBeforeResponses(transport);
  return { client, transport, stderr: () => stderr, close: () => client.close() };
}

export interface Route {
  status?: number;
  type?: string;
  body: string | Buffer;
  /** Milliseconds to wait before answering. */
  delayMs?: number;
}

export interface FixtureServer {
  url: (path: string) => string;
  /** Paths requested so far, in order. */
  requests: string[];
  /** Paths whose client went away before the answer was sent. */
  abandoned: string[];
  close: () => Promise<void>;
}

/** Serves fixed routes on 127.0.0.1 (port 0); unknown paths get 404. */
export async function serveFixtures(routes: Record<string, Route>): Promise<FixtureServer> {
  const requests: string[] = [];
  const abandoned: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    requests.push(path);
    res.on('close', () => {
      if (!res.writableFinished) abandoned.push(path);
    });
    const route = routes[path];
    const answer = () => {
      if (!route) {
        res.writeHead(404, { 'content-type': 'text/html' }).end('<html><title>Not found</title></html>');
        return;
      }
      res.writeHead(route.status ?? 200, { 'content-type': route.type ?? 'text/html; charset=utf-8' });
      res.end(route.body);
    };
    if (route?.delayMs) {
      const timer = setTimeout(answer, route.delayMs);
      res.on('close', () => clearTimeout(timer));
    } else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    requests,
    abandoned,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** The structured result of a successful tool call, failing the test with the tool's message otherwise. */
export function structured<T = Record<string, unknown>>(result: unknown): T {
  const r = result as {
    isError?: boolean;
    structuredContent?: unknown;
    content?: { type: string; text?: string }[];
  };
  if (r.isError) throw new Error(`tool error: ${r.content?.map((c) => c.text).join(' ')}`);
  if (r.structuredContent === undefined) throw new Error('no structuredContent in the result');
  return r.structuredContent as T;
}

/** The text of a tool result's text blocks (for error messages). */
export function resultText(result: unknown): string {
  const r = result as { content?: { type: string; text?: string }[] };
  return (r.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

/**
 * Starts an example server, opens a 2025-era session, then ends its stdin as a client going away does.
 * Resolves with the exit code and how long the exit took (the server should leave on its own, promptly).
 */
export async function exitAfterStdinEnds(
  name: ExampleName,
  timeoutMs = 5_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, [exampleServerPath(name)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const initialize = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'test', version: '0' } },
  };
  child.stdin.write(`${JSON.stringify(initialize)}\n`);
  await once(child.stdout, 'data');
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  // A server that does not exit by itself is killed: signal SIGKILL.
  return { code, signal };
}
