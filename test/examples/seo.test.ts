import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectExample,
  type ExampleConnection,
  exitAfterStdinEnds,
  type FixtureServer,
  resultText,
  serveFixtures,
  structured,
} from '../helpers/example-servers.js';

// A page that does everything right: 1 h1, good title and description, 300+ words, alt on every image.
const SENTENCES = [
  'Good coffee starts with fresh beans and clean water.',
  'Roasting changes the flavour of the beans more than any other step.',
  'A burr grinder gives an even grind, which makes extraction predictable.',
  'Brewing temperature matters: too hot and the cup turns bitter, too cold and it tastes sour.',
  'Store beans in an airtight container away from light and heat.',
  'Espresso needs a fine grind, while a French press wants a coarse one.',
];
const BODY = Array.from({ length: 6 }, (_, i) => `<p>${SENTENCES.join(' ')} Section ${i + 1}.</p>`).join(
  '\n',
);
const GOOD_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Brewing Better Coffee at Home: A Practical Guide</title>
  <meta name="description" content="How to brew better coffee at home: beans, roasting, grinding, water temperature and storage, explained step by step.">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="index, follow">
  <meta property="og:title" content="Brewing Better Coffee">
  <meta name="twitter:card" content="summary">
  <link rel="canonical" href="/guide">
  <style>p { color: red }</style>
  <script>var coffee = "not counted";</script>
</head>
<body>
  <nav><a href="/">Home</a> <a href="/beans">Beans</a> <a href="https://example.org/x" rel="nofollow">Elsewhere</a>
  <a href="mailto:hello@example.com">Mail</a></nav>
  <main>
    <h1>Brewing Better Coffee</h1>
    <h2>Beans</h2>
    ${BODY}
    <h2>Grinding</h2>
    <h3>Burr grinders</h3>
    <img src="/img/beans.jpg" alt="Roasted coffee beans">
    <img src="/img/cup.jpg" alt="">
  </main>
</body>
</html>`;

const BAD_PAGE = `<html><body>
  <h1>First</h1><h1>Second</h1><h3>Skipped a level</h3>
  <p>Too short to rank.</p>
  <img src="a.png"><img src="b.png"><img src="c.png" alt="ok">
</body></html>`;

function minePage(n: number): string {
  return `<html><head><title>Product ${n}</title><meta name="description" content="Product number ${n}"></head>
