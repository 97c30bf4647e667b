/**
 * The SEO server's work, as pure functions over an HTML string: parse once, then read the title, meta
 * tags, headings, links, images and text, measure keyword density and score the page. The zod schemas
 * here are the tools' output schemas; the types come from them.
 */
import { type HTMLElement, parse } from 'node-html-parser';
import * as z from 'zod';

/** Elements whose text is not page content. */
const NON_CONTENT = 'script, style, noscript, template, svg, iframe, object';
const LIST_CAP = 200;
export const CONTENT_CHAR_CAP = 50_000;

// A short English stop-word list: enough to keep "the" and "and" out of the top terms.
const STOP_WORDS = new Set(
  (
    'a about above after again against all also am an and any are as at be because been before being below ' +
    'between both but by can could did do does doing down during each few for from further had has have ' +
    'having he her here hers herself him himself his how i if in into is it its itself just me more most my ' +
    'myself no nor not now of off on once only or other our ours ourselves out over own same she should so ' +
    'some such than that the their theirs them themselves then there these they this those through to too ' +
    'under until up very was we were what when where which while who whom why will with would you your ' +
    "yours yourself yourselves can't don't it's we're you're i'm isn't aren't won't also may might must " +
    'one two new get got use used using like via per etc'
  ).split(' '),
);

export interface ParsedPage {
  root: HTMLElement;
  /** Where relative links resolve; null for HTML passed in without a base. */
  base: URL | null;
}

export function parsePage(html: string, pageUrl?: string | null): ParsedPage {
  const root = parse(html, { comment: false });
  for (const element of root.querySelectorAll(NON_CONTENT)) element.remove();
  let base = safeUrl(pageUrl ?? undefined);
  const baseHref = root.querySelector('base[href]')?.getAttribute('href');
  if (baseHref) base = safeUrl(baseHref, base ?? undefined) ?? base;
  return { root, base };
}

function safeUrl(href: string | undefined, base?: URL): URL | null {
  if (!href) return null;
  try {
    return new URL(href, base);
  } catch {
    return null;
  }
}

function clean(text: string | undefined | null): string {
  return (text ?? '').replace(/\s+/g, ' ').trim();
}

function attr(element: HTMLElement | null, name: string): string | null {
  const value = element?.getAttribute(name);
  return value === undefined || value === null ? null : clean(value);
}

// ---------------------------------------------------------------------------------------------------
// Extraction

export const metaSchema = z.object({
  description: z.string().nullable(),
  keywords: z.string().nullable(),
  robots: z.string().nullable(),
  viewport: z.string().nullable(),
  charset: z.string().nullable(),
  author: z.string().nullable(),
  openGraph: z.record(z.string(), z.string()),
  twitter: z.record(z.string(), z.string()),
});
export type PageMeta = z.infer<typeof metaSchema>;

export function extractTitle(page: ParsedPage): string | null {
  const title = page.root.querySelector('title');
  return title ? clean(title.text) : null;
}

export function extractMeta(page: ParsedPage): PageMeta {
  const named: Record<string, string> = {};
  const openGraph: Record<string, string> = {};
  const twitter: Record<string, string> = {};
  let charset: string | null = null;
  for (const meta of page.root.querySelectorAll('meta')) {
    const cs = meta.getAttribute('charset');
    if (cs) charset = clean(cs);
    const key = (meta.getAttribute('name') ?? meta.getAttribute('property') ?? '').trim().toLowerCase();
    const content = meta.getAttribute('content');
    if (!key || content === undefined) continue;
    if (key.startsWith('og:')) openGraph[key.slice(3)] ??= clean(content);
    else if (key.startsWith('twitter:')) twitter[key.slice(8)] ??= clean(content);
    else named[key] ??= clean(content);
  }
  return {
    description: named.description ?? null,
    keywords: named.keywords ?? null,
    robots: named.robots ?? null,
    viewport: named.viewport ?? null,
    charset,
    author: named.author ?? null,
    openGraph,
    twitter,
  };
}

