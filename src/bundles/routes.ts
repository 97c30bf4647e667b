import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { abortOnClose } from '../http/abort-on-close.js';
import {
  acceptSuggestionQuery,
  acceptSuggestionSchema,
  bundleIdParams,
  createBundleSchema,
  executeBundleSchema,
  executionIdParams,
  executionsQuery,
  SYNC_WAIT_MS,
  suggestionIdParams,
  suggestionsQuery,
  updateBundleSchema,
} from './payloads.js';
import type { BundleService } from './service.js';
import { BundleSuggestions } from './suggestions.js';

/** The REST adapter of the bundle service (created and closed by app.ts). */
export const bundleRoutes =
  (service: BundleService): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['bundles'];

    app.post(
      '/api/mcp/bundle/create',
      { schema: { tags, summary: 'Create a bundle of servers', body: createBundleSchema } },
      async (req, reply) => {
        const bundle = await service.create(req.body);
        return reply.status(201).send({ success: true, bundleId: bundle.id, bundle });
      },
    );

    app.get(
      '/api/mcp/bundle/list',
      { schema: { tags, summary: 'Bundles with execution counts and performance' } },
      async () => ({ success: true, bundles: await service.list() }),
    );

    app.post(
      '/api/mcp/bundle/execute',
      {
        schema: {
          tags,
          summary: "Run a workflow over a bundle's servers (async: true answers 202 at once)",
          body: executeBundleSchema,
        },
      },
      async (req, reply) => {
        const { executionId, ended } = await service.execute(req.body);
        const accepted = { success: true, executionId, status: 'running' };
        if (req.body.async) return reply.status(202).send(accepted);
        // A client that goes away while waiting cancels the execution (not after a 202: it then runs on).
        let waiting = true;
        abortOnClose(reply).signal.addEventListener('abort', () => {
          if (waiting) service.cancel(executionId).catch(() => {});
        });
        let timer: NodeJS.Timeout | undefined;
        const waited = new Promise<undefined>((resolve) => {
          timer = setTimeout(resolve, req.body.waitMs ?? SYNC_WAIT_MS, undefined);
        });
        const result = await Promise.race([ended, waited]);
        clearTimeout(timer);
        waiting = false;
        return result ? reply.send(result) : reply.status(202).send(accepted);
      },
    );

    app.get(
      '/api/mcp/bundle/executions/:executionId',
      {
        schema: { tags, summary: 'An execution: its state so far, or its result', params: executionIdParams },
      },
      async (req) => service.getExecution(req.params.executionId),
    );

    app.post(
      '/api/mcp/bundle/executions/:executionId/cancel',
      {
        schema: {
          tags,
          summary: 'Cancel a running execution (its upstream calls are cancelled)',
          params: executionIdParams,
        },
      },
      async (req) => service.cancel(req.params.executionId),
    );

    app.get(
      '/api/mcp/bundle/:bundleId/executions',
      {
        schema: {
          tags,
          summary: "A bundle's executions, newest first",
          params: bundleIdParams,
          querystring: executionsQuery,
        },
      },
      async (req) => ({
        success: true,
        bundleId: req.params.bundleId,
        executions: await service.executions(req.params.bundleId, req.query.limit),
      }),
    );

    const suggestions = new BundleSuggestions({ db: service.db, bundles: service });

    app.get(
      '/api/mcp/bundle/suggestions',
      {
        schema: {
          tags,
          summary: 'Bundles suggested from usage: servers and tools used together, in order, with evidence',
          querystring: suggestionsQuery,
        },
      },
      async (req) => ({ success: true, suggestions: await suggestions.list(req.query) }),
    );

    app.post(
      '/api/mcp/bundle/suggestions/:id/accept',
      {
        schema: {
          tags,
          summary: 'Create the bundle of a suggestion (recomputed with the same minSupport and since)',
          params: suggestionIdParams,
          querystring: acceptSuggestionQuery,
          body: acceptSuggestionSchema,
        },
      },
      async (req, reply) => {
        const { suggestion, bundle } = await suggestions.accept(req.params.id, req.body, req.query);
        return reply
          .status(201)
          .send({ success: true, bundleId: bundle.id, bundle, suggestionId: suggestion.id });
      },
    );

    app.get(
      '/api/mcp/bundle/:bundleId',
      { schema: { tags, summary: 'One bundle', params: bundleIdParams } },
      async (req) => ({ success: true, bundle: await service.get(req.params.bundleId) }),
    );

    app.patch(
      '/api/mcp/bundle/:bundleId',
      { schema: { tags, summary: 'Change a bundle', params: bundleIdParams, body: updateBundleSchema } },
      async (req) => ({ success: true, bundle: await service.update(req.params.bundleId, req.body) }),
    );

    app.delete(
      '/api/mcp/bundle/:bundleId',
      {
        schema: { tags, summary: 'Delete a bundle (its executions and events stay)', params: bundleIdParams },
      },
      async (req) => {
        await service.remove(req.params.bundleId);
        return { success: true, deleted: req.params.bundleId };
      },
    );
  };
