import { z } from 'zod';

/** Client ids become part of stream ids and namespace names, so they are kept to URL-safe characters. */
export const clientIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:@-]+$/, 'letters, digits and . _ : @ - only');

export const topicSchema = z.string().min(1).max(128);
export type TopicName = z.infer<typeof topicSchema>;

export const MAX_BUFFER_SIZE = 10_000;
export const DEFAULT_BUFFER_SIZE = 1000;

export const streamConfigSchema = z.looseObject({
  topics: z.array(topicSchema).max(64).optional(),
  /** Replay buffer length; capped at MAX_BUFFER_SIZE. */
  buffer_size: z.number().int().min(0).optional(),
  /** `type` of a client-message → tool name. */
  routes: z.record(z.string().min(1).max(255), z.string().min(1).max(255)).optional(),
  /** Lower (never raise) the hub's per-socket limits for this stream. */
  rate_limit_per_second: z.number().int().min(1).optional(),
  max_in_flight: z.number().int().min(1).optional(),
});
export type StreamConfigInput = z.infer<typeof streamConfigSchema>;

export const startStreamBody = z.strictObject({
  serverId: z.coerce.number().int().positive(),
  clientId: clientIdSchema,
  streamConfig: streamConfigSchema.optional(),
});

export const streamIdParams = z.strictObject({ streamId: z.string().min(1).max(255) });
export const issueTokenBody = z.strictObject({ clientId: clientIdSchema });
export const stopStreamBody = z.strictObject({ streamId: z.string().min(1).max(255) });

const requestId = z.union([z.string().min(1).max(128), z.number().finite()]);

/**
 * `{ type, data?, id?, topic?, ...rest }`: the arguments are `data` when it is an object, otherwise the rest
 * of the message (so both `{ type:'analyze', data:{ url } }` and `{ type:'mine-data', url, attributes }` work).
 */
export const clientMessageSchema = z.looseObject({
  type: z.string().min(1).max(255),
  id: requestId.optional(),
  data: z.unknown().optional(),
  topic: topicSchema.optional(),
});
export type ClientMessagePayload = z.input<typeof clientMessageSchema>;

export const publishSchema = z.strictObject({ topic: topicSchema, data: z.unknown().optional() });
export type PublishPayload = z.input<typeof publishSchema>;

export const cancelSchema = z.looseObject({ id: requestId });
export type CancelPayload = z.input<typeof cancelSchema>;

/** Arguments of the reserved client-message types. */
export const reservedArgs = {
  'call-tool': z.looseObject({
    name: z.string().min(1).max(255),
    arguments: z.record(z.string(), z.unknown()).optional(),
  }),
  'read-resource': z.looseObject({ uri: z.string().min(1) }),
  'list-resources': z.looseObject({ cursor: z.string().optional() }),
  'get-prompt': z.looseObject({
    name: z.string().min(1),
    arguments: z.record(z.string(), z.string()).optional(),
  }),
} as const;

export const authSchema = z.looseObject({
  token: z.string().min(1).max(512),
  lastSeq: z.number().int().min(0).optional(),
});
