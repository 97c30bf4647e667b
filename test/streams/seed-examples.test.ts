import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { type FixtureServer, serveFixtures, structured } from '../helpers/example-servers.js';
import { testToken } from '../helpers/hub.js';
import { type StreamTestHub, startStreamTestHub } from '../helpers/stream-hub.js';

const run = promisify(execFile);

const article = `<html><head><title>Fresh Coffee Beans | Roastery</title>
<meta name="description" content="Single origin coffee beans roasted weekly."></head>
<body><h1>Coffee beans</h1><p>Our coffee beans are roasted weekly. Coffee lovers choose our beans.</p>
<img src="a.png"></body></html>`;
const product = (n: number) => `<html><head><title>Product ${n}</title>
<meta name="description" content="Product number ${n}"></head><body><main><h2>Widget ${n}</h2>
<p>Widget ${n} is the best widget.</p></main></body></html>`;

/** Runs one of examples/clients/*.mjs against the test hub and returns its stdout lines. */
async function runExample(t: StreamTestHub, script: string, args: string[]): Promise<string[]> {
  const { stdout } = await run(process.execPath, [`${projectRoot}/examples/clients/${script}`, ...args], {
    env: {
      ...process.env,
      SWITCHBOARD_URL: t.baseUrl,
      SWITCHBOARD_API_TOKEN: testToken,
      STREAM_INTERVAL_MS: '50',
    },
    timeout: 30_000,
  });
  return stdout.split('\n').filter(Boolean);
}

const payloadOf = (lines: string[], prefix: string) =>
  lines.filter((l) => l.startsWith(prefix)).map((l) => JSON.parse(l.slice(prefix.length)));

describe("the seed's stream examples, as written plus auth, against server 1", () => {
  let t: StreamTestHub;
  let pages: FixtureServer;
  beforeAll(async () => {
    t = await startStreamTestHub();
    pages = await serveFixtures({
      '/article': { body: article },
      '/p1': { body: product(1) },
      '/p2': { body: product(2) },
    });
  });
  afterAll(async () => {
    await pages?.close();
    await t?.close();
  });

  it('analyze { data: { url } } returns a real SEO analysis as server-response', async () => {
    const lines = await runExample(t, 'stream-seo.mjs', [pages.url('/article')]);
    const [response] = payloadOf(lines, 'Server processed: ');
    expect(response).toMatchObject({ type: 'analyze', ok: true, seq: expect.any(Number) });
    expect(response.id).toBeDefined();
    expect(response.durationMs).toBeGreaterThan(0);
    const analysis = structured<{ title: string; score: number; keywords: unknown }>(response.result);
    expect(analysis.title).toBe('Fresh Coffee Beans | Roastery');
    expect(typeof analysis.score).toBe('number');
    const [status] = payloadOf(lines, 'Stream status: ');
    expect(status).toMatchObject({ serverId: 1, connectedClients: 1, messagesSent: 1 });
    expect(status.messagesReceived).toBe(2);
    expect(status.topics).toEqual(expect.arrayContaining(['seo-analysis', 'data-mining']));
    expect(pages.requests).toContain('/article');
  });

  it('mine-data { url, attributes } (arguments as the rest of the message) mines each page', async () => {
    const lines = await runExample(t, 'stream-data-mining.mjs', [pages.url('/p1'), pages.url('/p2')]);
    expect(lines[0]).toBe('Connected to stream');
    const responses = payloadOf(lines, 'Mined data: ');
    expect(responses).toHaveLength(2);
    const mined = responses.map(
      (r) => structured<{ pages: { url: string; data: Record<string, unknown> }[] }>(r.result).pages[0]!,
    );
    expect(mined.map((p) => p.data.title).sort()).toEqual(['Product 1', 'Product 2']);
    for (const p of mined) {
      expect(p.data.meta).toMatchObject({ description: expect.stringMatching(/^Product number \d$/) });
      expect(p.data.content).toMatch(/Widget \d is the best widget\./);
    }
    for (const r of responses) expect(r).toMatchObject({ type: 'mine-data', ok: true });
  });

  it('records every stream message in both directions with its stream id', async () => {
    const rows = async () =>
      (
        await t.hub.db.query<{ stream_id: string; direction: string; event: string }>(
          `SELECT stream_id, event_data->>'direction' AS direction, event_data->>'event' AS event
           FROM mcp_events WHERE event_type = 'stream_message' ORDER BY id`,
        )
      ).rows;
    let found: Awaited<ReturnType<typeof rows>> = [];
    const started = Date.now();
    while (!found.some((r) => r.event === 'stream-stopped') && Date.now() - started < 10_000) {
      await new Promise((r) => setTimeout(r, 50));
      found = await rows();
    }
    const seo = found.filter((r) => r.stream_id.startsWith('stream-1-client-123-'));
    expect(
      seo
        .filter((r) => r.direction === 'in')
        .map((r) => r.event)
        .sort(),
    ).toEqual(['client-message', 'subscribe-topic']);
    expect(seo.filter((r) => r.direction === 'out').map((r) => r.event)).toContain('server-response');
    const calls = await t.hub.db.query<{ source: string; client_id: string }>(
      `SELECT source, client_id FROM mcp_events WHERE event_type = 'tool_call' AND stream_id = $1`,
      [seo[0]!.stream_id],
    );
    expect(calls.rows).toEqual([{ source: 'stream', client_id: 'client-123' }]);
  });
});
