import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectExample,
  type ExampleConnection,
  exampleServerPath,
  exitAfterStdinEnds,
  resultText,
  structured,
} from '../helpers/example-servers.js';

type Content = {
  topic: string;
  keywords: string[];
  title: string;
  titleIdeas: string[];
  metaDescription: string;
  intro: string;
  outline: { heading: string; points: string[]; paragraph: string }[];
  recommendations: string[];
  markdown: string;
  wordCount: number;
  truncated: boolean;
  settings: { temperature: number; max_tokens: number; seed: number };
};

const KEYWORDS = ['coffee brewing', 'espresso', 'grind size', 'water temperature'];

function countWords(c: Content): number {
  const texts = [
    ...c.titleIdeas,
    c.metaDescription,
    c.intro,
    ...c.outline.flatMap((s) => [s.heading, ...s.points, s.paragraph]),
    ...c.recommendations,
  ];
  return texts.join(' ').split(/\s+/).filter(Boolean).length;
}

let content: ExampleConnection;

async function generate(args: Record<string, unknown>, connection = content): Promise<Content> {
  return structured<Content>(await connection.client.callTool({ name: 'generate_content', arguments: args }));
}

beforeAll(async () => {
  content = await connectExample('content');
});

afterAll(async () => {
  await content?.close();
});

