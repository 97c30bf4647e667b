import path from 'node:path';
import type { Db } from './db.js';
import { openPgDb } from './pg-db.js';
import { openPgliteDb } from './pglite-db.js';

/** PostgreSQL when a URL is configured, otherwise the embedded database in `<dataDir>/pglite`. */
export function openDb(settings: { databaseUrl: string | undefined; dataDir: string }): Promise<Db> {
  return settings.databaseUrl
    ? openPgDb(settings.databaseUrl)
    : openPgliteDb(path.join(settings.dataDir, 'pglite'));
}
