import {
  Client,
  InMemoryTransport,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
} from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFlakyServer } from '../../examples/servers/flaky.js';
import { HubError } from '../../src/errors.js';
import { classifyError, classifyResult } from '../../src/mcp/classify-outcome.js';

/** Real SDK errors, from a client and the flaky server linked in-process. */
async function linkedClient() {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const server = createFlakyServer();
  await server.connect(serverSide);
  const client = new Client({ name: 'test', version: '1' });
  await client.connect(clientSide);
  return { client, server };
}

const ctx = { what: 'server 1 tool x' };

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('classifyResult', () => {
  it('success, and a tool error that is not a success', () => {
    expect(classifyResult({ content: [] } as never)).toEqual({ outcome: 'success', ok: true });
    expect(classifyResult({ isError: false })).toEqual({ outcome: 'success', ok: true });
    expect(classifyResult({ isError: true })).toEqual({ outcome: 'tool_error', ok: false });
  });
});

describe('classifyError with real SDK errors', () => {
  let link: Awaited<ReturnType<typeof linkedClient>>;
  beforeAll(async () => {
    link = await linkedClient();
  });
  afterAll(async () => {
    await link.client.close();
    await link.server.close();
  });

  it('a tool answering isError comes back as a result, classified tool_error', async () => {
    const result = await link.client.callTool({ name: 'fail', arguments: {} });
    expect(classifyResult(result)).toEqual({ outcome: 'tool_error', ok: false });
  });

  it('a JSON-RPC error is a protocol_error (SB_ERR_UPSTREAM_PROTOCOL) with the rpc code', async () => {
    const err = await thrown(link.client.callTool({ name: 'throw', arguments: {} }));
    const c = classifyError(err, ctx);
    expect(c.outcome).toBe('protocol_error');
    expect(c.error.code).toBe('SB_ERR_UPSTREAM_PROTOCOL');
    expect(c.error.details).toMatchObject({ rpcCode: -32603 });
    expect(c.error.message).toContain('throwing on purpose');
    expect(c.connectionLost).toBe(false);
  });

  it('an unknown tool is a protocol_error too', async () => {
    const c = classifyError(await thrown(link.client.callTool({ name: 'nope', arguments: {} })), ctx);
    expect(c.outcome).toBe('protocol_error');
  });

  it('a request timeout is a timeout (SB_ERR_UPSTREAM_TIMEOUT)', async () => {
    const err = await thrown(link.client.callTool({ name: 'hang', arguments: {} }, { timeout: 30 }));
    const c = classifyError(err, ctx);
    expect(c.outcome).toBe('timeout');
    expect(c.error.code).toBe('SB_ERR_UPSTREAM_TIMEOUT');
    expect(c.error.status).toBe(504);
  });

  it("the caller's abort is a cancellation, although the SDK reports it as a RequestTimeout", async () => {
    const ac = new AbortController();
    const p = link.client.callTool({ name: 'hang', arguments: {} }, { signal: ac.signal });
    ac.abort('client went away');
    const err = await thrown(p);
    expect(err).toBeInstanceOf(SdkError);
    const c = classifyError(err, { ...ctx, cancelled: true });
    expect(c.outcome).toBe('cancelled');
    expect(c.error.code).toBe('SB_ERR_CANCELLED');
  });

  it('a connection closed under a call is a transport_error that lost the connection', async () => {
    const own = await linkedClient();
    const p = own.client.callTool({ name: 'hang', arguments: {} });
    await own.server.close();
    const c = classifyError(await thrown(p), ctx);
    expect(c.outcome).toBe('transport_error');
    expect(c.error.code).toBe('SB_ERR_UPSTREAM_UNAVAILABLE');
    expect(c.connectionLost).toBe(true);
    // …and reported as SB_ERR_CLOSED while the pool shuts down.
    expect(
      classifyError(new SdkError(SdkErrorCode.ConnectionClosed, 'Connection closed'), {
        ...ctx,
        closing: true,
      }).error.code,
    ).toBe('SB_ERR_CLOSED');
  });
});

describe('classifyError with other failures', () => {
  it.each([
    [
      'refused fetch',
      Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }),
      'transport_error',
      'SB_ERR_UPSTREAM_UNAVAILABLE',
    ],
    [
      'spawn error',
      Object.assign(new Error('spawn nope ENOENT'), { code: 'ENOENT' }),
      'transport_error',
      'SB_ERR_UPSTREAM_UNAVAILABLE',
    ],
    [
      'http 404 (session gone)',
      new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, 'Error POSTing', { status: 404 }),
      'transport_error',
      'SB_ERR_UPSTREAM_UNAVAILABLE',
    ],
    [
      'invalid result',
      new SdkError(SdkErrorCode.InvalidResult, 'bad'),
      'protocol_error',
      'SB_ERR_UPSTREAM_PROTOCOL',
    ],
    ['queue full', new HubError('SB_ERR_QUEUE_FULL', 'x'), 'rejected', 'SB_ERR_QUEUE_FULL'],
    ['disabled', new HubError('SB_ERR_SERVER_DISABLED', 'x'), 'rejected', 'SB_ERR_SERVER_DISABLED'],
    ['hub timeout', new HubError('SB_ERR_UPSTREAM_TIMEOUT', 'x'), 'timeout', 'SB_ERR_UPSTREAM_TIMEOUT'],
    ['hub cancel', new HubError('SB_ERR_CANCELLED', 'x'), 'cancelled', 'SB_ERR_CANCELLED'],
    [
      'hub unavailable',
      new HubError('SB_ERR_UPSTREAM_UNAVAILABLE', 'x'),
      'transport_error',
      'SB_ERR_UPSTREAM_UNAVAILABLE',
    ],
  ])('%s', (_name, err, outcome, code) => {
    const c = classifyError(err, ctx);
    expect(c.outcome).toBe(outcome);
    expect(c.error.code).toBe(code);
    expect(c.error).toBeInstanceOf(HubError);
  });

  it('names the root cause a fetch error hides', () => {
    const c = classifyError(
      Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }),
      ctx,
    );
    expect(c.error.message).toContain('ECONNREFUSED');
    expect(c.error.details).toBeUndefined();
    const http = classifyError(
      new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, 'x', { status: 404 }),
      ctx,
    );
    expect(http.error.details).toEqual({ httpStatus: 404 });
  });
});
