import type { Queryable } from '../db/db.js';
import type { ServerConfig, ServerRecord } from './payloads.js';

interface ServerRow {
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
  config_version: number;
  enabled: boolean;
  protocol_version: string | null;
  protocol_era: string | null;
  created_at: Date;
  updated_at: Date;
}

const columns = `id, name, description, transport, command, args, env, cwd, url, headers, config, config_version,
  enabled, protocol_version, protocol_era, created_at, updated_at`;

const toRecord = (r: ServerRow): ServerRecord => ({
  id: r.id,
  name: r.name,
  description: r.description,
  transport: r.transport,
  command: r.command,
  args: r.args,
  env: r.env,
  cwd: r.cwd,
  url: r.url,
  headers: r.headers,
  config: r.config,
  configVersion: r.config_version,
  enabled: r.enabled,
  protocolVersion: r.protocol_version,
  protocolEra: r.protocol_era,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export type NewServer = Omit<
  ServerRecord,
  'id' | 'configVersion' | 'protocolVersion' | 'protocolEra' | 'createdAt' | 'updatedAt'
>;

export async function listServers(db: Queryable): Promise<ServerRecord[]> {
  const { rows } = await db.query<ServerRow>(
    `SELECT ${columns} FROM mcp_servers WHERE deleted_at IS NULL ORDER BY id`,
  );
  return rows.map(toRecord);
}

export async function findServer(db: Queryable, id: number): Promise<ServerRecord | undefined> {
  const { rows } = await db.query<ServerRow>(
    `SELECT ${columns} FROM mcp_servers WHERE id = $1 AND deleted_at IS NULL`,
    [id],
  );
  return rows[0] && toRecord(rows[0]);
}

export async function findServerByName(db: Queryable, name: string): Promise<ServerRecord | undefined> {
  const { rows } = await db.query<ServerRow>(
    `SELECT ${columns} FROM mcp_servers WHERE name = $1 AND deleted_at IS NULL`,
    [name],
  );
  return rows[0] && toRecord(rows[0]);
}

export async function countAllServers(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*) AS n FROM mcp_servers');
  return rows[0]?.n ?? 0;
}

/** The columns a change may set, as parameters in this order: $n … $n+9. */
const mutableColumns = [
  'name',
  'description',
  'command',
  'args',
  'env',
  'cwd',
  'url',
  'headers',
  'config',
  'enabled',
];

function mutableValues(s: NewServer): unknown[] {
  return [
    s.name,
    s.description,
    s.command,
    JSON.stringify(s.args),
    JSON.stringify(s.env),
    s.cwd,
    s.url,
    JSON.stringify(s.headers),
    JSON.stringify(s.config),
    s.enabled,
  ];
}

export async function insertServer(db: Queryable, s: NewServer): Promise<ServerRecord> {
  const { rows } = await db.query<ServerRow>(
    `INSERT INTO mcp_servers (${mutableColumns.join(', ')}, transport)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     RETURNING ${columns}`,
    [...mutableValues(s), s.transport],
  );
  return toRecord(rows[0]!);
}

/** Writes every mutable field; bumps config_version when the config changed. */
export async function updateServer(
  db: Queryable,
  s: ServerRecord,
  configChanged: boolean,
): Promise<ServerRecord> {
  const assignments = mutableColumns.map((c, i) => `${c} = $${i + 2}`).join(', ');
  const { rows } = await db.query<ServerRow>(
    `UPDATE mcp_servers SET ${assignments},
       config_version = config_version + CASE WHEN $12::boolean THEN 1 ELSE 0 END,
       updated_at = LOCALTIMESTAMP
     WHERE id = $1 AND deleted_at IS NULL
     RETURNING ${columns}`,
    [s.id, ...mutableValues(s), configChanged],
  );
  return toRecord(rows[0]!);
}

export async function softDeleteServer(db: Queryable, id: number): Promise<boolean> {
  const res = await db.query(
    'UPDATE mcp_servers SET deleted_at = LOCALTIMESTAMP, enabled = false WHERE id = $1 AND deleted_at IS NULL',
    [id],
  );
  return res.rowCount > 0;
}

export async function recordNegotiatedProtocol(
  db: Queryable,
  id: number,
  version: string,
  era: string,
): Promise<void> {
  await db.query(
    `UPDATE mcp_servers SET protocol_version = $2, protocol_era = $3
     WHERE id = $1 AND (protocol_version IS DISTINCT FROM $2 OR protocol_era IS DISTINCT FROM $3)`,
    [id, version, era],
  );
}
