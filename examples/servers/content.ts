/**
 * Example server 2, "content": `generate_content` writes title ideas, a meta description, an intro and an
 * outline from keywords, a topic, or an analyze_seo result. Its tunables, `temperature` and `max_tokens`,
 * are tool arguments whose defaults come from CONTENT_TEMPERATURE / CONTENT_MAX_TOKENS when set (so the
 * hub can tune the server through its env as well as per call).
 */
import { McpServer, type ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';
import {
  contentSchema,
  DEFAULT_MAX_TOKENS,
  DEFAULT_TEMPERATURE,
  type Finding,
  generateContent,
  MAX_MAX_TOKENS,
} from './content-writer.js';
import {
  isEntryPoint,
  jsonResult,
  log,
  runStdioServer,
  ToolInputError,
  toolHandler,
} from './stdio-server.js';

const NAME = 'content';

const temperatureSchema = z.number().min(0).max(1);
const maxTokensSchema = z.number().int().min(1).max(MAX_MAX_TOKENS);

export interface ContentDefaults {
  temperature: number;
  maxTokens: number;
}

/** Reads the tunables' defaults from the environment; a bad value is an error naming the variable. */
export function readContentDefaults(env: NodeJS.ProcessEnv): ContentDefaults {
  const read = <T>(name: string, schema: z.ZodType<T>, fallback: T): T => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const parsed = schema.safeParse(Number(raw));
    if (!parsed.success)
      throw new Error(`${name}=${JSON.stringify(raw)} is invalid: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  };
  return {
    temperature: read('CONTENT_TEMPERATURE', temperatureSchema, DEFAULT_TEMPERATURE),
    maxTokens: read('CONTENT_MAX_TOKENS', maxTokensSchema, DEFAULT_MAX_TOKENS),
  };
}

const keywordsField = z
  .union([z.array(z.string().max(200)).max(50), z.string().max(2000)])
  .describe('Keywords to write about: a list, or one string separated by commas; the first is the main one');

// An analyze_seo (or mine-data) result: only the fields used here are checked, the rest passes through.
const analysisField = z.looseObject({
  keywords: z.array(z.string()).optional(),
  title: z.string().nullable().optional(),
  topic: z.string().optional(),
  findings: z.array(z.looseObject({ code: z.string(), message: z.string().optional() })).optional(),
});

function inputSchema(defaults: ContentDefaults) {
  return z.object({
    keywords: keywordsField.optional(),
    topic: z
      .string()
      .max(300)
      .optional()
      .describe('What to write about (default: from the analysis or keywords)'),
    title: z
      .string()
      .max(500)
      .nullable()
      .optional()
      .describe("The page's current title, e.g. from analyze_seo; used as the topic when none is given"),
    analysis: analysisField
      .optional()
      .describe('An analyze_seo result: its keywords, title and findings are used'),
    temperature: temperatureSchema
      .optional()
      .describe(`How much the wording varies, 0 (fixed template) to 1. Default ${defaults.temperature}`),
    max_tokens: maxTokensSchema
      .optional()
      .describe(`Length cap in words; longer content is cut. Default ${defaults.maxTokens}`),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31)
      .optional()
      .describe('Seed for the varied wording. Default 0'),
  });
}
type ContentInput = z.infer<ReturnType<typeof inputSchema>>;

function normalizeKeywords(value: string | string[] | undefined): string[] {
  const list = value === undefined ? [] : typeof value === 'string' ? value.split(',') : value;
  return list.map((k) => k.replace(/\s+/g, ' ').trim().toLowerCase()).filter(Boolean);
}

function generate(defaults: ContentDefaults) {
  return async (args: ContentInput, _ctx: ServerContext) => {
    const analysis = args.analysis;
    const keywords = [
      ...new Set([...normalizeKeywords(args.keywords), ...normalizeKeywords(analysis?.keywords)]),
    ].slice(0, 20);
    const currentTitle = args.title ?? analysis?.title ?? null;
    const topic = (
      args.topic ||
      analysis?.topic ||
      currentTitle ||
      keywords.slice(0, 2).join(' and ')
    ).trim();
    if (!topic)
      throw new ToolInputError(
        'Give keywords, a topic, or an analysis (an analyze_seo result) to write from',
      );
    const findings: Finding[] = (analysis?.findings ?? []).map((f) => ({ code: f.code, message: f.message }));
    const content = generateContent({
      keywords,
      topic,
      currentTitle,
      findings,
      temperature: args.temperature ?? defaults.temperature,
      maxTokens: args.max_tokens ?? defaults.maxTokens,
      seed: args.seed ?? 0,
    });
    return jsonResult(content);
  };
}

export function createContentServer(defaults: ContentDefaults): McpServer {
  const server = new McpServer(
    { name: NAME, title: 'Content Generator', version: '1.0.0' },
    {
      capabilities: { tools: {} },
      instructions:
        'Writes SEO content (generate_content) from keywords, a topic or an analyze_seo result. ' +
        'Tunables: temperature (0-1) and max_tokens (words).',
    },
  );
  server.registerTool(
    'generate_content',
    {
      description:
        'Generate title ideas, a meta description, an intro and a sectioned outline from keywords, a topic ' +
        'and/or an analyze_seo result. Deterministic: the same inputs, temperature and seed give the same text.',
      inputSchema: inputSchema(defaults),
      outputSchema: contentSchema,
      // The hub reads declared tunables from here to show and optimise them.
      _meta: {
        'io.switchboard/tunables': {
          temperature: { type: 'number', minimum: 0, maximum: 1, default: defaults.temperature },
          max_tokens: { type: 'integer', minimum: 1, maximum: MAX_MAX_TOKENS, default: defaults.maxTokens },
        },
      },
    },
    toolHandler(NAME, 'generate_content', generate(defaults)),
  );
  return server;
}

if (isEntryPoint(import.meta.url)) {
  let defaults: ContentDefaults;
  try {
    defaults = readContentDefaults(process.env);
  } catch (error) {
    log(NAME, (error as Error).message);
    process.exit(1);
  }
  runStdioServer(NAME, () => createContentServer(defaults));
}
