import { expect, it } from 'vitest';
import type { StreamStopped } from '../../src/realtime/stream-events.js';
import { startStreamTestHub, until } from '../helpers/stream-hub.js';

it('closing the hub says goodbye to every stream client, cancels their calls and does not wait on sockets', async () => {
  const t = await startStreamTestHub();
  const owner = await (await t.start({ serverId: t.flakyId, clientId: 'owner' })).connect();
  const guest = await (await t.join(owner.streamId, 'guest')).connect();
  const stopped: StreamStopped[] = [];
  const reasons: string[] = [];
  for (const c of [owner, guest]) {
    c.socket.on('stream-stopped', (p) => stopped.push(p));
    c.socket.on('disconnect', (reason) => reasons.push(reason));
  }
  const running = owner.request('sleep', { ms: 30_000 });
  running.catch(() => {});
  await new Promise((r) => setTimeout(r, 200));

  const started = performance.now();
  await t.close();
  // Shutdown ended the 30 s call instead of waiting for it.
  expect(performance.now() - started).toBeLessThan(30_000);
  await until(() => reasons.length === 2, 'both clients disconnected');
  expect(stopped.map((s) => s.reason)).toEqual(['hub shutting down', 'hub shutting down']);
  await expect(running).rejects.toMatchObject({ code: 'DISCONNECTED' });
});