<body><main><h2>Widget ${n}</h2><p>Widgets are great. Widget ${n} is the best widget.</p>
<span class="price">$${n}.99</span><span class="price">$${n + 1}.49</span></main></body></html>`;
}

type Analysis = {
  url: string | null;
  status: number | null;
  title: string | null;
  metaDescription: string | null;
  meta: {
    robots: string | null;
    viewport: string | null;
    openGraph: Record<string, string>;
    twitter: Record<string, string>;
  };
  canonical: string | null;
  lang: string | null;
  headings: { counts: Record<string, number>; h1: string[]; outline: { level: number; text: string }[] };
  links: {
    total: number;
    internal: number;
    external: number;
    nofollow: number;
    other: number;
    list: { href: string }[];
  };
  images: { total: number; withoutAlt: number; emptyAlt: number; missingAlt: string[] };
  wordCount: number;
  keywordDensity: {
    top: { term: string; count: number; density: number }[];
    requested: { keyword: string; count: number; density: number; inTitle: boolean; inH1: boolean }[];
  };
  keywords: string[];
  topic: string;
  score: number;
  grade: string;
  findings: { severity: string; code: string; message: string; penalty: number }[];
};

type Mined = {
  pages: {
    url: string | null;
    ok: boolean;
    status: number | null;
    error: string | null;
    data: Record<string, unknown>;
  }[];
  count: number;
  succeeded: number;
  failed: number;
  title: string | null;
  keywords: string[];
  topic: string;
};

let fixtures: FixtureServer;
let seo: ExampleConnection;

beforeAll(async () => {
  fixtures = await serveFixtures({
    '/guide': { body: GOOD_PAGE },
    '/bad': { body: BAD_PAGE },
    '/p1': { body: minePage(1) },
    '/p2': { body: minePage(2), delayMs: 50 },
    '/p3': { body: minePage(3) },
    '/slow': { body: GOOD_PAGE, delayMs: 20_000 },
    '/logo.png': { body: Buffer.from([0x89, 0x50, 0x4e, 0x47]), type: 'image/png' },
  });
  seo = await connectExample('seo');
});

afterAll(async () => {
  await seo?.close();
  await fixtures?.close();
});

describe('seo server: protocol', () => {
  it('negotiates the 2026-07-28 revision with an auto client', () => {
    expect(seo.client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
  });

  it('serves a legacy (2025-11-25) client too', async () => {
    const legacy = await connectExample('seo', { era: 'legacy' });
    try {
      expect(legacy.client.getNegotiatedProtocolVersion()).toBe('2025-11-25');
      const result = await legacy.client.callTool({ name: 'analyze_seo', arguments: { html: BAD_PAGE } });
      expect(structured<Analysis>(result).headings.counts.h1).toBe(2);
    } finally {
      await legacy.close();
    }
  });

  it('exits by itself, with code 0, when the client closes its stdin', async () => {
    const exit = await exitAfterStdinEnds('seo');
    expect(exit).toMatchObject({ code: 0, signal: null });
  });

  it('lists analyze_seo, its alias analyze, and mine-data, with output schemas', async () => {
    const { tools } = await seo.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['analyze', 'analyze_seo', 'mine-data']);
    for (const tool of tools) expect(tool.outputSchema).toBeDefined();
  });
});

describe('analyze_seo', () => {
  it('analyses a fetched page', async () => {
    const url = fixtures.url('/guide');
    const a = structured<Analysis>(
      await seo.client.callTool({
        name: 'analyze_seo',
        arguments: { url, keywords: ['coffee', 'french press'] },
      }),
    );
    expect(a.url).toBe(url);
    expect(a.status).toBe(200);
    expect(a.title).toBe('Brewing Better Coffee at Home: A Practical Guide');
    expect(a.metaDescription).toMatch(/^How to brew better coffee/);
    expect(a.meta.viewport).toContain('width=device-width');
    expect(a.meta.openGraph.title).toBe('Brewing Better Coffee');
    expect(a.meta.twitter.card).toBe('summary');
    expect(a.canonical).toBe(fixtures.url('/guide'));
    expect(a.lang).toBe('en');
    expect(a.headings.h1).toEqual(['Brewing Better Coffee']);
    expect(a.headings.outline.map((h) => h.level)).toEqual([1, 2, 2, 3]);
    expect(a.links).toMatchObject({ internal: 2, external: 1, nofollow: 1, other: 1, total: 4 });
    expect(a.links.list[0]?.href).toBe(fixtures.url('/'));
    expect(a.images).toMatchObject({ total: 2, withoutAlt: 0, emptyAlt: 1 });
    expect(a.wordCount).toBeGreaterThan(300);

    // "coffee" is in the h1, the nav-free text once per paragraph and nowhere in the script (removed).
    const coffee = a.keywordDensity.requested.find((k) => k.keyword === 'coffee');
    expect(coffee).toMatchObject({ count: 7, inTitle: true, inH1: true });
    expect(coffee?.density).toBeCloseTo((7 / a.wordCount) * 100, 1);
    const press = a.keywordDensity.requested.find((k) => k.keyword === 'french press');
    expect(press).toMatchObject({ count: 6, inTitle: false });
    expect(a.keywordDensity.top[0]?.term).toBe('beans');
    expect(a.keywords.slice(0, 2)).toEqual(['coffee', 'french press']);
    expect(a.topic).toBe('Brewing Better Coffee');

    expect(a.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(a.score).toBeGreaterThanOrEqual(90);
    expect(a.grade).toBe('A');
    expect(a.score).toBe(100 - a.findings.reduce((sum, f) => sum + f.penalty, 0));
  });

  it('finds the problems of a poor page passed as html', async () => {
    const a = structured<Analysis>(
      await seo.client.callTool({ name: 'analyze_seo', arguments: { html: BAD_PAGE, keywords: 'widgets' } }),
    );
    expect(a.url).toBeNull();
    expect(a.title).toBeNull();
    expect(a.images).toMatchObject({ total: 3, withoutAlt: 2, missingAlt: ['a.png', 'b.png'] });
    const codes = a.findings.map((f) => f.code);
    for (const code of [
      'missing-title',
      'missing-meta-description',
      'multiple-h1',
      'heading-level-skipped',
      'images-missing-alt',
      'thin-content',
      'missing-viewport',
      'keyword-missing',
    ]) {
      expect(codes).toContain(code);
    }
    expect(a.score).toBeLessThan(40);
    expect(a.grade).toBe('F');
    expect(a.topic).toBe('First');
  });

  it('resolves links against the url given with inline html, without fetching it', async () => {
    const before = fixtures.requests.length;
    const a = structured<Analysis>(
      await seo.client.callTool({
        name: 'analyze_seo',
        arguments: {
          html: '<a href="/x">x</a><a href="https://other.test/">o</a>',
          url: fixtures.url('/page'),
        },
      }),
    );
    expect(fixtures.requests.length).toBe(before);
    expect(a.links).toMatchObject({ internal: 1, external: 1 });
    expect(a.links.list[0]?.href).toBe(fixtures.url('/x'));
  });

  it('answers the same under the alias analyze', async () => {
    const args = { html: GOOD_PAGE, keywords: ['coffee'] };
    const viaAlias = await seo.client.callTool({ name: 'analyze', arguments: args });
    const direct = await seo.client.callTool({ name: 'analyze_seo', arguments: args });
    expect(structured(viaAlias)).toEqual(structured(direct));
  });

  it('reports an HTTP error status as a finding', async () => {
    const a = structured<Analysis>(
      await seo.client.callTool({ name: 'analyze_seo', arguments: { url: fixtures.url('/nope') } }),
    );
    expect(a.status).toBe(404);
    expect(a.findings.map((f) => f.code)).toContain('http-error');
  });
});

describe('mine-data', () => {
  it('mines several urls, with a progress notification per page', async () => {
    const urls = [fixtures.url('/p1'), fixtures.url('/p2'), fixtures.url('/p3'), fixtures.url('/gone')];
    const progress: { progress: number; total?: number; message?: string }[] = [];
    const result = await seo.client.callTool(
      { name: 'mine-data', arguments: { urls, attributes: ['title', 'meta', 'content', 'h2', '.price'] } },
      { onprogress: (p) => progress.push(p) },
    );
    const mined = structured<Mined>(result);
    expect(mined).toMatchObject({ count: 4, succeeded: 3, failed: 1 });
    expect(mined.pages.map((p) => p.url)).toEqual(urls);
    for (const [i, page] of mined.pages.slice(0, 3).entries()) {
      const n = i + 1;
      expect(page.ok).toBe(true);
      expect(page.data.title).toBe(`Product ${n}`);
      expect(page.data.meta).toMatchObject({ description: `Product number ${n}` });
      expect(page.data.content).toContain(`Widget ${n} is the best widget.`);
      expect(page.data.h2).toEqual([`Widget ${n}`]);
      expect(page.data['.price']).toEqual([`$${n}.99`, `$${n + 1}.49`]);
    }
    expect(mined.pages[3]).toMatchObject({ ok: false, status: 404, error: 'HTTP 404', data: {} });

    expect(progress).toHaveLength(4);
    expect(progress.map((p) => p.progress)).toEqual([1, 2, 3, 4]);
    expect(progress.every((p) => p.total === 4)).toBe(true);
    for (const url of urls) expect(progress.some((p) => p.message?.includes(url))).toBe(true);
    expect(progress.find((p) => p.message?.includes('/gone'))?.message).toMatch(/^failed .*HTTP 404/);

    // Chaining fields for generate_content come from the first page mined.
    expect(mined.title).toBe('Product 1');
    expect(mined.keywords).toContain('widget');
    expect(mined.topic).toBe('Product 1');
  });

  it('mines inline html for links, headings, images and keywords', async () => {
    const mined = structured<Mined>(
      await seo.client.callTool({
        name: 'mine-data',
        arguments: {
          html: GOOD_PAGE,
          url: 'https://shop.test/guide',
          attributes: ['links', 'headings', 'images', 'keywords'],
        },
      }),
    );
    const data = mined.pages[0]?.data as Record<string, unknown[]>;
    expect(data.links).toHaveLength(3);
    expect(data.links?.[1]).toMatchObject({ href: 'https://shop.test/beans', text: 'Beans', internal: true });
    expect(data.headings?.[0]).toEqual({ level: 1, text: 'Brewing Better Coffee' });
    expect(data.images).toEqual([
      { src: 'https://shop.test/img/beans.jpg', alt: 'Roasted coffee beans' },
      { src: 'https://shop.test/img/cup.jpg', alt: '' },
    ]);
    expect(data.keywords?.[0]).toBe('beans');
  });

  it('defaults to title, meta and content', async () => {
    const mined = structured<Mined>(
      await seo.client.callTool({ name: 'mine-data', arguments: { url: fixtures.url('/p1') } }),
    );
    expect(Object.keys(mined.pages[0]?.data ?? {}).sort()).toEqual(['content', 'meta', 'title']);
  });
});

describe('cancellation', () => {
  it('a cancelled call stops fetching, and the server keeps serving', async () => {
    const controller = new AbortController();
    const call = seo.client.callTool(
      { name: 'mine-data', arguments: { urls: [fixtures.url('/slow')] } },
      { signal: controller.signal },
    );
    await expect.poll(() => fixtures.requests.includes('/slow')).toBe(true);
    controller.abort();
    await expect(call).rejects.toThrow();
    // The server passed the cancellation on to its fetch, which hung up on the page.
    await expect.poll(() => fixtures.abandoned.includes('/slow'), { timeout: 5_000 }).toBe(true);
    const a = structured<Analysis>(
      await seo.client.callTool({ name: 'analyze_seo', arguments: { html: BAD_PAGE } }),
    );
    expect(a.headings.counts.h1).toBe(2);
  });
});

describe('bad input gives tool errors, and the server keeps serving', () => {
  const cases: [string, string, Record<string, unknown>, RegExp][] = [
    ['no page', 'analyze_seo', {}, /url to fetch or the html/],
    ['not http', 'analyze_seo', { url: 'file:///etc/passwd' }, /Only http and https/],
    ['not a url', 'analyze_seo', { url: 'not a url' }, /Invalid URL/],
    ['wrong type', 'analyze_seo', { html: 42 }, /Input validation error/],
    ['connection refused', 'analyze_seo', { url: 'http://127.0.0.1:1/' }, /failed/],
    ['not html', 'analyze_seo', { url: '/logo.png' }, /not an HTML page/],
    ['no page to mine', 'mine-data', { attributes: ['title'] }, /url, a list of urls, or the html/],
    ['bad selector', 'mine-data', { html: '<p>x</p>', attributes: ['p[['] }, /invalid CSS selector/],
    ['all pages fail', 'mine-data', { urls: ['/nope1', '/nope2'] }, /No page could be mined/],
  ];
  for (const [label, tool, args, message] of cases) {
    it(label, async () => {
      const fixed = Object.fromEntries(
        Object.entries(args).map(([k, v]) => [
          k,
          typeof v === 'string' && v.startsWith('/')
            ? fixtures.url(v)
            : Array.isArray(v)
              ? v.map((x) => (typeof x === 'string' && x.startsWith('/') ? fixtures.url(x) : x))
              : v,
        ]),
      );
      const result = await seo.client.callTool({ name: tool, arguments: fixed });
      expect(result.isError).toBe(true);
      expect(resultText(result)).toMatch(message);
    });
  }

  it('still answers after the errors', async () => {
    const a = structured<Analysis>(
      await seo.client.callTool({ name: 'analyze_seo', arguments: { html: BAD_PAGE } }),
    );
    expect(a.headings.counts.h1).toBe(2);
  });
});