export function extractCanonical(page: ParsedPage): string | null {
  const href = page.root.querySelector('link[rel="canonical"]')?.getAttribute('href');
  if (!href) return null;
  return safeUrl(href, page.base ?? undefined)?.href ?? clean(href);
}

export const headingSchema = z.object({ level: z.number().int().min(1).max(6), text: z.string() });
export type Heading = z.infer<typeof headingSchema>;

export function extractHeadings(page: ParsedPage): Heading[] {
  return page.root
    .querySelectorAll('h1, h2, h3, h4, h5, h6')
    .map((h) => ({ level: Number(h.tagName.slice(1)), text: clean(h.text) }));
}

export const linkSchema = z.object({
  href: z.string(),
  text: z.string(),
  internal: z.boolean(),
  nofollow: z.boolean(),
});
export type PageLink = z.infer<typeof linkSchema>;

export function extractLinks(page: ParsedPage): { links: PageLink[]; other: number } {
  const links: PageLink[] = [];
  let other = 0;
  for (const a of page.root.querySelectorAll('a[href]')) {
    const raw = (a.getAttribute('href') ?? '').trim();
    if (/^(mailto|tel|javascript|data):/i.test(raw) || raw === '') {
      other++;
      continue;
    }
    const resolved = safeUrl(raw, page.base ?? undefined);
    const internal = resolved
      ? page.base
        ? resolved.host === page.base.host
        : false
      : // Without a base, a relative link is internal by definition.
        !/^[a-z][a-z0-9+.-]*:|^\/\//i.test(raw);
    const rel = (a.getAttribute('rel') ?? '').toLowerCase().split(/\s+/);
    links.push({
      href: resolved?.href ?? raw,
      text: clean(a.text) || attr(a, 'title') || attr(a.querySelector('img'), 'alt') || '',
      internal,
      nofollow: rel.includes('nofollow'),
    });
  }
  return { links, other };
}

export const imageSchema = z.object({ src: z.string(), alt: z.string().nullable() });
export type PageImage = z.infer<typeof imageSchema>;

export function extractImages(page: ParsedPage): PageImage[] {
  return page.root.querySelectorAll('img').map((img) => {
    const src = img.getAttribute('src') ?? img.getAttribute('data-src') ?? '';
    return {
      src: safeUrl(src, page.base ?? undefined)?.href ?? src,
      alt: img.getAttribute('alt') === undefined ? null : clean(img.getAttribute('alt')),
    };
  });
}

/** The page's readable text: `main` or `article` when there is one, else the body. */
export function extractMainText(page: ParsedPage): string {
  const main =
    page.root.querySelector('main') ??
    page.root.querySelector('[role="main"]') ??
    page.root.querySelector('article') ??
    page.root.querySelector('body') ??
    page.root;
  return blockText(main).slice(0, CONTENT_CHAR_CAP);
}

/** Text with block boundaries kept as line breaks, so that `<p>a</p><p>b</p>` is two words, not one. */
function blockText(element: HTMLElement): string {
  return element.structuredText
    .split('\n')
    .map((line) => clean(line))
    .filter(Boolean)
    .join('\n');
}

/** Text of each element matching a CSS selector; an invalid selector is the caller's error. */
export function extractSelector(page: ParsedPage, selector: string): string[] {
  let matches: HTMLElement[];
  try {
    matches = page.root.querySelectorAll(selector);
  } catch (error) {
    throw new InvalidSelectorError(selector, error instanceof Error ? error.message : String(error));
  }
  return matches.slice(0, LIST_CAP).map((el) => clean(el.structuredText));
}

