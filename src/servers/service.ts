import { type Db, isUniqueViolation } from '../db/db.js';
import { HubError, notFound } from '../errors.js';
import type { HubEventBus } from '../events/hub-events.js';
import {
  type CreateServerInput,
  effectiveConfig,
  type ImportFile,
  type ServerRecord,
  type UpdateServerInput,
} from './payloads.js';
import {
  findServer,
  findServerByName,
  insertServer,
  listServers,
  type NewServer,
  recordNegotiatedProtocol,
  softDeleteServer,
  updateServer,
} from './queries.js';
import { isCommandAllowed } from './stdio-allow.js';

export const MASKED = '********';

/** What the registry needs from the upstream pool, kept narrow so the two can be tested apart. */
export interface ServerRuntime {
  /** After an update: a change of hub-side knobs keeps the server's processes, anything else restarts them. */
  reconfigure(serverId: number): Promise<void>;
  /** After a delete: the processes stop. */
  invalidate(serverId: number): Promise<void>;
  status(serverId: number): Record<string, unknown>;
}

export type ServerView = ReturnType<typeof toView>;

function maskValues(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(values).map((k) => [k, MASKED]));
}

function maskUrl(url: string | null): string | null {
  if (!url) return url;
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = MASKED;
    return u.toString();
  } catch {
    return url;
  }
}

/** The public shape of a server: secret values in env and headers (and a URL password) are masked. */
function toView(s: ServerRecord, runtime?: Record<string, unknown>) {
  return {
    id: s.id,
    name: s.name,
    description: s.description,
    transport: s.transport,
    command: s.command,
    args: s.args,
    env: maskValues(s.env),
    cwd: s.cwd,
    url: maskUrl(s.url),
    headers: maskValues(s.headers),
    config: s.config,
    effective_config: effectiveConfig(s.config),
    config_version: s.configVersion,
    enabled: s.enabled,
    protocol_version: s.protocolVersion,
    protocol_era: s.protocolEra,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
    ...(runtime ? { status: runtime } : {}),
  };
}

/** A value sent back as the mask keeps the stored secret, so a client can round-trip what it was shown. */
function mergeSecrets(next: Record<string, string>, stored: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(next).map(([k, v]) => [k, v === MASKED && k in stored ? stored[k]! : v]),
  );
}

export class ServerRegistry {
  #runtime: ServerRuntime | undefined;

  constructor(
    private readonly db: Db,
    private readonly events: HubEventBus,
    private readonly stdioAllow: readonly string[],
  ) {}

  /** Set once the pool exists (the pool itself loads servers through this registry). */
  attachRuntime(runtime: ServerRuntime): void {
    this.#runtime = runtime;
  }

