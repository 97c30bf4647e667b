/**
 * Example server 1, "seo" (SEO Specialist Agent): `analyze_seo` (alias `analyze`) scores a page, and
 * `mine-data` extracts chosen parts of one or many pages. Pages come from a `url` the server fetches or
 * from `html` passed in.
 */
import { McpServer, type ServerContext } from '@modelcontextprotocol/server';
import { parse } from 'node-html-parser';
import * as z from 'zod';
import { FetchUrlError, fetchUrl } from './fetch-url.js';
import {
  analyzeHtml,
  extractHeadings,
  extractImages,
  extractLinks,
  extractMainText,
  extractMeta,
  extractSelector,
  extractTitle,
  InvalidSelectorError,
  parsePage,
  seoAnalysisSchema,
  tokenize,
  topTerms,
} from './html-analysis.js';
import {
  isEntryPoint,
  jsonResult,
  mapWithLimit,
  reportProgress,
  runStdioServer,
  ToolInputError,
  toolHandler,
} from './stdio-server.js';

const NAME = 'seo';
export const MAX_HTML_BYTES = 5 * 1024 * 1024;
const MAX_URLS = 50;
const FETCH_CONCURRENCY = 4;

const urlField = z.string().min(1).max(2048);
const htmlField = z
  .string()
  .max(MAX_HTML_BYTES, `html is limited to ${MAX_HTML_BYTES} characters`)
  .describe('The page HTML; when given the page is not fetched (url, if also given, is its address)');

const analyzeInput = z.object({
  url: urlField.optional().describe('http(s) address of the page to fetch and analyse'),
  html: htmlField.optional(),
  keywords: z
    .union([z.array(z.string().max(200)).max(50), z.string().max(2000)])
    .optional()
    .describe('Keywords to check: a list, or one string separated by commas'),
});

const BUILT_IN_ATTRIBUTES = ['title', 'meta', 'content', 'links', 'headings', 'images', 'keywords'] as const;

const mineInput = z.object({
  url: urlField.optional().describe('One http(s) page to mine'),
  urls: z.array(urlField).max(MAX_URLS).optional().describe('Several pages; one progress notification each'),
  html: htmlField.optional(),
  attributes: z
    .array(z.string().min(1).max(500))
    .max(30)
    .optional()
    .describe(
      `What to extract: ${BUILT_IN_ATTRIBUTES.join(', ')}, or any CSS selector (the text of each match). ` +
        'Default: title, meta, content',
    ),
});

const minedPageSchema = z.object({
  url: z.string().nullable(),
  finalUrl: z.string().nullable(),
  status: z.number().int().nullable(),
  ok: z.boolean(),
  error: z.string().nullable(),
  /** One entry per requested attribute, keyed by the attribute as given. */
  data: z.record(z.string(), z.unknown()),
});
type MinedPage = z.infer<typeof minedPageSchema>;

const mineOutput = z.object({
  pages: z.array(minedPageSchema),
  count: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  attributes: z.array(z.string()),
  // For a following generate_content step, from the first page mined successfully.
  title: z.string().nullable(),
  keywords: z.array(z.string()),
  topic: z.string(),
});

interface Page {
  html: string;
  url: string | null;
  finalUrl: string | null;
  status: number | null;
}

async function loadPage(input: { url?: string; html?: string }, signal: AbortSignal): Promise<Page> {
  if (input.html !== undefined) {
    return { html: input.html, url: input.url ?? null, finalUrl: input.url ?? null, status: null };
  }
  if (input.url === undefined) throw new ToolInputError('Give a url to fetch or the html to analyse');
  const fetched = await fetchUrl(input.url, {
    maxBytes: MAX_HTML_BYTES,
    signal,
    accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.5',
  });
  const type = fetched.contentType?.toLowerCase() ?? '';
  if (type && !/html|xml|text\//.test(type)) {
    throw new FetchUrlError(`${fetched.finalUrl} is not an HTML page (content-type ${type})`);
  }
  return {
    html: decode(fetched.body, type),
    url: fetched.url,
    finalUrl: fetched.finalUrl,
    status: fetched.status,
  };
}

function decode(body: Buffer, contentType: string): string {
  const charset = /charset=["']?([\w-]+)/.exec(contentType)?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body);
  }
}

function normalizeKeywords(keywords: string | string[] | undefined): string[] {
  if (keywords === undefined) return [];
  const list = typeof keywords === 'string' ? keywords.split(',') : keywords;
  return list.map((k) => k.trim()).filter(Boolean);
}

async function analyze(args: z.infer<typeof analyzeInput>, ctx: ServerContext) {
  const page = await loadPage(args, ctx.mcpReq.signal);
  const analysis = analyzeHtml(page.html, { ...page, keywords: normalizeKeywords(args.keywords) });
  return jsonResult(analysis);
}

function checkAttributes(attributes: readonly string[]): void {
  const probe = parse('<p></p>');
  for (const attribute of attributes) {
    if ((BUILT_IN_ATTRIBUTES as readonly string[]).includes(attribute)) continue;
    try {
      probe.querySelectorAll(attribute);
    } catch (error) {
      throw new ToolInputError(
        `Unknown attribute or invalid CSS selector ${JSON.stringify(attribute)} ` +
          `(${error instanceof Error ? error.message : String(error)}); ` +
          `attributes are ${BUILT_IN_ATTRIBUTES.join(', ')} or CSS selectors`,
      );
    }
  }
}

