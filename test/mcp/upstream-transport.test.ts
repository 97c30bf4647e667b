import { getEventListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  perRequestSignalFetch,
  resolveTransportSpec,
  transportFingerprint,
} from '../../src/mcp/upstream-transport.js';
import { makeRecord } from '../helpers/pool.js';

const base = { projectRoot: '/srv/hub', stdioAllow: [] as string[], baseEnv: { PATH: '/usr/bin:/bin' } };

describe('resolveTransportSpec', () => {
  it('stdio: cwd defaults to the project root; the child env is PATH plus its own env only', () => {
    const spec = resolveTransportSpec(
      makeRecord({
        id: 1,
        command: 'node',
        args: ['dist/examples/servers/seo.js'],
        env: { API_KEY: 's3cret' },
      }),
      base,
    );
    expect(spec).toEqual({
      kind: 'stdio',
      command: 'node',
      args: ['dist/examples/servers/seo.js'],
      cwd: '/srv/hub',
      env: { PATH: '/usr/bin:/bin', API_KEY: 's3cret' },
    });
  });

  it('stdio: a relative cwd is taken from the project root, an absolute one as is; env may set PATH', () => {
    const rel = resolveTransportSpec(
      makeRecord({ id: 1, command: 'node', cwd: 'examples', env: { PATH: '/opt/bin' } }),
      base,
    );
    expect(rel).toMatchObject({ cwd: path.join('/srv/hub', 'examples'), env: { PATH: '/opt/bin' } });
    const abs = resolveTransportSpec(makeRecord({ id: 1, command: 'node', cwd: '/tmp' }), base);
    expect(abs).toMatchObject({ cwd: '/tmp' });
  });

  it('stdio: the allow-list matches the command as given or its basename', () => {
    const allow = (command: string, stdioAllow: string[]) =>
      resolveTransportSpec(makeRecord({ id: 1, command }), { ...base, stdioAllow });
    expect(allow('node', [])).toMatchObject({ command: 'node' });
    expect(allow('node', ['node', 'npx'])).toMatchObject({ command: 'node' });
    expect(allow('/usr/local/bin/node', ['node'])).toMatchObject({ command: '/usr/local/bin/node' });
    expect(allow('/usr/local/bin/node', ['/usr/local/bin/node'])).toMatchObject({ kind: 'stdio' });
    expect(() =>
      resolveTransportSpec(makeRecord({ id: 1, command: 'python3' }), { ...base, stdioAllow: ['node'] }),
    ).toThrow(expect.objectContaining({ code: 'SB_ERR_STDIO_NOT_ALLOWED', status: 403 }));
  });

  it('streamable-http: url and headers', () => {
    const spec = resolveTransportSpec(
      makeRecord({
        id: 2,
        transport: 'streamable-http',
        url: 'http://127.0.0.1:1/mcp',
        headers: { authorization: 'Bearer x' },
      }),
      base,
    );
    expect(spec).toEqual({
      kind: 'streamable-http',
      url: 'http://127.0.0.1:1/mcp',
      headers: { authorization: 'Bearer x' },
    });
  });

  it('a record without command or url is refused', () => {
    expect(() => resolveTransportSpec(makeRecord({ id: 3 }), base)).toThrow(
      expect.objectContaining({ code: 'SB_ERR_VALIDATION' }),
    );
    expect(() => resolveTransportSpec(makeRecord({ id: 3, transport: 'streamable-http' }), base)).toThrow(
      expect.objectContaining({ code: 'SB_ERR_VALIDATION' }),
    );
  });

  it('the fingerprint changes with credentials and hides them', () => {
    const a = resolveTransportSpec(makeRecord({ id: 1, command: 'node', env: { TOKEN: 's3cret-a' } }), base);
    const b = resolveTransportSpec(makeRecord({ id: 1, command: 'node', env: { TOKEN: 's3cret-b' } }), base);
    expect(transportFingerprint(a)).not.toBe(transportFingerprint(b));
    expect(transportFingerprint(a)).toBe(transportFingerprint({ ...a }));
    expect(transportFingerprint(a)).not.toContain('s3cret');
  });
});

describe('perRequestSignalFetch', () => {
  it('leaves no abort listener on the shared signal, and aborting it still aborts requests', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/hang') return; // never answers
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const plain = new AbortController();
      const shared = new AbortController();
      for (let i = 0; i < 50; i++) {
        await (await fetch(`http://127.0.0.1:${port}/`, { signal: plain.signal })).text();
        await (await perRequestSignalFetch(`http://127.0.0.1:${port}/`, { signal: shared.signal })).text();
      }
      // What the SDK's transport does (one signal for every fetch) piles listeners up until GC…
      expect(getEventListeners(plain.signal, 'abort').length).toBeGreaterThanOrEqual(50);
      // …and what the pool gives it does not.
      expect(getEventListeners(shared.signal, 'abort')).toHaveLength(0);
      const pending = perRequestSignalFetch(`http://127.0.0.1:${port}/hang`, { signal: shared.signal });
      shared.abort();
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
