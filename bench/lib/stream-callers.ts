/** What the stream benchmarks (bench:stream, bench:ab with AB_PATH=stream) share: a hub stream and its caller. */
import type { Socket } from 'socket.io-client';
import { StreamClient } from '../../src/client/stream-client.js';
import { type BenchHub, type Caller, echoMessage } from './everything-hub.js';

/** A call over any socket.io endpoint answering client-message with a server-response of the same id. */
export function socketCaller(socket: Socket, message = echoMessage): Caller {
  const pending = new Map<string, (r: { ok: boolean; result: { content: { text: string }[] } }) => void>();
  socket.on('server-response', (r) => pending.get(r.id)?.(r));
  let n = 0;
  return () =>
    new Promise<void>((resolve, reject) => {
      const id = `b${++n}`;
      pending.set(id, (r) => {
        pending.delete(id);
        if (!r.ok || r.result.content[0]?.text !== `Echo: ${message}`)
          reject(new Error(`wrong answer ${JSON.stringify(r)}`));
        else resolve();
      });
      socket.emit('client-message', { type: 'echo', id, data: { message } });
    });
}

/** A stream on the hub's server-everything, connected. */
export async function hubStream(hub: BenchHub, clientId: string): Promise<StreamClient> {
  const c = await StreamClient.start({
    baseUrl: hub.base,
    apiToken: hub.token,
    serverId: hub.everythingId,
    clientId,
  });
  await c.connect();
  return c;
}
