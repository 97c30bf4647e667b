import { describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { flakyServer, startTestHub, type TestHub } from '../helpers/hub.js';

async function startLongExecution(t: TestHub, ms: number): Promise<string> {
  const serverId = await t.addStdioServer('flaky', [flakyServer]);
  const bundle = await t.api({
    method: 'POST',
    url: '/api/mcp/bundle/create',
    payload: { bundleName: 'long', serverIds: [serverId] },
  });
  const res = await t.api({
    method: 'POST',
    url: '/api/mcp/bundle/execute',
    payload: {
      bundleId: bundle.json().bundleId,
      async: true,
      workflow: { steps: [{ server: 0, tool: 'sleep', args: { ms } }] },
    },
  });
  expect(res.statusCode).toBe(202);
  // Let the call reach the server.
  await new Promise((r) => setTimeout(r, 300));
  return res.json().executionId;
}

async function storedStatus(t: TestHub, executionId: string): Promise<string | undefined> {
  const { rows } = await t.hub.db.query<{ status: string }>(
    'SELECT status FROM mcp_bundle_executions WHERE id = $1',
    [executionId],
  );
  return rows[0]?.status;
}

describe.each(drivers)('bundle executions at shutdown on %s', (driver) => {
  it('past the grace, a running execution is cancelled and stored before the database closes', async () => {
    const t = await startTestHub(driver, { SWITCHBOARD_SHUTDOWN_GRACE_MS: '0' });
    try {
      const id = await startLongExecution(t, 10_000);
      const started = Date.now();
      await t.app.close();
      // Closing cancelled the 10 s step instead of waiting for it.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await storedStatus(t, id)).toBe('cancelled');
    } finally {
      await t.close();
    }
  });

  it('within the grace, a running execution finishes', async () => {
    const t = await startTestHub(driver, { SWITCHBOARD_SHUTDOWN_GRACE_MS: '5000' });
    try {
      const id = await startLongExecution(t, 600);
      await t.app.close();
      expect(await storedStatus(t, id)).toBe('succeeded');
    } finally {
      await t.close();
    }
  });
});