function mineHtml(
  page: Page,
  attributes: readonly string[],
): { data: Record<string, unknown>; keywords: string[] } {
  const parsed = parsePage(page.html, page.finalUrl ?? page.url);
  const data: Record<string, unknown> = {};
  const text = extractMainText(parsed);
  const keywords = topTerms(tokenize(text)).map((t) => t.term);
  for (const attribute of attributes) {
    switch (attribute) {
      case 'title':
        data.title = extractTitle(parsed);
        break;
      case 'meta':
        data.meta = extractMeta(parsed);
        break;
      case 'content':
        data.content = text;
        break;
      case 'links':
        data.links = extractLinks(parsed).links;
        break;
      case 'headings':
        data.headings = extractHeadings(parsed);
        break;
      case 'images':
        data.images = extractImages(parsed);
        break;
      case 'keywords':
        data.keywords = keywords;
        break;
      default:
        data[attribute] = extractSelector(parsed, attribute);
    }
  }
  return { data, keywords };
}

async function mine(args: z.infer<typeof mineInput>, ctx: ServerContext) {
  const attributes = args.attributes?.length ? [...new Set(args.attributes)] : ['title', 'meta', 'content'];
  checkAttributes(attributes);
  const urls = [
    ...(args.url !== undefined && args.html === undefined ? [args.url] : []),
    ...(args.urls ?? []),
  ];
  if (args.html === undefined && urls.length === 0) {
    throw new ToolInputError('Give a url, a list of urls, or the html to mine');
  }
  if (urls.length > MAX_URLS) throw new ToolInputError(`At most ${MAX_URLS} urls per call`);

  const sources: { url?: string; html?: string }[] = [
    ...(args.html !== undefined ? [{ html: args.html, url: args.url }] : []),
    ...urls.map((url) => ({ url })),
  ];
  const keywordsByPage: string[][] = [];
  let finished = 0;
  const pages = await mapWithLimit(
    sources,
    FETCH_CONCURRENCY,
    async (source, index): Promise<MinedPage> => {
      ctx.mcpReq.signal.throwIfAborted();
      try {
        const page = await loadPage(source, ctx.mcpReq.signal);
        if (page.status !== null && page.status >= 400) {
          return { ...pageInfo(page), ok: false, error: `HTTP ${page.status}`, data: {} };
        }
        const { data, keywords } = mineHtml(page, attributes);
        keywordsByPage[index] = keywords;
        return { ...pageInfo(page), ok: true, error: null, data };
      } catch (error) {
        // One page failing must not lose the others: it is reported in its own entry.
        if (!(error instanceof FetchUrlError || error instanceof InvalidSelectorError)) throw error;
        const url = source.url ?? null;
        return { url, finalUrl: null, status: null, ok: false, error: error.message, data: {} };
      }
    },
    async (page) => {
      finished++;
      const where = page.url ?? 'inline html';
      await reportProgress(
        ctx,
        finished,
        sources.length,
        page.ok ? `mined ${where}` : `failed ${where}: ${page.error}`,
      );
    },
  );

  const succeeded = pages.filter((p) => p.ok);
  if (succeeded.length === 0) {
    throw new ToolInputError(
      `No page could be mined: ${pages.map((p) => `${p.url ?? 'html'}: ${p.error}`).join('; ')}`,
    );
  }
  const firstIndex = pages.indexOf(succeeded[0] as MinedPage);
  const first = succeeded[0] as MinedPage;
  const title = typeof first.data.title === 'string' ? first.data.title : null;
  const keywords = keywordsByPage[firstIndex] ?? [];
  return jsonResult({
    pages,
    count: pages.length,
    succeeded: succeeded.length,
    failed: pages.length - succeeded.length,
    attributes,
    title,
    keywords,
    topic: title || keywords[0] || '',
  } satisfies z.infer<typeof mineOutput>);
}

function pageInfo(page: Page): Pick<MinedPage, 'url' | 'finalUrl' | 'status'> {
  return { url: page.url, finalUrl: page.finalUrl, status: page.status };
}

export function createSeoServer(): McpServer {
  const server = new McpServer(
    { name: NAME, title: 'SEO Specialist Agent', version: '1.0.0' },
    {
      capabilities: { tools: {} },
      instructions:
        'Analyses web pages for SEO (analyze_seo, alias analyze) and extracts data from them (mine-data). ' +
        'Give a url to fetch or the html itself.',
    },
  );
  const analyzeConfig = {
    description:
      'Analyse a page for SEO: title, meta tags, canonical, headings outline, links, images without alt, ' +
      'word count, keyword density, and a 0-100 score with findings. Returns keywords/title/topic for ' +
      'generate_content.',
    inputSchema: analyzeInput,
    outputSchema: seoAnalysisSchema,
  };
  server.registerTool('analyze_seo', analyzeConfig, toolHandler(NAME, 'analyze_seo', analyze));
  server.registerTool(
    'analyze',
    { ...analyzeConfig, description: `Alias of analyze_seo. ${analyzeConfig.description}` },
    toolHandler(NAME, 'analyze', analyze),
  );
  server.registerTool(
    'mine-data',
    {
      description:
        'Extract data from one page (url or html) or many (urls): title, meta, content (main text), links, ' +
        'headings, images, keywords, or the text of CSS selector matches. Reports each page as a progress ' +
        'notification as it finishes.',
      inputSchema: mineInput,
      outputSchema: mineOutput,
    },
    toolHandler(NAME, 'mine-data', mine),
  );
  return server;
}

if (isEntryPoint(import.meta.url)) runStdioServer(NAME, createSeoServer);
