#!/usr/bin/env node
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const { app, hub } = await buildApp(config, { log });
  const address = await app.listen({ port: config.port, host: config.host });

  const base = address.replace('0.0.0.0', '127.0.0.1').replace('[::]', '[::1]');
  log.info({ address, database: hub.db.driver }, 'Switchboard is listening');
  if (hub.apiToken.generated) {
    // Printed once, on the start that generated it; it is kept in the data dir for the next starts.
    process.stdout.write(
      `\n  Switchboard API token (stored in ${config.dataDir}/api-token):\n    ${hub.apiToken.token}\n` +
        `  Sign in: ${base}/?token=${hub.apiToken.token}\n` +
        `  Try:     curl -H "Authorization: Bearer ${hub.apiToken.token}" ${base}/api/mcp/servers\n\n`,
    );
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight calls, flushing events');
    const deadline = setTimeout(() => {
      log.error({ graceMs: config.shutdownGraceMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownGraceMs + 5_000);
    deadline.unref();
    app.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `Switchboard failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
