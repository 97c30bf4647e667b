import { z } from 'zod';

const INT4_MAX = 2_147_483_647;
const DAY_MS = 86_400_000;

/** The longest window analyze and export accept: a bigger one is refused rather than scanned. */
export const MAX_WINDOW_DAYS = 366;
/** analyze's window when `since` is absent: the 7 days before `until`. */
export const DEFAULT_ANALYZE_DAYS = 7;

// ISO 8601 date or date-time. A date-time without an offset is read as UTC (the hub stores UTC), never as
// the server's local time.
const isoPattern = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

export const isoDate = z
  .string()
  .max(40)
  .regex(isoPattern, 'an ISO 8601 date or date-time (2026-01-31 or 2026-01-31T12:00:00Z)')
  .transform((s, ctx) => {
    const hasTime = s.length > 10;
    const hasOffset = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(s.slice(10));
    const date = new Date(hasTime && !hasOffset ? `${s.replace(' ', 'T')}Z` : s.replace(' ', 'T'));
    const [y, m, d] = s.slice(0, 10).split('-').map(Number) as [number, number, number];
    // Date() rolls 2026-02-30 over to March; a day the month does not have is an error.
    if (Number.isNaN(date.getTime()) || new Date(Date.UTC(y, m - 1, d)).getUTCDate() !== d || m > 12) {
      ctx.addIssue({ code: 'custom', message: 'not a valid date' });
      return z.NEVER;
    }
    return date;
  });

const serverId = z.coerce.number().int().positive().max(INT4_MAX);
const label = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\w.:@-]+$/, 'letters, digits and _ . : @ -');

export const bucketSizes = {
  '1m': 60_000,
  '5m': 300_000,
  '15m': 900_000,
  '1h': 3_600_000,
  '6h': 21_600_000,
  '1d': DAY_MS,
} as const;
export type BucketSize = keyof typeof bucketSizes;
/** A series longer than this would be a chart nobody can read and a query nobody needs. */
export const MAX_BUCKETS = 2_000;

const windowChecks = <T extends { since?: Date; until?: Date }>(v: T, ctx: z.RefinementCtx) => {
  if (v.since && v.until && v.since.getTime() >= v.until.getTime()) {
    ctx.addIssue({ code: 'custom', path: ['since'], message: 'must be before until' });
  }
  if (v.since && v.until && v.until.getTime() - v.since.getTime() > MAX_WINDOW_DAYS * DAY_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['since'],
      message: `the window may span at most ${MAX_WINDOW_DAYS} days`,
    });
  }
};

export const analyzeQuerySchema = z
  .strictObject({
    serverId: serverId.optional(),
    bundleId: label.optional(),
    streamId: label.optional(),
    since: isoDate.optional(),
    until: isoDate.optional(),
    bucket: z.enum(Object.keys(bucketSizes) as [BucketSize, ...BucketSize[]]).optional(),
  })
  .superRefine(windowChecks)
  .superRefine((v, ctx) => {
    if (!v.bucket || !v.since) return;
    const until = v.until ?? new Date();
    if ((until.getTime() - v.since.getTime()) / bucketSizes[v.bucket] > MAX_BUCKETS) {
      ctx.addIssue({
        code: 'custom',
        path: ['bucket'],
        message: `more than ${MAX_BUCKETS} buckets of ${v.bucket} in this window: pick a larger bucket`,
      });
    }
  });
export type AnalyzeQuery = z.infer<typeof analyzeQuerySchema>;

export const exportFormats = ['csv', 'json', 'ndjson'] as const;
export type ExportFormat = (typeof exportFormats)[number];

const eventType = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[a-z_]+$/, 'lower-case letters and _');

export const exportQuerySchema = z
  .strictObject({
    format: z.enum(exportFormats).default('ndjson'),
    startDate: isoDate.optional(),
    endDate: isoDate.optional(),
    serverId: serverId.optional(),
    eventType: eventType.optional(),
  })
  .superRefine((v, ctx) => windowChecks({ since: v.startDate, until: v.endDate }, ctx));
export type ExportQuery = z.infer<typeof exportQuerySchema>;

export const listQuerySchema = z
  .strictObject({
    serverId: serverId.optional(),
    bundleId: label.optional(),
    streamId: label.optional(),
    eventType: eventType.optional(),
    toolName: z.string().min(1).max(255).optional(),
    outcome: z
      .enum([
        'success',
        'tool_error',
        'protocol_error',
        'transport_error',
        'timeout',
        'cancelled',
        'rejected',
      ])
      .optional(),
    since: isoDate.optional(),
    until: isoDate.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z
      .string()
      .max(200)
      .regex(/^[A-Za-z0-9_-]+$/, 'a cursor returned by a previous page')
      .optional(),
  })
  .superRefine((v, ctx) => {
    if (v.since && v.until && v.since.getTime() >= v.until.getTime()) {
      ctx.addIssue({ code: 'custom', path: ['since'], message: 'must be before until' });
    }
  });
export type ListQuery = z.infer<typeof listQuerySchema>;
