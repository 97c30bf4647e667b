import { z } from 'zod';

/**
 * Hub-side knobs every server has; a server may declare further tunables of its own (kept as extra keys).
 * Defaults are applied when the server is read, so a stored config only holds what someone set.
 */
export const serverConfigSchema = z.looseObject({
  timeout_ms: z.number().int().min(10).max(3_600_000).optional(),
  /** Upper bound of a call's total time even while progress keeps resetting the timeout. */
  max_total_timeout_ms: z
    .number()
    .int()
    .min(10)
    .max(24 * 3_600_000)
    .optional(),
  max_concurrency: z.number().int().min(1).max(1024).optional(),
  /** Calls allowed to wait for a slot; past this a call is refused with SB_ERR_QUEUE_FULL. */
  max_queue: z.number().int().min(0).max(100_000).optional(),
  retries: z.number().int().min(0).max(10).optional(),
  instances: z.number().int().min(1).max(32).optional(),
  idle_timeout_ms: z.number().int().min(0).max(86_400_000).optional(),
  cache_ttl_ms: z.number().int().min(0).max(86_400_000).optional(),
});

export const configDefaults = {
  timeout_ms: 30_000,
  max_total_timeout_ms: 300_000,
  max_concurrency: 16,
  max_queue: 1000,
  retries: 1,
  instances: 1,
  idle_timeout_ms: 600_000,
  cache_ttl_ms: 0,
} as const;

export type ServerConfig = z.infer<typeof serverConfigSchema>;
export type EffectiveServerConfig = ServerConfig & { -readonly [K in keyof typeof configDefaults]: number };

export function effectiveConfig(config: ServerConfig): EffectiveServerConfig {
  return { ...configDefaults, ...config } as EffectiveServerConfig;
}

const name = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 _.-]*$/, 'letters, digits, space, _ . - (starting with a letter or digit)');
const stringMap = z.record(z.string().max(1024), z.string().max(16_384));

const common = {
  name,
  description: z.string().max(4096).optional(),
  config: serverConfigSchema.optional(),
  enabled: z.boolean().optional(),
};

export const createServerSchema = z.discriminatedUnion('transport', [
  z.strictObject({
    ...common,
    transport: z.literal('stdio'),
    command: z.string().min(1).max(4096),
    args: z.array(z.string().max(16_384)).max(256).optional(),
    env: stringMap.optional(),
    cwd: z.string().max(4096).optional(),
  }),
  z.strictObject({
    ...common,
    transport: z.literal('streamable-http'),
    url: z.url({ protocol: /^https?$/ }),
    headers: stringMap.optional(),
  }),
]);

export const updateServerSchema = z.strictObject({
  name: name.optional(),
  description: z.string().max(4096).optional(),
  command: z.string().min(1).max(4096).optional(),
  args: z.array(z.string().max(16_384)).max(256).optional(),
  env: stringMap.optional(),
  cwd: z.string().max(4096).nullable().optional(),
  url: z.url({ protocol: /^https?$/ }).optional(),
  headers: stringMap.optional(),
  config: serverConfigSchema.optional(),
  enabled: z.boolean().optional(),
});

/** The `{ "mcpServers": { … } }` file of MCP clients; unknown keys of an entry (e.g. `type`) are tolerated. */
export const importSchema = z.strictObject({
  mcpServers: z.record(
    name,
    z
      .looseObject({
        command: z.string().min(1).max(4096).optional(),
        args: z.array(z.string().max(16_384)).max(256).optional(),
        env: stringMap.optional(),
        cwd: z.string().max(4096).optional(),
        url: z.url({ protocol: /^https?$/ }).optional(),
        headers: stringMap.optional(),
        disabled: z.boolean().optional(),
      })
      .refine((e) => (e.command === undefined) !== (e.url === undefined), {
        message: 'an entry needs either command (stdio) or url (streamable-http)',
      }),
  ),
});

export const serverIdParams = z.strictObject({ id: z.coerce.number().int().positive().max(2_147_483_647) });

export type CreateServerInput = z.infer<typeof createServerSchema>;
export type UpdateServerInput = z.infer<typeof updateServerSchema>;
export type ImportFile = z.infer<typeof importSchema>;

/** A server as stored (secrets included): what the pool connects with. Never sent to clients as is. */
export interface ServerRecord {
  id: number;
  name: string;
  description: string;
  transport: 'stdio' | 'streamable-http';
  command: string | null;
  args: string[];
  env: Record<string, string>;
  cwd: string | null;
  url: string | null;
  headers: Record<string, string>;
  config: ServerConfig;
  configVersion: number;
  enabled: boolean;
  protocolVersion: string | null;
  protocolEra: string | null;
  createdAt: Date;
  updatedAt: Date;
}
