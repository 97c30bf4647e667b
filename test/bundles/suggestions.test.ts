import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BundleSuggestion as Suggestion } from '../../src/bundles/suggestions.js';
import type { Db } from '../../src/db/db.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';
import { insertEvents, prng, type TestEvent } from '../helpers/events.js';
import { flakyServer, startTestHub, type TestHub } from '../helpers/hub.js';

/** A page per topic: analyze_seo finds its title, which the planted sessions pass on to generate_content. */
const topics = [
  'Espresso at home',
  'Cold brew ratios',
  'Grinding coffee beans',
  'Latte art basics',
  'Choosing a kettle',
  'Storing roasted beans',
  'Pour-over technique',
  'Decaf without chemicals',
  'Milk frothing',
  'Water hardness and taste',
];
const page = (topic: string) =>
  `<html lang="en"><head><title>${topic}</title><meta name="description" content="All about ${topic}."></head>` +
  `<body><h1>${topic}: a guide</h1><p>${topic} explained step by step, with the tools you need.</p></body></html>`;

describe.each(drivers)('bundle suggestions from usage on %s', (driver) => {
  let t: TestHub;
  let noiseA: number;
  let noiseB: number;
  const seo = 1;
  const content = 2;

  async function suggestions(query = ''): Promise<Suggestion[]> {
    const res = await t.api({ method: 'GET', url: `/api/mcp/bundle/suggestions${query}` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().suggestions;
  }

  beforeAll(async () => {
    t = await startTestHub(driver);
    noiseA = await t.addStdioServer('noise-a', [flakyServer]);
    noiseB = await t.addStdioServer('noise-b', [flakyServer]);
    const random = prng(5);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const word = () => pick(['alpha', 'bravo', 'delta', 'echo', 'kilo', 'lima', 'oscar', 'tango']);
    // Real calls, recorded by the pool as a stream's or client's calls are; no value flows between them.
    type Call = [number, string, Record<string, unknown>];
    const detour = (): Call =>
      pick<() => Call>([
        () => [noiseA, 'echo', { message: `${word()} ${word()}` }],
        () => [noiseB, 'echo', { message: `${word()} ${word()}` }],
        () => [noiseA, 'sleep', { ms: 0 }],
        () => [noiseB, 'sleep', { ms: 0 }],
        () => [noiseA, 'stats', {}],
        () => [seo, 'mine-data', { html: page(pick(topics)), attributes: ['headings'] }],
      ])();
    // Noise uses the planted tools too, now and then, in any order and with no value passed between them.
    const noise = (): Call => {
      const r = random();
      if (r < 0.03) return [content, 'generate_content', { keywords: [word(), word()], max_tokens: 40 }];
      if (r < 0.06) return [seo, 'analyze_seo', { html: page(pick(topics)) }];
      return detour();
    };
    const call = async (actor: string, [server, tool, args]: Call) => {
      const { result, ok } = await t.hub.pool.callTool(server, tool, args, {
        clientId: actor,
        source: 'rest',
      });
      expect(ok, `${tool}: ${JSON.stringify(result.content)}`).toBe(true);
      return result.structuredContent as Record<string, unknown>;
    };
    const planted = async (i: number) => {
      const actor = `planted-${i}`;
      const analysis = await call(actor, [seo, 'analyze_seo', { html: page(topics[i % topics.length]!) }]);
      // A detour or two between the steps, as a person working by hand makes (never the planted tools).
      const detours = Math.floor(random() * 3);
      for (let d = 0; d < detours; d++) await call(actor, detour());
      await call(actor, [content, 'generate_content', { topic: analysis.title, max_tokens: 60 }]);
    };
    const noisy = async (i: number) => {
      const calls = 3 + Math.floor(random() * 3);
      for (let c = 0; c < calls; c++) await call(`noise-${i}`, noise());
    };
    const sessions = [
      ...Array.from({ length: 200 }, (_, i) => () => planted(i)),
      ...Array.from({ length: 300 }, (_, i) => () => noisy(i)),
    ];
    // Interleaved, a few sessions at a time (each session's own calls stay in order).
    sessions.sort(() => random() - 0.5);
    for (let i = 0; i < sessions.length; i += 8) await Promise.all(sessions.slice(i, i + 8).map((s) => s()));
    await t.hub.recorder.flush();
  }, 300_000);
  afterAll(() => t?.close());

  it('suggests the planted bundle first, in its order, with the reference the value flowed through', async () => {
    const list = await suggestions();
    expect(list.length).toBeGreaterThan(0);
    const [first] = list;
    expect(first).toMatchObject({
      serverIds: [seo, content],
      servers: ['seo', 'content'],
      tools: ['analyze_seo', 'generate_content'],
      bundleConfig: { auto_chain: true, parallel: false },
    });
    expect(first!.id).toMatch(/^sugg-[0-9a-f]{16}$/);
    expect(first!.workflow.steps).toHaveLength(2);
    expect(first!.workflow.steps[0]).toMatchObject({ server: 0, tool: 'analyze_seo' });
    // The planted argument that varied is a reference; the one always the same is its literal value.
    expect(first!.workflow.steps[1]).toEqual({
      server: 1,
      tool: 'generate_content',
      args: { max_tokens: 60, topic: '{{steps.0.result.title}}' },
    });
    expect(first!.workflow.steps[0]!.args?.html).toMatch(/^<html lang="en"><head><title>/);
    const { evidence } = first!;
    expect(evidence.support).toBeGreaterThanOrEqual(200);
    expect(evidence.confidence).toBeGreaterThan(0.8);
    expect(evidence.lift).toBeGreaterThan(1.2);
    expect(evidence.sessionsMined).toBe(500);
    expect(evidence.sessions).toHaveLength(10);
    for (const s of evidence.sessions) expect(s).toMatch(/^(planted|noise)-\d+@\d{4}-\d{2}-\d{2}T/);
    // The examples are the most recent sessions with the pattern: a noise session may be among them.
    const flow = evidence.flows.find((f) => f.used);
    expect(flow).toMatchObject({
      fromStep: 0,
      toStep: 1,
      path: 'title',
      argument: 'topic',
      reference: '{{steps.0.result.title}}',
    });
    expect(flow!.share).toBeGreaterThanOrEqual(0.8);
    expect(first!.score).toBeGreaterThan(0);
    expect(list.map((s) => s.score)).toEqual([...list.map((s) => s.score)].sort((a, b) => b - a));
    // The same pattern keeps its id.
    expect((await suggestions())[0]!.id).toBe(first!.id);
  });

  it('suggests no noise: random pairs are in the log, but below the confidence and lift thresholds', async () => {
    const list = await suggestions();
    expect(list.map((s) => s.tools.join('→'))).toEqual(['analyze_seo→generate_content']);
    // The noise is there: with no threshold but support, the function returns many more patterns.
    const { rows } = await t.hub.db.query<{ tools: string[]; confidence: number; lift: number }>(
      'SELECT tools, confidence, lift FROM suggest_bundle_from_patterns(p_min_confidence => 0, p_min_lift => 0)',
    );
    const noisePatterns = rows.filter((r) => r.tools.join('→') !== 'analyze_seo→generate_content');
    expect(noisePatterns.length).toBeGreaterThan(20);
    for (const r of noisePatterns) expect(r.confidence < 0.3 || r.lift < 1.2, r.tools.join('→')).toBe(true);
  });

  it('takes limit, minSupport and since, and refuses bad values with 400', async () => {
    expect(await suggestions('?limit=1&minSupport=2')).toHaveLength(1);
    expect(await suggestions('?minSupport=100000')).toEqual([]);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    expect(await suggestions(`?since=${encodeURIComponent(tomorrow)}`)).toEqual([]);
    expect(await suggestions('?since=2020-01-01')).toHaveLength(1);
    for (const query of [
      'limit=0',
      'limit=abc',
      'limit=101',
      'minSupport=1',
      'since=yesterday',
      'since=2026-02-30',
      'foo=1',
    ]) {
      const res = await t.api({ method: 'GET', url: `/api/mcp/bundle/suggestions?${query}` });
      expect(res.statusCode, query).toBe(400);
      expect(res.json(), query).toMatchObject({ success: false, error: { code: 'SB_ERR_VALIDATION' } });
    }
  });

  it('accepts a suggestion into a bundle that runs, and does not suggest it again', async () => {
    const [suggestion] = await suggestions();
    const accepted = await t.api({
      method: 'POST',
      url: `/api/mcp/bundle/suggestions/${suggestion!.id}/accept`,
      payload: { bundleName: 'SEO → content' },
    });
    expect(accepted.statusCode, accepted.body).toBe(201);
    const body = accepted.json();
    expect(body).toMatchObject({
      success: true,
      bundle: {
        name: 'SEO → content',
        serverIds: [seo, content],
        config: { auto_chain: true, parallel: false },
        workflow: suggestion!.workflow,
      },
    });
    expect(body.bundleId).toBe(body.bundle.id);
    expect(body.bundle.description).toContain(suggestion!.id);

    const run = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/execute',
      payload: { bundleId: body.bundleId },
    });
    expect(run.statusCode, run.body).toBe(200);
    const result = run.json();
    expect(result.status).toBe('succeeded');
    const [analysis, written] = result.results;
    expect(analysis.result.title).toEqual(expect.any(String));
    expect(written.args).toEqual({ topic: analysis.result.title, max_tokens: 60 });
    expect(written.result.topic).toBe(analysis.result.title);

    expect((await suggestions()).some((s) => s.id === suggestion!.id)).toBe(false);
    const again = await t.api({
      method: 'POST',
      url: `/api/mcp/bundle/suggestions/${suggestion!.id}/accept`,
    });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({
      success: false,
      error: { code: 'SB_ERR_CONFLICT', details: { suggestionId: suggestion!.id, bundleId: body.bundleId } },
    });
    expect(body.bundle.suggestionId).toBe(suggestion!.id);

    // Deleting the bundle brings the suggestion back (the bundle's own calls are not evidence either way).
    await t.api({ method: 'DELETE', url: `/api/mcp/bundle/${body.bundleId}` });
    const back = await suggestions();
    expect(back[0]!.id).toBe(suggestion!.id);
    expect(back[0]!.evidence.support).toBe(suggestion!.evidence.support);

    // Accepted twice at once (a double click): one bundle, and the other accept names it.
    const accept = () =>
      t.api({ method: 'POST', url: `/api/mcp/bundle/suggestions/${suggestion!.id}/accept` });
    const both = await Promise.all([accept(), accept()]);
    expect(both.map((r) => r.statusCode).sort()).toEqual([201, 409]);
    const winner = both.find((r) => r.statusCode === 201)!.json().bundleId;
    expect(both.find((r) => r.statusCode === 409)!.json().error).toMatchObject({
      code: 'SB_ERR_CONFLICT',
      details: { suggestionId: suggestion!.id, bundleId: winner },
    });
    const live = await t.hub.db.query<{ id: string }>(
      'SELECT id FROM mcp_bundles WHERE suggestion_id = $1 AND deleted_at IS NULL',
      [suggestion!.id],
    );
    expect(live.rows).toEqual([{ id: winner }]);
    // The database holds the line even for an accept that passed the check before the other stored its bundle.
    await expect(
      t.hub.bundles.create({ bundleName: 'again', serverIds: [seo, content] }, suggestion!.id),
    ).rejects.toMatchObject({ code: 'SB_ERR_CONFLICT', details: { bundleId: winner } });
    await t.api({ method: 'DELETE', url: `/api/mcp/bundle/${winner}` });
  });

  it('answers 404 for an unknown suggestion and 400 for a bad body', async () => {
    const unknown = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/suggestions/sugg-0000000000000000/accept',
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('SB_ERR_NOT_FOUND');
    const [suggestion] = await suggestions();
    const bad = await t.api({
      method: 'POST',
      url: `/api/mcp/bundle/suggestions/${suggestion!.id}/accept`,
      payload: { bundleName: '', extra: true },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('SB_ERR_VALIDATION');
    expect(await t.hub.db.query('SELECT 1 FROM mcp_bundles WHERE deleted_at IS NULL')).toMatchObject({
      rowCount: 0,
    });
  });
});

describe.each(drivers)('workflow templates from recorded values on %s', (driver) => {
  let t: TestHub;
  let list: Suggestion[];
  const [seo, content, graphics] = [1, 2, 3];
  const started = Date.now() - 3_600_000;

  beforeAll(async () => {
    t = await startTestHub(driver);
    // Recorded as the pool records calls: through the event bus and the recorder (so sanitized).
    const call = (
      actor: string,
      second: number,
      serverId: number,
      toolName: string,
      args: object,
      result?: object,
    ) =>
      t.hub.events.emit({
        type: 'tool_call',
        at: new Date(started + second * 1000),
        serverId,
        toolName,
        ok: true,
        outcome: 'success',
        clientId: actor,
        source: 'rest',
        data: { arguments: args, ...(result ? { result: { content: [], structuredContent: result } } : {}) },
      });
    for (let i = 0; i < 10; i++) {
      // Values from nested paths and array items; a constant argument; a secret the recorder redacted.
      call(
        `nested-${i}`,
        i * 60,
        seo,
        'analyze_seo',
        { html: `<p>${i}</p>` },
        {
          headings: { h1: [`Heading ${i}`] },
          links: { list: [{ href: `https://example.com/${i}` }] },
          score: 40 + i,
        },
      );
      call(`nested-${i}`, i * 60 + 1, content, 'generate_content', {
        topic: `Heading ${i}`,
        url: `https://example.com/${i}`,
        seed: 7,
        api_key: `key-${i}`,
        // Into a nested argument, next to a constant.
        options: { link: { href: `https://example.com/${i}` }, tone: 'plain' },
      });
      // The same value every time on both sides: as likely a coincidence as a flow, so a literal.
      call(`constant-${i}`, i * 60, graphics, 'count', {}, { n: 5 });
      call(`constant-${i}`, i * 60 + 1, content, 'repeat', { times: 5 });
      // Three steps: the last takes values from both earlier ones.
      call(`three-${i}`, i * 60, seo, 'open', {}, { id: `doc-${i}` });
      call(
        `three-${i}`,
        i * 60 + 1,
        graphics,
        'render',
        { ref: `doc-${i}` },
        { file: { path: `/tmp/${i}.png` } },
      );
      call(`three-${i}`, i * 60 + 2, content, 'publish', { origin: `doc-${i}`, path: `/tmp/${i}.png` });
    }
    for (let i = 0; i < 30; i++) call(`single-${i}`, i * 60, graphics, 'other', {});
    await t.hub.recorder.flush();
    const res = await t.api({ method: 'GET', url: '/api/mcp/bundle/suggestions' });
    expect(res.statusCode, res.body).toBe(200);
    list = res.json().suggestions;
  });
  afterAll(() => t?.close());

  const byTools = (tools: string) => list.find((s) => s.tools.join('→') === tools);

  it('refers to nested paths and array items, keeps constants as literals and leaves redacted values out', () => {
    expect(list.map((s) => s.tools.join('→')).sort()).toEqual([
      'analyze_seo→generate_content',
      'count→repeat',
      'open→render→publish',
    ]);
    expect(byTools('analyze_seo→generate_content')!.workflow.steps[1]).toEqual({
      server: 1,
      tool: 'generate_content',
      args: {
        options: { link: { href: '{{steps.0.result.links.list.0.href}}' }, tone: 'plain' },
        seed: 7,
        topic: '{{steps.0.result.headings.h1.0}}',
        url: '{{steps.0.result.links.list.0.href}}',
      },
    });
    expect(
      byTools('analyze_seo→generate_content')!.evidence.flows.find((f) => f.argument === 'options.link.href'),
    ).toMatchObject({ argumentPath: ['options', 'link', 'href'], path: 'links.list.0.href', used: true });
    const constant = byTools('count→repeat')!;
    expect(constant.workflow.steps[1]!.args).toEqual({ times: 5 });
    expect(constant.evidence.flows).toEqual([]);
    expect(constant.bundleConfig).toEqual({ parallel: false });
    expect(constant.serverIds).toEqual([graphics, content]);
  });

  it('chains a three-step workflow from both earlier steps', () => {
    const three = byTools('open→render→publish')!;
    expect(three.serverIds).toEqual([seo, graphics, content]);
    expect(three.workflow.steps).toEqual([
      { server: 0, tool: 'open', args: {} },
      { server: 1, tool: 'render', args: { ref: '{{steps.0.result.id}}' } },
      {
        server: 2,
        tool: 'publish',
        args: { origin: '{{steps.0.result.id}}', path: '{{steps.1.result.file.path}}' },
      },
    ]);
    expect(three.evidence).toMatchObject({ support: 10, confidence: 1, lift: 6 });
    expect(three.evidence.flows.every((f) => f.share === 1 && f.used)).toBe(true);
  });
});

describe.each(drivers)('suggest_bundle_from_patterns() on %s', (driver) => {
  let tdb: TestDb;
  let db: Db;
  const base = Date.UTC(2026, 0, 5, 9);
  const at = (minutes: number) => new Date(base + minutes * 60_000);

  beforeAll(async () => {
    tdb = await openTestDb(driver);
    db = tdb.db;
    for (const name of ['a', 'b', 'c', 'd', 'gone']) {
      await db.query(`INSERT INTO mcp_servers (name, transport, command) VALUES ($1, 'stdio', 'node')`, [
        name,
      ]);
    }
  });
  afterAll(() => tdb?.drop());

  async function patterns(): Promise<
    { tools: string[]; step_servers: number[]; support: number; confidence: number }[]
  > {
    const { rows } = await db.query<{
      tools: string[];
      step_servers: number[];
      support: number;
      confidence: number;
    }>('SELECT * FROM suggest_bundle_from_patterns()');
    return rows;
  }

  const step = (
    actor: string,
    minutes: number,
    server: number,
    tool: string,
    extra: Partial<TestEvent> = {},
  ): TestEvent => ({
    server_id: server,
    tool_name: tool,
    client_id: actor,
    ok: true,
    timestamp: at(minutes),
    event_data: { arguments: {} },
    ...extra,
  });

  it('finds a three-step workflow across servers and drops the pairs it contains', async () => {
    const events: TestEvent[] = [];
    for (let i = 0; i < 12; i++) {
      events.push(
        step(`u${i}`, i * 60, 1, 'x'),
        step(`u${i}`, i * 60 + 1, 2, 'y'),
        step(`u${i}`, i * 60 + 2, 3, 'z'),
      );
    }
    // Sessions that use other tools, so that x, y and z are not in every session (lift above 1).
    for (let i = 0; i < 12; i++) events.push(step(`o${i}`, i * 60, 4, 'w'));
    await insertEvents(db, events);
    const found = await patterns();
    expect(found.map((p) => p.tools.join('→'))).toEqual(['x→y→z']);
    expect(found[0]).toMatchObject({ step_servers: [1, 2, 3], support: 12, confidence: 1 });
  });

  it("splits an actor's calls into sessions at pauses longer than the window, and counts sessions", async () => {
    await db.query('DELETE FROM mcp_events');
    const events: TestEvent[] = [];
    // One actor, 10 sessions a day apart: x then y each time; and x, a pause of 11 minutes, then z, 10 times.
    for (let i = 0; i < 10; i++) {
      events.push(step('one', i * 1440, 1, 'x'), step('one', i * 1440 + 2, 2, 'y'));
      events.push(step('one', i * 1440 + 100, 1, 'x'), step('one', i * 1440 + 111, 3, 'z'));
      events.push(step(`other${i}`, i * 1440, 4, 'w'));
    }
    await insertEvents(db, events);
    const found = await patterns();
    expect(found.map((p) => p.tools.join('→'))).toEqual(['x→y']);
    expect(found[0]!.support).toBe(10);
    // x was called in 20 sessions, and y followed it in 10 of them.
    expect(found[0]!.confidence).toBe(0.5);
  });

  it('takes the stream as the actor when there is one, the client otherwise', async () => {
    await db.query('DELETE FROM mcp_events');
    const events: TestEvent[] = [];
    for (let i = 0; i < 8; i++) {
      // Two clients sharing a stream: one actor, so x then y is a pattern.
      events.push(
        step(`alice${i}`, i * 60, 1, 'x', { stream_id: `stream-${i}` }),
        step(`bob${i}`, i * 60 + 1, 2, 'y', { stream_id: `stream-${i}` }),
      );
      // One client on two streams: two actors, so p then q is not.
      events.push(
        step(`carol${i}`, i * 60, 3, 'p', { stream_id: `left-${i}` }),
        step(`carol${i}`, i * 60 + 1, 4, 'q', { stream_id: `right-${i}` }),
      );
    }
    await insertEvents(db, events);
    const found = await patterns();
    expect(found.map((p) => p.tools.join('→'))).toEqual(['x→y']);
    expect(found[0]!.support).toBe(8);
  });

  it('leaves out calls made by bundles, failed calls, deleted servers and server orders that are bundles', async () => {
    await db.query('DELETE FROM mcp_events');
    const events: TestEvent[] = [];
    for (let i = 0; i < 10; i++) {
      const m = i * 60;
      events.push(
        step(`bundled${i}`, m, 1, 'x', { source: 'bundle' }),
        step(`bundled${i}`, m + 1, 2, 'y', { source: 'bundle' }),
        step(`failing${i}`, m, 1, 'p'),
        step(`failing${i}`, m + 1, 2, 'q', { ok: false }),
        step(`deleted${i}`, m, 1, 'r'),
        step(`deleted${i}`, m + 1, 5, 's'),
        step(`kept${i}`, m, 3, 'k'),
        step(`kept${i}`, m + 1, 4, 'l'),
        step(`reversed${i}`, m, 4, 'm'),
        step(`reversed${i}`, m + 1, 3, 'n'),
      );
    }
    await insertEvents(db, events);
    await db.query('UPDATE mcp_servers SET deleted_at = now() WHERE id = 5');
    expect((await patterns()).map((p) => p.tools.join('→')).sort()).toEqual(['k→l', 'm→n']);
    await db.query(`INSERT INTO mcp_bundles (id, name, server_ids) VALUES ('bundle-t', 't', '[3, 4]')`);
    expect((await patterns()).map((p) => p.tools.join('→'))).toEqual(['m→n']);
    await db.query(`UPDATE mcp_bundles SET deleted_at = now() WHERE id = 'bundle-t'`);
    expect((await patterns()).map((p) => p.tools.join('→')).sort()).toEqual(['k→l', 'm→n']);
  });
});
