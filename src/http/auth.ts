import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HubError } from '../errors.js';

export interface ApiToken {
  token: string;
  /** True when this start generated the token (it is then printed once). */
  generated: boolean;
}

/**
 * The configured token, or the one stored in the data dir, or a new one written there (mode 0600) so the
 * hub keeps the same token across restarts.
 */
export async function resolveApiToken(configured: string | undefined, dataDir: string): Promise<ApiToken> {
  if (configured) return { token: configured, generated: false };
  const file = path.join(dataDir, 'api-token');
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored.length >= 16) return { token: stored, generated: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = `sb_${randomBytes(24).toString('base64url')}`;
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return { token, generated: true };
}

// Hashing both sides gives equal-length buffers, so the comparison time does not reveal the token length.
const digest = (value: string) => hash('sha256', value, 'buffer');

/** A constant-time check against one expected token, whose digest is computed once. */
export function tokenMatcher(expected: string): (presented: string | undefined) => boolean {
  const expectedDigest = digest(expected);
  return (presented) => presented !== undefined && timingSafeEqual(expectedDigest, digest(presented));
}

export function bearerToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** Every /api route needs `Authorization: Bearer <token>`; health, metrics and docs stay open. */
export function registerBearerAuth(app: FastifyInstance, token: string): void {
  const matches = tokenMatcher(token);
  // Callback-style hooks: on the hot path they avoid a promise per request.
  app.addHook('onRequest', (req, _reply, done) => {
    if (!req.url.startsWith('/api/')) return done();
    const presented = bearerToken(req);
    if (!presented) return done(new HubError('SB_ERR_UNAUTHORIZED', 'send Authorization: Bearer <token>'));
    if (!matches(presented)) return done(new HubError('SB_ERR_UNAUTHORIZED', 'the token is not valid'));
    done();
  });
}
