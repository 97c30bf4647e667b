import type { FastifyInstance } from 'fastify';
import { HubError } from '../errors.js';

/**
 * Browsers send Origin on cross-site requests: such a request to /api is refused unless it comes from the
 * hub's own origin or one listed in SWITCHBOARD_ALLOWED_ORIGINS. Non-browser clients send no Origin.
 */
export function isOriginAllowed(
  origin: string,
  host: string | undefined,
  allowed: readonly string[],
): boolean {
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

export function registerOriginCheck(app: FastifyInstance, allowed: readonly string[]): void {
  app.addHook('onRequest', (req, _reply, done) => {
    const origin = req.headers.origin;
    if (!origin || !req.url.startsWith('/api/') || isOriginAllowed(origin, req.headers.host, allowed))
      return done();
    done(new HubError('SB_ERR_FORBIDDEN', `origin ${origin} is not allowed (SWITCHBOARD_ALLOWED_ORIGINS)`));
  });
}
