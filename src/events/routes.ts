import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Db } from '../db/db.js';
import { analyzeQuerySchema } from './payloads.js';
import { analyzeEvents } from './service.js';

export const eventRoutes =
  (db: Db): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['events'];

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
  };