describe('content server: protocol', () => {
  it('negotiates 2026-07-28 with an auto client and 2025-11-25 with a legacy one', async () => {
    expect(content.client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
    const legacy = await connectExample('content', { era: 'legacy' });
    try {
      expect(legacy.client.getNegotiatedProtocolVersion()).toBe('2025-11-25');
      const c = await generate({ keywords: KEYWORDS, temperature: 0 }, legacy);
      expect(c).toEqual(await generate({ keywords: KEYWORDS, temperature: 0 }));
    } finally {
      await legacy.close();
    }
  });

  it('exits by itself, with code 0, when the client closes its stdin', async () => {
    const exit = await exitAfterStdinEnds('content');
    expect(exit).toMatchObject({ code: 0, signal: null });
  });

  it('declares its tunables in the tool list', async () => {
    const { tools } = await content.client.listTools();
    const tool = tools.find((t) => t.name === 'generate_content');
    expect(tool?.inputSchema.properties).toHaveProperty('temperature');
    expect(tool?.inputSchema.properties).toHaveProperty('max_tokens');
    expect(tool?._meta?.['io.switchboard/tunables']).toEqual({
      temperature: { type: 'number', minimum: 0, maximum: 1, default: 0.7 },
      max_tokens: { type: 'integer', minimum: 1, maximum: 100_000, default: 2000 },
    });
  });
});

describe('generate_content', () => {
  it('writes titles, a meta description, an intro and an outline from keywords', async () => {
    const c = await generate({ keywords: KEYWORDS, temperature: 0 });
    expect(c.topic).toBe('coffee brewing and espresso');
    expect(c.keywords).toEqual(KEYWORDS);
    expect(c.title).toBe('Coffee Brewing and Espresso: A Complete Guide');
    expect(c.titleIdeas).toHaveLength(5);
    expect(c.titleIdeas[1]).toBe('7 Coffee Brewing Tips That Actually Work');
    expect(c.titleIdeas[3]).toBe('Coffee Brewing vs Espresso: What You Need to Know');
    expect(c.metaDescription.length).toBeLessThanOrEqual(160);
    expect(c.metaDescription).toContain('coffee brewing');
    expect(c.intro).toMatch(/^Coffee brewing and espresso is one of those subjects/);
    // Overview, one section per keyword, practice, FAQ, closing.
    expect(c.outline.map((s) => s.heading)).toEqual([
      'What Is Coffee Brewing and Espresso?',
      'Why Coffee Brewing Matters',
      'Why Espresso Matters',
      'Why Grind Size Matters',
      'Why Water Temperature Matters',
      'Best Practices for Coffee Brewing and Espresso',
      'Frequently Asked Questions',
      'Conclusion',
    ]);
    expect(c.outline[2]?.points).toContain('Common mistakes with espresso');
    expect(c.markdown.startsWith(`# ${c.title}\n\n${c.intro}\n\n## What Is`)).toBe(true);
    expect(c.recommendations).toEqual([]);
    expect(c.truncated).toBe(false);
    expect(c.wordCount).toBe(countWords(c));
    expect(c.settings).toEqual({ temperature: 0, max_tokens: 2000, seed: 0 });
  });

  it('accepts keywords as a comma-separated string and a topic', async () => {
    const c = await generate({
      keywords: 'Latte Art, milk foam',
      topic: 'latte art at home',
      temperature: 0,
    });
    expect(c.keywords).toEqual(['latte art', 'milk foam']);
    expect(c.title).toBe('Latte Art at Home: A Complete Guide');
  });

  it('is deterministic: same inputs, temperature and seed give the same content', async () => {
    const args = { keywords: KEYWORDS, temperature: 0.8, seed: 42 };
    const first = await generate(args);
    expect(await generate(args)).toEqual(first);
  });

  it('uses the fixed template wording at temperature 0, whatever the seed', async () => {
    const base = await generate({ keywords: KEYWORDS, temperature: 0, seed: 1 });
    for (const seed of [2, 3, 99]) {
      const other = await generate({ keywords: KEYWORDS, temperature: 0, seed });
      expect({ ...other, settings: null }).toEqual({ ...base, settings: null });
    }
  });

  it('varies the wording more as the temperature rises', async () => {
    const template = await generate({ keywords: KEYWORDS, temperature: 0 });
    const differences = async (temperature: number) => {
      let changed = 0;
      for (const seed of [1, 2, 3, 4, 5]) {
        const c = await generate({ keywords: KEYWORDS, temperature, seed });
        changed += c.titleIdeas.filter((t, i) => t !== template.titleIdeas[i]).length;
        changed += c.outline.filter((s, i) => s.heading !== template.outline[i]?.heading).length;
      }
      return changed;
    };
    const low = await differences(0.1);
    const high = await differences(1);
    expect(high).toBeGreaterThan(low);
    // At temperature 1 every choice with alternatives takes one: all 5 titles differ, for every seed.
    const hot = await generate({ keywords: KEYWORDS, temperature: 1, seed: 7 });
    expect(hot.titleIdeas.every((t, i) => t !== template.titleIdeas[i])).toBe(true);
    // Different seeds give different wordings.
    const a = await generate({ keywords: KEYWORDS, temperature: 1, seed: 1 });
    const b = await generate({ keywords: KEYWORDS, temperature: 1, seed: 2 });
    expect(a.markdown).not.toBe(b.markdown);
  });

  it('cuts the content at max_tokens words', async () => {
    const full = await generate({ keywords: KEYWORDS, temperature: 0 });
    expect(full.wordCount).toBeGreaterThan(200);
    const short = await generate({ keywords: KEYWORDS, temperature: 0, max_tokens: 60 });
    expect(short.truncated).toBe(true);
    expect(short.wordCount).toBe(60);
    expect(countWords(short)).toBeLessThanOrEqual(60);
    expect(short.titleIdeas).toEqual(full.titleIdeas);
    expect(short.outline.length).toBeLessThan(full.outline.length);
    const tiny = await generate({ keywords: KEYWORDS, temperature: 0, max_tokens: 3 });
    expect(tiny.title).toBe('Coffee Brewing and…');
    expect(tiny.titleIdeas).toHaveLength(1);
    expect(tiny.outline).toEqual([]);
  });
});

describe('generate_content from an analyze_seo result', () => {
  let seo: ExampleConnection;
  beforeAll(async () => {
    seo = await connectExample('seo');
  });
  afterAll(async () => {
    await seo?.close();
  });

  const PAGE = `<html><head><title>Tea</title></head><body><h1>Green Tea Guide</h1>
    <p>Green tea leaves, green tea brewing and tea temperature. Green tea is calming.</p><img src="t.jpg"></body></html>`;

  it('takes the whole analysis, and the fields filled by name', async () => {
    const analysis = structured<{
      keywords: string[];
      title: string;
      topic: string;
      findings: { code: string }[];
    }>(await seo.client.callTool({ name: 'analyze_seo', arguments: { html: PAGE } }));
    expect(analysis.keywords[0]).toBe('tea');
    expect(analysis.topic).toBe('Green Tea Guide');

    const fromAnalysis = await generate({ analysis, temperature: 0 });
    expect(fromAnalysis.topic).toBe('Green Tea Guide');
    expect(fromAnalysis.keywords).toEqual(analysis.keywords);
    expect(fromAnalysis.title).toBe('Green Tea Guide: A Complete Guide');
    const recommendations = fromAnalysis.recommendations.join('\n');
    expect(recommendations).toContain('Lengthen the title');
    expect(recommendations).toContain('Add a meta description');
    expect(recommendations).toContain('Expand the page past 300 words');
    expect(recommendations).toContain('alt attribute');

    // What a bundle passes when it fills generate_content's arguments by name from analyze_seo's result.
    const byName = await generate({
      keywords: analysis.keywords,
      title: analysis.title,
      topic: analysis.topic,
      temperature: 0,
    });
    expect(byName.topic).toBe('Green Tea Guide');
    expect(byName.titleIdeas).toEqual(fromAnalysis.titleIdeas);
  });
});

describe('tunable defaults from the environment', () => {
  it('reads CONTENT_TEMPERATURE and CONTENT_MAX_TOKENS', async () => {
    const tuned = await connectExample('content', {
      env: { CONTENT_TEMPERATURE: '0', CONTENT_MAX_TOKENS: '25' },
    });
    try {
      const c = await generate({ keywords: KEYWORDS }, tuned);
      expect(c.settings).toEqual({ temperature: 0, max_tokens: 25, seed: 0 });
      expect(c.wordCount).toBe(25);
      expect(c).toEqual(await generate({ keywords: KEYWORDS, temperature: 0, max_tokens: 25 }));
      // Arguments still win over the environment.
      expect((await generate({ keywords: KEYWORDS, max_tokens: 2000 }, tuned)).truncated).toBe(false);
    } finally {
      await tuned.close();
    }
  });

  it('refuses to start with a bad value, naming the variable', async () => {
    const child = spawn(process.execPath, [exampleServerPath('content')], {
      env: { ...process.env, CONTENT_MAX_TOKENS: 'lots' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr).toMatch(/CONTENT_MAX_TOKENS="lots" is invalid/);
    await expect(connectExample('content', { env: { CONTENT_TEMPERATURE: '1.5' } })).rejects.toThrow();
  });
});

describe('bad input gives tool errors', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['nothing to write about', {}, /Give keywords, a topic, or an analysis/],
    ['temperature over 1', { keywords: ['x'], temperature: 1.5 }, /temperature/],
    ['max_tokens of 0', { keywords: ['x'], max_tokens: 0 }, /max_tokens/],
    ['keywords of the wrong type', { keywords: 42 }, /keywords/],
    ['blank keywords', { keywords: ['  ', ''] }, /Give keywords/],
  ];
  for (const [label, args, message] of cases) {
    it(label, async () => {
      const result = await content.client.callTool({ name: 'generate_content', arguments: args });
      expect(result.isError).toBe(true);
      expect(resultText(result)).toMatch(message);
    });
  }
});
