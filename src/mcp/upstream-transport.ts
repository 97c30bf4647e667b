import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { type FetchLike, StreamableHTTPClientTransport, type Transport } from '@modelcontextprotocol/client';
import { DEFAULT_INHERITED_ENV_VARS, StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { HubError } from '../errors.js';
import type { ServerRecord } from '../servers/payloads.js';
import { isCommandAllowed } from '../servers/stdio-allow.js';
import { turnCoalescer } from '../write-coalescing.js';
import { canonicalJson } from './canonical-json.js';

/** Everything needed to open one connection to a server, resolved from its record. Holds secrets: never log it. */
export type TransportSpec =
  | { kind: 'stdio'; command: string; args: string[]; cwd: string; env: Record<string, string> }
  | { kind: 'streamable-http'; url: string; headers: Record<string, string> };

export interface ResolveOptions {
  /** Relative stdio `cwd` resolves against it, and it is the default `cwd`. */
  projectRoot: string;
  /** Commands stdio servers may run (as given or by basename); empty allows any. */
  stdioAllow: readonly string[];
  /** What every stdio child gets besides its configured env: PATH, nothing else. */
  baseEnv: Readonly<Record<string, string>>;
}

/**
 * Turns a stored server into what the transport needs. A child gets only PATH and its configured env
 * (the hub's own environment holds the API token and database URL). It runs in `cwd`, which defaults to
 * the project root, so relative script paths such as `dist/examples/servers/seo.js` work wherever the hub
 * was started; a relative `cwd` is itself taken from the project root.
 */
export function resolveTransportSpec(record: ServerRecord, options: ResolveOptions): TransportSpec {
  if (record.transport === 'streamable-http') {
    if (!record.url) throw new HubError('SB_ERR_VALIDATION', `server ${record.id} has no url`);
    return { kind: 'streamable-http', url: record.url, headers: { ...record.headers } };
  }
  const command = record.command;
  if (!command) throw new HubError('SB_ERR_VALIDATION', `server ${record.id} has no command`);
  if (!isCommandAllowed(command, options.stdioAllow)) {
    throw new HubError('SB_ERR_STDIO_NOT_ALLOWED', command, { allowed: options.stdioAllow });
  }
  return {
    kind: 'stdio',
    command,
    args: [...record.args],
    cwd: record.cwd ? path.resolve(options.projectRoot, record.cwd) : options.projectRoot,
    env: { ...options.baseEnv, ...record.env },
  };
}

/**
 * Identifies what a connection talks to, for reusing a protocol-era verdict between connections: the
 * same command/url with the same credentials. Hashed, since env and headers hold secrets.
 */
export function transportFingerprint(spec: TransportSpec): string {
  // Key order is noise: the same env or headers written in another order open the same connection.
  return createHash('sha256').update(canonicalJson(spec)).digest('base64url');
}

export interface OpenedTransport {
  transport: Transport;
  /** The child's pid (stdio, once started), else null. */
  pid(): number | null;
  /** The child's stderr (stdio), for the caller to drain into the log. */
  stderr: Readable | null;
  /** Ends an HTTP session politely (DELETE); a no-op for stdio. */
  terminate(): Promise<void>;
}

/**
 * Largest single message accepted from a stdio server. The SDK's 10 MB default is below what an image
 * result carries (base64 twice: image content and structuredContent); past this the connection is dropped.
 */
export const STDIO_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const httpReconnection = {
  // The SDK re-opens a dropped SSE stream; a server that died refuses quickly, and those refusals are what
  // the connection watches for to fail the calls waiting on it, so keep the first retry short.
  initialReconnectionDelay: 100,
  maxReconnectionDelay: 2_000,
  reconnectionDelayGrowFactor: 2,
  maxRetries: 2,
};

/**
 * The SDK's HTTP transport hands one AbortSignal (its close switch) to every fetch, and undici keeps an
 * abort listener on it per request until garbage collection: under load that prints thousands of
 * MaxListenersExceededWarning. Each fetch gets a signal of its own that follows the shared one
 * (AbortSignal.any tracks dependants weakly, without listeners), so close() still aborts everything.
 */
export const perRequestSignalFetch: FetchLike = (url, init) =>
  fetch(url, init?.signal ? { ...init, signal: AbortSignal.any([init.signal]) } : init);

/** Shared by every stdio server: one end of turn uncorks them all. */
const beforeStdinWrite = turnCoalescer();

/**
 * The messages sent to a stdio server in one turn of the event loop leave together (see turnCoalescer): at 32
 * calls in flight one read of the server's output resolves many calls, whose next requests would otherwise
 * each cost a syscall. The SDK keeps the child process private; without it (not started, or another SDK
 * layout) messages go out one by one as before.
 */
function coalesceStdinWrites(transport: StdioClientTransport): void {
  const send = transport.send.bind(transport);
  transport.send = (message) => {
    const stdin = (transport as unknown as { _process?: { stdin?: Writable | null } })._process?.stdin;
    if (stdin) beforeStdinWrite(stdin);
    return send(message);
  };
}

export function openTransport(spec: TransportSpec): OpenedTransport {
  if (spec.kind === 'streamable-http') {
    const transport = new StreamableHTTPClientTransport(new URL(spec.url), {
      requestInit: { headers: spec.headers },
      fetch: perRequestSignalFetch,
      reconnectionOptions: httpReconnection,
    });
    return {
      transport,
      pid: () => null,
      stderr: null,
      terminate: () => transport.terminateSession(),
    };
  }
  // The SDK adds HOME, LOGNAME, SHELL, TERM and USER of the hub's environment under the configured env;
  // spawn() skips variables whose value is undefined, which takes them back out. Only the exact base
  // class gets the SDK's disposable probe sibling, so this must not be a subclass.
  const env: Record<string, string | undefined> = {};
  for (const key of DEFAULT_INHERITED_ENV_VARS) env[key] = undefined;
  Object.assign(env, spec.env);
  const transport = new StdioClientTransport({
    command: spec.command,
    args: spec.args,
    cwd: spec.cwd,
    env: env as Record<string, string>,
    stderr: 'pipe',
    maxBufferSize: STDIO_MAX_MESSAGE_BYTES,
  });
  coalesceStdinWrites(transport);
  return {
    transport,
    pid: () => transport.pid,
    stderr: transport.stderr as Readable | null,
    terminate: async () => {},
  };
}
