import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { HubError } from '../errors.js';

/** Maps Fastify's own errors to the catalogue so every failure has the one shape and a stable code. */
function toHubError(err: FastifyError): HubError {
  if (err instanceof HubError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => ({
      in: err.validationContext ?? 'body',
      path: v.instancePath || '/',
      message: v.message ?? 'invalid',
      ...(v.params && typeof v.params === 'object' ? { params: v.params } : {}),
    }));
    const first = issues[0];
    return new HubError(
      'SB_ERR_VALIDATION',
      first
        ? `${first.in} ${first.path}: ${first.message}`
        : `${err.validationContext ?? 'request'} is invalid`,
      { issues },
    );
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HubError('SB_ERR_BAD_JSON', err.message);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HubError('SB_ERR_PAYLOAD_TOO_LARGE', err.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HubError('SB_ERR_UNSUPPORTED_MEDIA_TYPE', err.message);
  }
  if (err.statusCode === 429) return new HubError('SB_ERR_RATE_LIMITED', err.message);
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new HubError('SB_ERR_VALIDATION', err.message, { code: err.code });
  }
  return new HubError('SB_ERR_INTERNAL', 'the request could not be completed', undefined, { cause: err });
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const hubError = toHubError(err);
    if (hubError.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: hubError.code }, hubError.message);
    reply.status(hubError.status).send({ success: false, error: hubError.toJSON() });
  });
  app.setNotFoundHandler((req, reply) => {
    const error = new HubError('SB_ERR_ROUTE_NOT_FOUND', `${req.method} ${req.url.split('?')[0]}`);
    reply.status(404).send({ success: false, error: error.toJSON() });
  });
}
