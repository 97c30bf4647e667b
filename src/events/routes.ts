import { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Db } from '../db/db.js';
import { abortOnClose } from '../http/abort-on-close.js';
import { exportChunks, exportContentTypes } from './export.js';
import { analyzeQuerySchema, exportQuerySchema, listQuerySchema } from './payloads.js';
import { analyzeEvents, listEvents } from './service.js';

export const eventRoutes =
  (db: Db): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['events'];

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
          summary:
            'Events as CSV, JSON or NDJSON, streamed from the database (COPY on PostgreSQL, keyset pages on PGlite)',
          querystring: exportQuerySchema,
        },
      },
      async (req, reply) => {
        const { format } = req.query;
        // One batch in the stream's buffer at most: the database is read only as fast as the client reads.
        const body = Readable.from(exportChunks(db, req.query, { signal: abortOnClose(reply).signal }), {
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
