import type { FastifyReply } from 'fastify';

/**
 * A controller that aborts when the client goes away before the reply is written, so the upstream call is
 * cancelled instead of running for nobody. The response's 'close' fires once per request (not per
 * keep-alive socket), and writableFinished tells a normal end from a dropped connection. A controller rather
 * than its signal: a tool call can take it as its own (CallOptions.controller) and make no second signal.
 */
export function abortOnClose(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('client disconnected'));
  });
  return controller;
}
