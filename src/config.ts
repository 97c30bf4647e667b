import path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  SWITCHBOARD_DATA_DIR: z.string().min(1).default('./data'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional(),
  SWITCHBOARD_REDIS_PREFIX: z.string().max(100).default('switchboard:'),
  SWITCHBOARD_API_TOKEN: z.string().min(8, 'must be at least 8 characters').optional(),
  SWITCHBOARD_ALLOWED_ORIGINS: list.default([]),
  SWITCHBOARD_STDIO_ALLOW: list.default([]),
  SWITCHBOARD_EVENT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  SWITCHBOARD_SEED_EXAMPLES: bool.default(true),
  SWITCHBOARD_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  SWITCHBOARD_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).max(100_000_000).default(60_000),
  SWITCHBOARD_STREAM_RATE_PER_SECOND: z.coerce.number().int().min(1).max(10_000_000).default(5_000),
  SWITCHBOARD_STREAM_SLOW_CONSUMER_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .max(4 * 1024 * 1024 * 1024)
    .default(80 * 1024 * 1024),
  SWITCHBOARD_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  SWITCHBOARD_RECORD_EVENTS: bool.default(true),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.input<typeof envSchema>;

/** The hub's settings: parsed once at start, frozen, and passed down; nothing else reads process.env. */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly redisUrl: string | undefined;
  /** Start of every Redis key and channel of the hub, so that several deployments (or tests) can share one Redis. */
  readonly redisPrefix: string;
  readonly apiToken: string | undefined;
  readonly allowedOrigins: readonly string[];
  /** Commands that stdio servers may run; empty means any. */
  readonly stdioAllow: readonly string[];
  readonly eventRetentionDays: number;
  readonly seedExamples: boolean;
  readonly bodyLimitBytes: number;
  /** Requests per minute per client address on /api; 0 turns the limit off. */
  readonly rateLimitPerMinute: number;
  readonly shutdownGraceMs: number;
  /** Messages per second one stream socket may send; a stream's config may lower it. */
  readonly streamRatePerSecond: number;
  /** Bytes queued for one stream socket before it is cut off as too slow (it may resume with lastSeq). */
  readonly streamSlowConsumerBytes: number;
  readonly recordEvents: boolean;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Reads the environment (empty strings count as unset) and returns the frozen config, or throws naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(
    Object.keys(envSchema.shape)
      .map((k) => [k, env[k]] as const)
      .filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map(
        (i) =>
          `${i.path.join('.') || '(env)'}: ${i.message} (got ${JSON.stringify(present[String(i.path[0])])})`,
      ),
    );
  }
  const e = parsed.data;
  return deepFreeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.SWITCHBOARD_DATA_DIR),
    redisUrl: e.REDIS_URL,
    redisPrefix: e.SWITCHBOARD_REDIS_PREFIX,
    apiToken: e.SWITCHBOARD_API_TOKEN,
    allowedOrigins: e.SWITCHBOARD_ALLOWED_ORIGINS,
    stdioAllow: e.SWITCHBOARD_STDIO_ALLOW,
    eventRetentionDays: e.SWITCHBOARD_EVENT_RETENTION_DAYS,
    seedExamples: e.SWITCHBOARD_SEED_EXAMPLES,
    bodyLimitBytes: e.SWITCHBOARD_BODY_LIMIT_BYTES,
    rateLimitPerMinute: e.SWITCHBOARD_RATE_LIMIT_PER_MINUTE,
    shutdownGraceMs: e.SWITCHBOARD_SHUTDOWN_GRACE_MS,
    streamRatePerSecond: e.SWITCHBOARD_STREAM_RATE_PER_SECOND,
    streamSlowConsumerBytes: e.SWITCHBOARD_STREAM_SLOW_CONSUMER_BYTES,
    recordEvents: e.SWITCHBOARD_RECORD_EVENTS,
    logLevel: e.LOG_LEVEL,
  });
}
