import type { FastifyInstance } from 'fastify';
import type { Db } from '../db/db.js';
import { type Migration, migrationsCurrent } from '../db/migrator.js';

export function registerHealthRoutes(
  app: FastifyInstance,
  db: Db,
  migrations: readonly Migration[],
  redis?: { ready(): boolean },
): void {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  // The sign-in URL printed at start points here; until the web UI lands, the interactive API docs are the UI.
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/docs'));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    try {
      const current = await migrationsCurrent(db, migrations);
      if (!current) return reply.status(503).send({ status: 'not ready', reason: 'migrations pending' });
      if (redis && !redis.ready())
        return reply.status(503).send({ status: 'not ready', reason: 'Redis unreachable (reconnecting)' });
      return { status: 'ready', database: db.driver, ...(redis ? { redis: 'connected' } : {}) };
    } catch (err) {
      return reply
        .status(503)
        .send({ status: 'not ready', reason: `database unreachable: ${(err as Error).message}` });
    }
  });
}
