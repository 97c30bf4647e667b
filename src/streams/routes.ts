import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { issueTokenBody, startStreamBody, stopStreamBody, streamIdParams } from './payloads.js';
import type { StreamService } from './stream-service.js';

export const streamRoutes =
  (streams: StreamService): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['streams'];

    app.post(
      '/api/mcp/stream/start',
      {
        schema: {
          tags,
          summary: 'Start a stream session on a server; connect with socket.io to wsUrl with auth { token }',
          body: startStreamBody,
        },
      },
      async (req) => ({ success: true, ...(await streams.startStream(req.body)) }),
    );

    app.post(
      '/api/mcp/stream/:streamId/token',
      {
        schema: {
          tags,
          summary: 'A handshake token for another client (or a fresh one) on a stream',
          params: streamIdParams,
          body: issueTokenBody,
        },
      },
      async (req) => {
        const { streamId } = req.params;
        const { token, expiresAt } = await streams.issueToken(streamId, req.body.clientId);
        return {
          success: true,
          streamId,
          clientId: req.body.clientId,
          wsUrl: `/mcp-stream/${streamId}`,
          token,
          expiresAt,
        };
      },
    );

    app.get(
      '/api/mcp/stream/status',
      { schema: { tags, summary: 'Active streams with their counters' } },
      async () => ({
        success: true,
        streams: await streams.status(),
      }),
    );

    app.post(
      '/api/mcp/stream/stop',
      {
        schema: {
          tags,
          summary: 'Disconnect every client of a stream and mark it inactive',
          body: stopStreamBody,
        },
      },
      async (req) => {
        const { disconnected } = await streams.stop(req.body.streamId, 'stopped through the API');
        return { success: true, streamId: req.body.streamId, active: false, disconnected };
      },
    );
  };
