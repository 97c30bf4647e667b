/** A listening test hub for socket.io stream tests, with the flaky and everything servers registered. */
import type { AddressInfo } from 'node:net';
import { type StartOptions, StreamClient } from '../../src/client/stream-client.js';
import type { Env } from '../../src/config.js';
import type { Driver } from './db.js';
import { everythingServer, flakyServer, startTestHub, type TestHub, testToken } from './hub.js';

export interface StreamTestHub extends TestHub {
  baseUrl: string;
  flakyId: number;
  everythingId: number;
  /** Starts a stream through the client helper (not yet connected); closed with the hub. */
  start(opts: Omit<StartOptions, 'baseUrl' | 'apiToken'>): Promise<StreamClient>;
  join(streamId: string, clientId: string): Promise<StreamClient>;
}

export async function startStreamTestHub(driver: Driver = 'pglite', env: Env = {}): Promise<StreamTestHub> {
  const t = await startTestHub(driver, env);
  const clients: StreamClient[] = [];
  try {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const flakyId = await t.addStdioServer('flaky', [flakyServer]);
    const everythingId = await t.addStdioServer('everything', [everythingServer, 'stdio']);
    const baseUrl = `http://127.0.0.1:${port}`;
    const track = (c: StreamClient) => {
      clients.push(c);
      return c;
    };
    return {
      ...t,
      baseUrl,
      flakyId,
      everythingId,
      start: async (opts) => track(await StreamClient.start({ ...opts, baseUrl, apiToken: testToken })),
      join: async (streamId, clientId) =>
        track(await StreamClient.join({ baseUrl, apiToken: testToken, streamId, clientId })),
      async close() {
        // The hub first: connected clients are part of what its shutdown must handle.
        await t.close();
        for (const c of clients) c.close();
      },
    };
  } catch (err) {
    await t.close();
    throw err;
  }
}

/** Resolves once `predicate` holds, polling every 10 ms; fails after `ms`. */
export async function until(predicate: () => boolean, what: string, ms = 5_000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
