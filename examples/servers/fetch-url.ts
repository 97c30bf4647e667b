/**
 * Fetching a page or an image for the example servers: http/https only, a timeout, a size cap that is
 * enforced while reading (a missing or lying Content-Length cannot make us buffer more), and the
 * caller's cancellation signal.
 */

export const DEFAULT_FETCH_TIMEOUT_MS = 15_000;

export interface FetchUrlOptions {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  timeoutMs?: number;
  /** The tool call's cancellation signal. */
  signal?: AbortSignal;
  accept?: string;
}

export interface FetchedUrl {
  url: string;
  /** The url after redirects. */
  finalUrl: string;
  status: number;
  ok: boolean;
  contentType: string | null;
  body: Buffer;
}

/** A failure the caller should report as a tool error: the message is meant for the user. */
export class FetchUrlError extends Error {
  override name = 'FetchUrlError';
}

export function parseHttpUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new FetchUrlError(`Invalid URL: ${JSON.stringify(raw.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FetchUrlError(`Only http and https URLs can be fetched, got ${url.protocol}`);
  }
  return url;
}

export async function fetchUrl(raw: string, options: FetchUrlOptions): Promise<FetchedUrl> {
  const url = parseHttpUrl(raw);
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      signal,
      redirect: 'follow',
      headers: { accept: options.accept ?? '*/*', 'user-agent': 'switchboard-example/1.0' },
    });
  } catch (error) {
    throw describeFailure(error, url, timeoutMs, options.signal);
  }

  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > options.maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw new FetchUrlError(`${url.href} is ${declared} bytes, over the limit of ${options.maxBytes} bytes`);
  }

  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    if (response.body) {
      for await (const chunk of response.body) {
        size += chunk.byteLength;
        if (size > options.maxBytes) {
          await response.body.cancel().catch(() => {});
          throw new FetchUrlError(`${url.href} is over the limit of ${options.maxBytes} bytes`);
        }
        chunks.push(chunk);
      }
    }
  } catch (error) {
    if (error instanceof FetchUrlError) throw error;
    throw describeFailure(error, url, timeoutMs, options.signal);
  }

  return {
    url: url.href,
    finalUrl: response.url || url.href,
    status: response.status,
    ok: response.ok,
    contentType: response.headers.get('content-type'),
    body: Buffer.concat(chunks, size),
  };
}

function describeFailure(error: unknown, url: URL, timeoutMs: number, callerSignal?: AbortSignal): Error {
  if (callerSignal?.aborted) return new FetchUrlError(`Fetching ${url.href} was cancelled`);
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return new FetchUrlError(`Fetching ${url.href} timed out after ${timeoutMs} ms`);
  }
  // undici puts the useful part (ECONNREFUSED, ENOTFOUND...) in `cause`.
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  const message = error instanceof Error ? error.message : String(error);
  return new FetchUrlError(`Fetching ${url.href} failed: ${message}${cause}`);
}
