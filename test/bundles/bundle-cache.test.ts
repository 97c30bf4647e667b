import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BundleCache } from '../../src/bundles/bundle-cache.js';
import type { BundleService } from '../../src/bundles/service.js';
import { isHubError } from '../../src/errors.js';
import { drivers } from '../helpers/db.js';
import { flakyServer, peerBundleService, startTestHub, type TestHub } from '../helpers/hub.js';

describe('BundleCache', () => {
  it('loads a bundle once, then serves it from memory', async () => {
    const cache = new BundleCache<string>();
    let loads = 0;
    const load = async (id: string) => {
      loads++;
      return `${id}@${loads}`;
    };
    expect(await cache.get('a', load)).toBe('a@1');
    expect(await cache.get('a', load)).toBe('a@1');
    expect(loads).toBe(1);
    cache.invalidate('a');
    expect(await cache.get('a', load)).toBe('a@2');
  });

  it('does not cache a bundle that does not exist', async () => {
    const cache = new BundleCache<string>();
    let loads = 0;
    const load = async () => {
      loads++;
      return undefined;
    };
    expect(await cache.get('gone', load)).toBeUndefined();
    expect(await cache.get('gone', load)).toBeUndefined();
    expect(loads).toBe(2);
  });

  it('does not cache a load that an edit overtook: it may hold the bundle as it was before', async () => {
    const cache = new BundleCache<string>();
    let release: (v: string) => void = () => {};
    const slow = cache.get('a', () => new Promise<string>((resolve) => (release = resolve)));
    cache.invalidate('a');
    release('before the edit');
    expect(await slow).toBe('before the edit');
    expect(await cache.get('a', async () => 'after the edit')).toBe('after the edit');
  });

  it('keeps at most its size, dropping the least recently used', async () => {
    const cache = new BundleCache<string>(2);
    const loaded: string[] = [];
    const load = async (id: string) => {
      loaded.push(id);
      return id;
    };
    await cache.get('a', load);
    await cache.get('b', load);
    await cache.get('a', load); // a is now the most recently used
    await cache.get('c', load); // drops b
    await cache.get('a', load);
    await cache.get('b', load);
    expect(loaded).toEqual(['a', 'b', 'c', 'b']);
  });
});

/**
 * What an execution starts from after an edit: on PGlite (one process) the bundle comes from this hub's cache,
 * which its edits invalidate; on PostgreSQL, where other hubs may edit the bundle, from the database. On
 * PostgreSQL a second BundleService on the same database stands for another hub.
 */
describe.each(drivers)('an edited bundle, on %s', (driver) => {
  let t: TestHub;
  let serverId: number;
  let other: BundleService;

  beforeAll(async () => {
    t = await startTestHub(driver);
    serverId = await t.addStdioServer('flaky', [flakyServer]);
    other = driver === 'postgres' ? peerBundleService(t.hub) : t.hub.bundles;
  });
  afterAll(async () => {
    if (other !== t?.hub.bundles) await other?.close();
    await t?.close();
  });

  const echo = (message: string) => ({ steps: [{ server: 0, tool: 'echo', args: { message } }] });

  /** Runs the bundle's stored workflow on `service`; the message its step echoed. */
  async function run(service: BundleService, bundleId: string): Promise<unknown> {
    const { done } = await service.execute({ bundleId });
    const result = await done;
    expect(result.status).toBe('succeeded');
    return (result.results[0]?.result as { message?: unknown } | undefined)?.message;
  }

  it('the next execute runs the bundle as edited, and a deleted bundle no longer runs', async () => {
    const { hub } = t;
    const bundle = await hub.bundles.create({
      bundleName: 'edited',
      serverIds: [serverId],
      workflow: echo('v1'),
    });
    // Twice: the second may come from a cache.
    expect(await run(other, bundle.id)).toBe('v1');
    expect(await run(other, bundle.id)).toBe('v1');

    const patched = await t.api({
      method: 'PATCH',
      url: `/api/mcp/bundle/${bundle.id}`,
      payload: { workflow: echo('v2') },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(await run(other, bundle.id)).toBe('v2');

    const deleted = await t.api({ method: 'DELETE', url: `/api/mcp/bundle/${bundle.id}` });
    expect(deleted.statusCode, deleted.body).toBe(200);
    const refused = await other.execute({ bundleId: bundle.id }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isHubError(refused) && refused.code).toBe('SB_ERR_NOT_FOUND');
  });
});