export class InvalidSelectorError extends Error {
  override name = 'InvalidSelectorError';
  constructor(
    readonly selector: string,
    reason: string,
  ) {
    super(`Invalid CSS selector ${JSON.stringify(selector)}: ${reason}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Words and keywords

export function tokenize(text: string): string[] {
  const words = text.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}'’-]*/gu) ?? [];
  return words.map((w) => w.replace(/['’-]+$/, '').replace(/’/g, "'"));
}

const termSchema = z.object({ term: z.string(), count: z.number().int(), density: z.number() });
export type Term = z.infer<typeof termSchema>;

function density(count: number, wordsInTerm: number, total: number): number {
  return total === 0 ? 0 : Math.round(((count * wordsInTerm) / total) * 10_000) / 100;
}

function isContentWord(word: string): boolean {
  return word.length >= 3 && !STOP_WORDS.has(word) && !/^\d+$/.test(word);
}

/** Most frequent content words, most frequent first (ties alphabetical, so results are stable). */
export function topTerms(words: readonly string[], limit = 10): Term[] {
  const counts = new Map<string, number>();
  for (const word of words) if (isContentWord(word)) counts.set(word, (counts.get(word) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, limit)
    .map(([term, count]) => ({ term, count, density: density(count, 1, words.length) }));
}

/** Two-word phrases of content words that occur at least twice. */
export function topPhrases(words: readonly string[], limit = 5): Term[] {
  const counts = new Map<string, number>();
  for (let i = 0; i + 1 < words.length; i++) {
    const a = words[i] as string;
    const b = words[i + 1] as string;
    if (isContentWord(a) && isContentWord(b)) counts.set(`${a} ${b}`, (counts.get(`${a} ${b}`) ?? 0) + 1);
  }
  return [...counts]
    .filter(([, count]) => count >= 2)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, limit)
    .map(([term, count]) => ({ term, count, density: density(count, 2, words.length) }));
}

/** Occurrences of a (possibly multi-word) phrase in a word sequence. */
export function countPhrase(words: readonly string[], phrase: readonly string[]): number {
  if (phrase.length === 0) return 0;
  let count = 0;
  outer: for (let i = 0; i + phrase.length <= words.length; i++) {
    for (let j = 0; j < phrase.length; j++) if (words[i + j] !== phrase[j]) continue outer;
    count++;
  }
  return count;
}

function contains(text: string | null, phrase: readonly string[]): boolean {
  return text !== null && countPhrase(tokenize(text), phrase) > 0;
}

// ---------------------------------------------------------------------------------------------------
// The analysis

export const findingSchema = z.object({
  severity: z.enum(['error', 'warning', 'info']),
  code: z.string(),
  message: z.string(),
  /** Points taken off the score. */
  penalty: z.number(),
});
export type Finding = z.infer<typeof findingSchema>;

export const keywordStatSchema = z.object({
  keyword: z.string(),
  count: z.number().int(),
  density: z.number(),
  inTitle: z.boolean(),
  inMetaDescription: z.boolean(),
  inH1: z.boolean(),
  inHeadings: z.boolean(),
});

export const seoAnalysisSchema = z.object({
  url: z.string().nullable(),
  finalUrl: z.string().nullable(),
  status: z.number().int().nullable(),
  title: z.string().nullable(),
  titleLength: z.number().int(),
  metaDescription: z.string().nullable(),
  meta: metaSchema,
  canonical: z.string().nullable(),
  lang: z.string().nullable(),
  headings: z.object({
    counts: z.object({
      h1: z.number().int(),
      h2: z.number().int(),
      h3: z.number().int(),
      h4: z.number().int(),
      h5: z.number().int(),
      h6: z.number().int(),
    }),
    h1: z.array(z.string()),
    outline: z.array(headingSchema),
  }),
  links: z.object({
    total: z.number().int(),
    internal: z.number().int(),
    external: z.number().int(),
    nofollow: z.number().int(),
    other: z.number().int(),
    list: z.array(linkSchema),
  }),
  images: z.object({
    total: z.number().int(),
    withoutAlt: z.number().int(),
    emptyAlt: z.number().int(),
    missingAlt: z.array(z.string()),
  }),
  wordCount: z.number().int(),
  keywordDensity: z.object({
    top: z.array(termSchema),
    phrases: z.array(termSchema),
    requested: z.array(keywordStatSchema),
  }),
  /** The keywords a content step should write about: the requested ones, then the page's top terms. */
  keywords: z.array(z.string()),
  /** What the page is about, in a few words: its first h1, else its title, else its top term. */
  topic: z.string(),
  score: z.number().int().min(0).max(100),
  grade: z.enum(['A', 'B', 'C', 'D', 'F']),
  findings: z.array(findingSchema),
});
export type SeoAnalysis = z.infer<typeof seoAnalysisSchema>;

export interface AnalyzeOptions {
  url?: string | null;
  finalUrl?: string | null;
  status?: number | null;
  keywords?: readonly string[];
}

export const THIN_CONTENT_WORDS = 300;

export function analyzeHtml(html: string, options: AnalyzeOptions = {}): SeoAnalysis {
  const page = parsePage(html, options.finalUrl ?? options.url);
  const title = extractTitle(page);
  const meta = extractMeta(page);
  const canonical = extractCanonical(page);
  const lang = attr(page.root.querySelector('html'), 'lang') || null;
  const outline = extractHeadings(page);
  const { links, other } = extractLinks(page);
  const images = extractImages(page);
  const body = page.root.querySelector('body') ?? page.root;
  const words = tokenize(blockText(body));
  const h1 = outline.filter((h) => h.level === 1).map((h) => h.text);

  const counts = { h1: 0, h2: 0, h3: 0, h4: 0, h5: 0, h6: 0 };
  for (const h of outline) counts[`h${h.level}` as keyof typeof counts]++;

  const requested = [...new Set((options.keywords ?? []).map((k) => clean(k).toLowerCase()).filter(Boolean))];
  const requestedStats = requested.map((keyword) => {
    const phrase = tokenize(keyword);
    const count = countPhrase(words, phrase);
    return {
      keyword,
      count,
      density: density(count, phrase.length, words.length),
      inTitle: contains(title, phrase),
      inMetaDescription: contains(meta.description, phrase),
      inH1: h1.some((text) => contains(text, phrase)),
      inHeadings: outline.some((h) => contains(h.text, phrase)),
    };
  });
  const top = topTerms(words);
  const withoutAlt = images.filter((img) => img.alt === null);

  const analysis: Omit<SeoAnalysis, 'score' | 'grade' | 'findings'> = {
    url: options.url ?? null,
    finalUrl: options.finalUrl ?? options.url ?? null,
    status: options.status ?? null,
    title,
    titleLength: title?.length ?? 0,
    metaDescription: meta.description,
    meta,
    canonical,
    lang,
    headings: { counts, h1, outline: outline.slice(0, LIST_CAP) },
    links: {
      total: links.length + other,
      internal: links.filter((l) => l.internal).length,
      external: links.filter((l) => !l.internal).length,
      nofollow: links.filter((l) => l.nofollow).length,
      other,
      list: links.slice(0, LIST_CAP),
    },
    images: {
      total: images.length,
      withoutAlt: withoutAlt.length,
      emptyAlt: images.filter((img) => img.alt === '').length,
      missingAlt: withoutAlt.slice(0, LIST_CAP).map((img) => img.src),
    },
    wordCount: words.length,
    keywordDensity: { top, phrases: topPhrases(words), requested: requestedStats },
    keywords: [...new Set([...requested, ...top.map((t) => t.term)])].slice(0, 10),
    topic: h1[0] || title || top[0]?.term || '',
  };
  const findings = findIssues(analysis);
  const score = Math.max(0, Math.min(100, 100 - findings.reduce((sum, f) => sum + f.penalty, 0)));
  return { ...analysis, score, grade: grade(score), findings };
}

function grade(score: number): SeoAnalysis['grade'] {
  if (score >= 90) return 'A';
  if (score >= 80) return 'B';
  if (score >= 65) return 'C';
  if (score >= 50) return 'D';
  return 'F';
}

/** The checks, each with the points it costs. Kept in one table-like function so the score is explainable. */
export function findIssues(a: Omit<SeoAnalysis, 'score' | 'grade' | 'findings'>): Finding[] {
  const findings: Finding[] = [];
  const add = (severity: Finding['severity'], code: string, penalty: number, message: string) =>
    findings.push({ severity, code, message, penalty });

  if (a.status !== null && a.status >= 400)
    add('error', 'http-error', 30, `The page answered HTTP ${a.status}`);

  if (!a.title) add('error', 'missing-title', 20, 'The page has no <title>');
  else if (a.titleLength < 10) add('warning', 'title-too-short', 5, `Title is ${a.titleLength} characters`);
  else if (a.titleLength > 60) {
    add(
      'warning',
      'title-too-long',
      5,
      `Title is ${a.titleLength} characters; search results cut at about 60`,
    );
  }

  const description = a.metaDescription;
  if (!description) add('error', 'missing-meta-description', 15, 'No meta description');
  else if (description.length < 50) {
    add('warning', 'meta-description-too-short', 5, `Meta description is ${description.length} characters`);
  } else if (description.length > 160) {
    add('warning', 'meta-description-too-long', 5, `Meta description is ${description.length} characters`);
  }

  if (a.headings.counts.h1 === 0) add('error', 'missing-h1', 10, 'The page has no <h1>');
  else if (a.headings.counts.h1 > 1)
    add('warning', 'multiple-h1', 5, `The page has ${a.headings.counts.h1} <h1>`);

  let previous = 0;
  for (const h of a.headings.outline) {
    if (previous > 0 && h.level > previous + 1) {
      add('info', 'heading-level-skipped', 2, `Heading "${h.text}" jumps from h${previous} to h${h.level}`);
      break;
    }
    previous = h.level;
  }

  if (a.images.withoutAlt > 0) {
    add(
      'warning',
      'images-missing-alt',
      Math.min(10, 2 * a.images.withoutAlt),
      `${a.images.withoutAlt} of ${a.images.total} images have no alt attribute`,
    );
  }

  if (a.wordCount < THIN_CONTENT_WORDS) {
    add('warning', 'thin-content', 10, `${a.wordCount} words; pages under ${THIN_CONTENT_WORDS} rank poorly`);
  }

  if (a.meta.robots && /noindex/i.test(a.meta.robots)) {
    add(
      'warning',
      'noindex',
      10,
      `robots meta is "${a.meta.robots}": search engines will not index the page`,
    );
  }
  if (!a.meta.viewport)
    add('warning', 'missing-viewport', 5, 'No viewport meta: the page is not mobile-friendly');
  if (!a.canonical) add('info', 'missing-canonical', 3, 'No canonical link');
  if (!a.lang) add('info', 'missing-lang', 2, 'The <html> element has no lang attribute');
  if (!a.meta.openGraph.title) add('info', 'missing-open-graph', 2, 'No og:title for link previews');
  if (a.links.internal === 0) add('info', 'no-internal-links', 3, 'No links to other pages of the site');

  // Keyword findings share a capped budget: a long keyword list must not zero the score by itself.
  let keywordBudget = 15;
  const keywordPenalty = (points: number) => {
    const taken = Math.min(points, keywordBudget);
    keywordBudget -= taken;
    return taken;
  };
  for (const k of a.keywordDensity.requested) {
    if (k.count === 0) {
      add(
        'warning',
        'keyword-missing',
        keywordPenalty(5),
        `Keyword "${k.keyword}" does not appear in the text`,
      );
      continue;
    }
    if (!k.inTitle)
      add('info', 'keyword-not-in-title', keywordPenalty(2), `Keyword "${k.keyword}" is not in the title`);
    if (k.density > 5) {
      add(
        'warning',
        'keyword-stuffing',
        keywordPenalty(5),
        `Keyword "${k.keyword}" is ${k.density}% of the words`,
      );
    }
  }
  return findings;
}
