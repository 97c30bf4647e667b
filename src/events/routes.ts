import { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Db } from '../db/db.js';
import { abortOnClose } from '../http/abort-on-close.js';
import type { Logger } from '../logger.js';
import { exportChunks, exportContentTypes } from './export.js';
import { analyzeQuerySchema, exportQuerySchema, listQuerySchema } from './payloads.js';
import { EventRetention } from './retention.js';
import { analyzeEvents, listEvents } from './service.js';

export interface EventRoutesOptions {
  /** Runs the retention job (deleting and rolling up events older than `days`) for the app's lifetime. */
  retention?: { days: number; log: Logger };
}

export const eventRoutes =
  (db: Db, options: EventRoutesOptions = {}): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['events'];

    if (options.retention) {
      const retention = new EventRetention({
        db,
        log: options.retention.log.child({ module: 'event-retention' }),
        retentionDays: options.retention.days,
      });
      retention.start();
      app.addHook('onClose', () => retention.close());
    }

    app.get(
      '/api/mcp/events',
      {
        schema: {
          tags,
          summary: 'Events, newest first, with filters and cursor pagination',
          querystring: listQuerySchema,
        },
      },
      async (req) => ({ success: true, ...(await listEvents(db, req.query)) }),
    );

    app.get(
      '/api/mcp/events/analyze',
      {
        schema: {
          tags,
          summary:
            'Event figures (counts, latency percentiles, success, errors, throughput) and recommendations',
          querystring: analyzeQuerySchema,
        },
      },
      async (req) => ({ success: true, ...(await analyzeEvents(db, req.query)) }),
    );

    app.get(
      '/api/mcp/events/export',
      {
        schema: {
          tags,
          summary: 'Events as CSV, JSON or NDJSON, streamed from a database cursor',
          querystring: exportQuerySchema,
        },
      },
      async (req, reply) => {
        const { format } = req.query;
        // One batch in the stream's buffer at most: the database is read only as fast as the client reads.
        const body = Readable.from(exportChunks(db, req.query, { signal: abortOnClose(reply) }), {
          objectMode: true,
          highWaterMark: 1,
        });
        const stamp = new Date().toISOString().replace(/[:.]/g, '-');
        return reply
          .header('content-type', exportContentTypes[format])
          .header('content-disposition', `attachment; filename="mcp-events-${stamp}.${format}"`)
          .header('cache-control', 'no-store')
          .send(body);
      },
    );
  };
