import { z } from 'zod';
import { isoDate } from '../events/payloads.js';

export const MAX_STEPS = 100;

/** A synchronous execute answers 202 { executionId } when the execution takes longer than this. */
export const SYNC_WAIT_MS = 30_000;

export const bundleConfigSchema = z.looseObject({
  /** Argument values may reference earlier results and the context; missing required arguments chain. */
  auto_chain: z.boolean().optional(),
  /** Steps whose dependencies are done run at the same time (a DAG); false runs them in order. */
  parallel: z.boolean().optional(),
  /** Tools see the shared context and may extend it (the `context` object of their structured result). */
  share_context: z.boolean().optional(),
});
export type BundleConfig = z.infer<typeof bundleConfigSchema>;

/** A step id names a step in references; it cannot look like an index. */
const stepId = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, 'a letter or _ first, then letters, digits, _ or -');
const stepRef = z.union([z.number().int().min(0), stepId]);

export const workflowStepSchema = z.strictObject({
  /** Index into the bundle's serverIds. */
  server: z.number().int().min(0),
  tool: z.string().min(1).max(255),
  args: z.record(z.string(), z.unknown()).optional(),
  id: stepId.optional(),
  /** Steps (indices or ids) that must succeed before this one runs. */
  dependsOn: z.array(stepRef).max(MAX_STEPS).optional(),
  /** Extra attempts after a failure (tool error, upstream error or timeout; never after a cancel). */
  retry: z.number().int().min(0).max(10).optional(),
  /** Limit of each attempt; the upstream call is cancelled when it passes. */
  timeout_ms: z.number().int().min(1).max(3_600_000).optional(),
  /**
   * Runs the step only when this value (references allowed, e.g. "{{steps.0.result.ok}}") is truthy;
   * otherwise it is skipped, and so are the steps that depend on it, without failing the execution.
   */
  if: z.unknown().optional(),
});
export type WorkflowStep = z.infer<typeof workflowStepSchema>;

export const workflowSchema = z.strictObject({
  steps: z.array(workflowStepSchema).min(1).max(MAX_STEPS),
});
export type Workflow = z.infer<typeof workflowSchema>;

const bundleName = z.string().trim().min(1).max(255);
const serverIds = z.array(z.number().int().min(1)).min(1).max(50);

export const createBundleSchema = z.strictObject({
  bundleName,
  serverIds,
  bundleConfig: bundleConfigSchema.optional(),
  description: z.string().max(4096).optional(),
  workflow: workflowSchema.optional(),
});
export type CreateBundleInput = z.infer<typeof createBundleSchema>;

export const updateBundleSchema = z.strictObject({
  bundleName: bundleName.optional(),
  serverIds: serverIds.optional(),
  bundleConfig: bundleConfigSchema.optional(),
  description: z.string().max(4096).optional(),
  /** null removes the default workflow. */
  workflow: workflowSchema.nullable().optional(),
});
export type UpdateBundleInput = z.infer<typeof updateBundleSchema>;

export const executeBundleSchema = z.strictObject({
  bundleId: z.string().min(1).max(255),
  workflow: workflowSchema.optional(),
  context: z.record(z.string(), z.unknown()).optional(),
  /** true: answer 202 { executionId } at once; poll GET /api/mcp/bundle/executions/:executionId. */
  async: z.boolean().optional(),
  /**
   * How long a synchronous call waits for the result before answering 202 { executionId } and letting the
   * execution go on (default SYNC_WAIT_MS).
   */
  waitMs: z.number().int().min(0).max(600_000).optional(),
  clientId: z.string().min(1).max(255).optional(),
});
export type ExecuteBundleInput = z.infer<typeof executeBundleSchema>;

export const bundleIdParams = z.strictObject({ bundleId: z.string().min(1).max(255) });
export const executionIdParams = z.strictObject({ executionId: z.string().min(1).max(255) });

export const executionsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

/** GET /api/mcp/bundle/suggestions (and the same recomputation when one is accepted). */
export const suggestionsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  /** Sessions a pattern must occur in. */
  minSupport: z.coerce.number().int().min(2).max(1_000_000_000).default(5),
  /** Only calls from then on are mined (default: every event still kept). */
  since: isoDate.optional(),
});
export type SuggestionsQuery = z.infer<typeof suggestionsQuery>;

export const suggestionIdParams = z.strictObject({ id: z.string().min(1).max(100) });

/** The body is optional (a POST without one arrives as null). */
export const acceptSuggestionSchema = z
  .strictObject({ bundleName: bundleName.optional(), description: z.string().max(4096).optional() })
  .nullish();
export type AcceptSuggestionInput = z.infer<typeof acceptSuggestionSchema>;

/** Accepting recomputes the suggestions with the thresholds they were listed with. */
export const acceptSuggestionQuery = suggestionsQuery.omit({ limit: true });
export type AcceptSuggestionQuery = z.infer<typeof acceptSuggestionQuery>;