  async list(): Promise<ServerView[]> {
    return (await listServers(this.db)).map((s) => toView(s, this.#runtime?.status(s.id)));
  }

  async get(id: number): Promise<ServerView> {
    return toView(await this.require(id), this.#runtime?.status(id));
  }

  /** The stored record, secrets included: for the pool only. */
  record(id: number): Promise<ServerRecord | undefined> {
    return findServer(this.db, id);
  }

  async require(id: number): Promise<ServerRecord> {
    const s = await findServer(this.db, id);
    if (!s) throw notFound(`Server ${id}`, { serverId: id });
    return s;
  }

  async create(input: CreateServerInput): Promise<ServerView> {
    const created = await this.insert(this.toNew(input));
    this.emitChange('created', created);
    return toView(created);
  }

  async update(id: number, patch: UpdateServerInput): Promise<ServerView> {
    const current = await this.require(id);
    if (current.transport === 'stdio' && (patch.url !== undefined || patch.headers !== undefined)) {
      throw new HubError('SB_ERR_VALIDATION', 'url and headers apply to streamable-http servers only');
    }
    if (
      current.transport === 'streamable-http' &&
      (patch.command ?? patch.args ?? patch.env ?? patch.cwd) !== undefined
    ) {
      throw new HubError('SB_ERR_VALIDATION', 'command, args, env and cwd apply to stdio servers only');
    }
    if (patch.command !== undefined) this.checkCommand(patch.command);
    const next: ServerRecord = {
      ...current,
      name: patch.name ?? current.name,
      description: patch.description ?? current.description,
      command: patch.command ?? current.command,
      args: patch.args ?? current.args,
      env: patch.env ? mergeSecrets(patch.env, current.env) : current.env,
      cwd: patch.cwd === undefined ? current.cwd : patch.cwd,
      url: patch.url ?? current.url,
      headers: patch.headers ? mergeSecrets(patch.headers, current.headers) : current.headers,
      config: patch.config ?? current.config,
      enabled: patch.enabled ?? current.enabled,
    };
    const configChanged = JSON.stringify(next.config) !== JSON.stringify(current.config);
    let updated: ServerRecord;
    try {
      updated = await updateServer(this.db, next, configChanged);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new HubError('SB_ERR_CONFLICT', `a server named "${next.name}" exists`);
      throw err;
    }
    await this.#runtime?.reconfigure(id);
    this.emitChange('updated', updated, { configChanged, fields: Object.keys(patch) });
    return toView(updated);
  }

  async remove(id: number): Promise<void> {
    const existing = await this.require(id);
    await softDeleteServer(this.db, id);
    await this.#runtime?.invalidate(id);
    this.emitChange('deleted', existing);
  }

  /**
   * Imports the `{ mcpServers: { name: {...} } }` file MCP clients use. Entries whose name exists are
   * skipped (reported); the rest are created in one transaction, so a failure creates none.
   */
  async import(
    file: ImportFile,
  ): Promise<{ created: ServerView[]; skipped: { name: string; reason: string }[] }> {
    const skipped: { name: string; reason: string }[] = [];
    const toCreate: NewServer[] = [];
    for (const [name, entry] of Object.entries(file.mcpServers)) {
      if (await findServerByName(this.db, name)) {
        skipped.push({ name, reason: 'a server with this name exists' });
        continue;
      }
      const enabled = entry.disabled !== true;
      const input: CreateServerInput = entry.command
        ? {
            name,
            transport: 'stdio',
            command: entry.command,
            args: entry.args,
            env: entry.env,
            cwd: entry.cwd,
            enabled,
          }
        : { name, transport: 'streamable-http', url: entry.url!, headers: entry.headers, enabled };
      toCreate.push(this.toNew(input));
    }
    const created = await this.db.transaction(async (tx) => {
      const out: ServerRecord[] = [];
      for (const s of toCreate) out.push(await insertServer(tx, s));
      return out;
    });
    for (const s of created) this.emitChange('created', s, { imported: true });
    return { created: created.map((s) => toView(s)), skipped };
  }

  /** Creates servers only when the table has never held any (first start). */
  async seedIfEmpty(servers: readonly CreateServerInput[]): Promise<ServerRecord[]> {
    return this.db.transaction(async (tx) => {
      // Serialises concurrent first starts of several hubs on one database.
      await tx.query('LOCK TABLE mcp_servers IN EXCLUSIVE MODE');
      const { rows } = await tx.query<{ n: number }>('SELECT count(*) AS n FROM mcp_servers');
      if ((rows[0]?.n ?? 0) > 0) return [];
      const created: ServerRecord[] = [];
      for (const s of servers) created.push(await insertServer(tx, this.toNew(s)));
      return created;
    });
  }

  async recordProtocol(id: number, version: string, era: string): Promise<void> {
    await recordNegotiatedProtocol(this.db, id, version, era);
  }

  private async insert(s: NewServer): Promise<ServerRecord> {
    try {
      return await insertServer(this.db, s);
    } catch (err) {
      if (isUniqueViolation(err)) throw new HubError('SB_ERR_CONFLICT', `a server named "${s.name}" exists`);
      throw err;
    }
  }

  private checkCommand(command: string): void {
    if (!isCommandAllowed(command, this.stdioAllow)) throw new HubError('SB_ERR_STDIO_NOT_ALLOWED', command);
  }

  private toNew(input: CreateServerInput): NewServer {
    if (input.transport === 'stdio') {
      this.checkCommand(input.command);
      return {
        name: input.name,
        description: input.description ?? '',
        transport: 'stdio',
        command: input.command,
        args: input.args ?? [],
        env: input.env ?? {},
        cwd: input.cwd ?? null,
        url: null,
        headers: {},
        config: input.config ?? {},
        enabled: input.enabled ?? true,
      };
    }
    return {
      name: input.name,
      description: input.description ?? '',
      transport: 'streamable-http',
      command: null,
      args: [],
      env: {},
      cwd: null,
      url: input.url,
      headers: input.headers ?? {},
      config: input.config ?? {},
      enabled: input.enabled ?? true,
    };
  }

  private emitChange(change: string, s: ServerRecord, extra: Record<string, unknown> = {}): void {
    this.events.emit({
      type: 'server_change',
      serverId: s.id,
      configVersion: s.configVersion,
      source: 'rest',
      ok: true,
      // Names only: env and header values never reach the event log.
      data: { change, name: s.name, transport: s.transport, config: s.config, enabled: s.enabled, ...extra },
    });
  }
}
