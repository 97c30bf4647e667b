import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { bundleRoutes } from './bundles/routes.js';
import { BundleService } from './bundles/service.js';
import { registerBundleNamespace } from './bundles/socket.js';
import type { Config } from './config.js';
import type { Db } from './db/db.js';
import { loadMigrations, migrate } from './db/migrator.js';
import { openDb } from './db/open-db.js';
import { HubEventBus } from './events/hub-events.js';
import { EventRecorder } from './events/recorder.js';
import { EventRetention } from './events/retention.js';
import { eventRoutes } from './events/routes.js';
import { registerLiveEvents } from './events/socket.js';
import { registerBearerAuth, resolveApiToken } from './http/auth.js';
import { registerErrorHandling } from './http/error-handler.js';
import { registerHealthRoutes } from './http/health.js';
import { registerMetrics } from './http/metrics-routes.js';
import { registerOpenApi } from './http/openapi.js';
import { registerOriginCheck } from './http/origin-check.js';
import { registerRateLimit } from './http/rate-limit.js';
import { registerApiCallRecording } from './http/record-api-calls.js';
import { createLogger, type Logger } from './logger.js';
import { UpstreamPool } from './mcp/upstream-pool.js';
import { createMetrics, type Metrics } from './metrics.js';
import { migrationsDir, projectRoot } from './paths.js';
import { connectRedis, useRedisAdapter } from './realtime/redis.js';
import { createSocketServer, type Realtime } from './realtime/socket-server.js';
import { exampleServers } from './servers/example-servers.js';
import { serverRoutes } from './servers/routes.js';
import { ServerRegistry } from './servers/service.js';
import { RedisStreamStore } from './streams/redis-stream-store.js';
import { streamRoutes } from './streams/routes.js';
import { registerStreamNamespace } from './streams/socket.js';
import { DEFAULT_IDLE_TIMEOUT_MS, StreamService } from './streams/stream-service.js';
import { version } from './version.js';

export interface Hub {
  config: Config;
  log: Logger;
  db: Db;
  events: HubEventBus;
  metrics: Metrics;
  recorder: EventRecorder;
  registry: ServerRegistry;
  pool: UpstreamPool;
  realtime: Realtime;
  streams: StreamService;
  bundles: BundleService;
  apiToken: { token: string; generated: boolean };
}

export interface BuildOptions {
  /** Root logger; one is created from config.logLevel when absent. */
  log?: Logger;
  /** An already open database (tests); the hub then does not close it. */
  db?: Db;
}

