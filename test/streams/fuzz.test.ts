import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamClient } from '../../src/client/stream-client.js';
import type { ServerResponse, StreamErrorPayload } from '../../src/realtime/stream-events.js';
import { type StreamTestHub, startStreamTestHub, until } from '../helpers/stream-hub.js';

const events = ['client-message', 'subscribe-topic', 'unsubscribe-topic', 'publish', 'cancel', 'junk-event'];

const payload = fc.oneof(
  fc.anything(),
  fc.jsonValue(),
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  fc.record(
    {
      type: fc.oneof(
        fc.string(),
        fc.constantFrom('ping', 'list-tools', 'call-tool', 'read-resource', 'get-prompt'),
      ),
      id: fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null)),
      data: fc.anything(),
      topic: fc.anything(),
    },
    { requiredKeys: [] },
  ),
  fc.string({ minLength: 4_000, maxLength: 6_000 }),
);

describe('bad input on every stream event (fast-check)', () => {
  let t: StreamTestHub;
  let client: StreamClient;
  let observer: StreamClient;
  beforeAll(async () => {
    t = await startStreamTestHub('pglite', { SWITCHBOARD_BODY_LIMIT_BYTES: '4096' });
    client = await (
      await t.start({ serverId: 1, clientId: 'fuzzer', streamConfig: { topics: ['t'] } })
    ).connect();
    observer = await (await t.join(client.streamId, 'observer')).connect();
    await observer.subscribe('t');
  });
  afterAll(() => t?.close());

  it('every event gets an answer, the connection and the stream survive, the stored state stays sound', async () => {
    const responses: ServerResponse[] = [];
    const errors: StreamErrorPayload[] = [];
    client.on('server-response', (r) => responses.push(r));
    client.on('stream-error', (e) => errors.push(e));
    let messages = 0;
    let others = 0;
    const raw = client.socket as unknown as { emit: (...a: unknown[]) => void };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...events), payload), { maxLength: 8 }),
        async (batch) => {
          for (const [event, value] of batch) {
            raw.emit(event, value);
            if (event === 'client-message') messages++;
            else others++;
          }
          // Every client-message gets a server-response; junk events and refused ones a stream-error.
          await until(() => responses.length >= messages, `${messages} responses`, 10_000);
          expect(client.socket.connected).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
    expect(responses.length).toBe(messages);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.length).toBeLessThanOrEqual(others);
    for (const e of errors) expect(e.error.code).toMatch(/^SB_ERR_/);
    for (const r of responses) if (!r.ok && r.error) expect(r.error.code).toMatch(/^SB_ERR_/);

    // Still a working stream for both clients.
    const ping = await client.request('ping');
    expect(ping.error).toBeUndefined();
    expect(ping).toMatchObject({ ok: true });
    expect((await observer.request('list-tools')).ok).toBe(true);
    const status = (await t.api({ method: 'GET', url: '/api/mcp/stream/status' })).json();
    expect(status.streams[0]).toMatchObject({ streamId: client.streamId, connectedClients: 2, active: true });
    const rows = await t.hub.db.query<{ id: string; active: boolean; client_id: string }>(
      'SELECT id, active, client_id FROM mcp_stream_sessions',
    );
    expect(rows.rows).toEqual([{ id: client.streamId, active: true, client_id: 'fuzzer' }]);
  });
});