/** Builds the whole hub without listening: tests call inject() on it, main.ts calls listen(). */
export async function buildApp(
  config: Config,
  options: BuildOptions = {},
): Promise<{ app: FastifyInstance; hub: Hub }> {
  const log = options.log ?? createLogger(config.logLevel);
  const db = options.db ?? (await openDb(config));
  const migrations = await loadMigrations(migrationsDir);
  const applied = await migrate(db, migrations);
  if (applied.length > 0) log.info({ applied, driver: db.driver }, 'database migrated');

  const metrics = createMetrics();
  const events = new HubEventBus((err) => log.error({ err }, 'event listener failed'));
  const recorder = new EventRecorder({
    db,
    events,
    metrics,
    log: log.child({ module: 'recorder' }),
    enabled: config.recordEvents,
  });
  recorder.start();

  const registry = new ServerRegistry(db, events, config.stdioAllow);
  const pool = new UpstreamPool({
    loadServer: (id) => registry.record(id),
    events,
    metrics,
    log: log.child({ module: 'upstream' }),
    projectRoot,
    stdioAllow: config.stdioAllow,
    onConnected: (serverId, info) => {
      registry.recordProtocol(serverId, info.protocolVersion, info.protocolEra).catch((err: unknown) => {
        log.warn({ err, serverId }, 'could not store the negotiated protocol version');
      });
    },
  });
  registry.attachRuntime(pool);
  if (config.seedExamples) {
    const seeded = await registry.seedIfEmpty(exampleServers);
    if (seeded.length > 0)
      log.info({ servers: seeded.map((s) => `${s.id}:${s.name}`) }, 'registered the example servers');
  }

  // REDIS_URL: several hub processes share streams (state in Redis, socket.io across processes).
  const redis = config.redisUrl
    ? await connectRedis(config.redisUrl, config.redisPrefix, log.child({ module: 'redis' }))
    : undefined;

  const apiToken = await resolveApiToken(config.apiToken, config.dataDir);
  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    // Per-request log lines would cost more than the calls they describe; metrics and events cover requests.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  registerMetrics(app, metrics);
  registerOriginCheck(app, config.allowedOrigins);
  registerBearerAuth(app, apiToken.token);
  await registerRateLimit(app, config.rateLimitPerMinute, redis);
  await registerOpenApi(app, version);
  registerHealthRoutes(app, db, migrations, redis);

  registerApiCallRecording(app, events);

  await app.register(serverRoutes(registry, pool));

  // socket.io on the same HTTP server; features add namespaces. Engine packets may be twice the body limit so
  // that a too-large stream message is answered with an error, not a dropped connection.
  const realtime = createSocketServer(app, {
    allowedOrigins: config.allowedOrigins,
    maxPacketBytes: config.bodyLimitBytes * 2,
    shared: redis !== undefined,
  });
  if (redis) useRedisAdapter(realtime.io, redis, log.child({ module: 'redis' }));
  const streamLog = log.child({ module: 'streams' });
  const streams = new StreamService({
    db,
    pool,
    registry,
    events,
    log: streamLog,
    limits: {
      ratePerSecond: config.streamRatePerSecond,
      maxMessageBytes: config.bodyLimitBytes,
      slowConsumerBytes: config.streamSlowConsumerBytes,
    },
    store: redis
      ? new RedisStreamStore(redis.client, { prefix: redis.prefix, keyTtlMs: 2 * DEFAULT_IDLE_TIMEOUT_MS })
      : undefined,
  });
  streams.start();
  registerStreamNamespace(realtime.io, streams, { allowedOrigins: config.allowedOrigins, log: streamLog });
  realtime.beforeClose(() => streams.close());
  await app.register(streamRoutes(streams));
  const bundles = new BundleService({
    db,
    events,
    log: log.child({ module: 'bundles' }),
    config,
    servers: registry,
    pool,
  });
  // preClose: executions end (and are stored) before the pool and the database close in onClose.
  app.addHook('preClose', () => bundles.close({ graceMs: config.shutdownGraceMs }));
  await app.register(bundleRoutes(bundles));
  registerBundleNamespace(realtime, bundles, {
    apiToken: apiToken.token,
    allowedOrigins: config.allowedOrigins,
    log: log.child({ module: 'bundles' }),
  });
  // Closes the executions that a stopped hub left running, then heartbeats this hub's own.
  await bundles.start();
  const retention = new EventRetention({
    db,
    log: log.child({ module: 'event-retention' }),
    retentionDays: config.eventRetentionDays,
  });
  retention.start();
  await app.register(eventRoutes(db));
  registerLiveEvents(realtime, events, { apiToken: apiToken.token, allowedOrigins: config.allowedOrigins });

  // Closing waits for every open connection; a keep-alive socket becomes idle only after its in-flight
  // request is answered, so idle ones are swept until the server has closed.
  let idleSweeper: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    idleSweeper = setInterval(() => app.server.closeIdleConnections(), 50);
    idleSweeper.unref();
  });
  // Fastify runs onClose hooks after in-flight requests finish; resources close in reverse order of creation.
  app.addHook('onClose', async () => {
    clearInterval(idleSweeper);
    await retention.close();
    await pool.close({ graceMs: config.shutdownGraceMs });
    await recorder.close();
    await redis?.close();
    if (!options.db) await db.close();
  });

  return {
    app,
    hub: { config, log, db, events, metrics, recorder, registry, pool, realtime, streams, bundles, apiToken },
  };
}
