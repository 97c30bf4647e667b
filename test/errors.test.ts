import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalogue, HubError } from '../src/errors.js';
import { projectRoot } from '../src/paths.js';

describe('error catalogue', () => {
  const doc = readFileSync(path.join(projectRoot, 'docs', 'ERRORS.md'), 'utf8');

  it.each(Object.keys(errorCatalogue))('%s is documented once with its status', (code) => {
    const rows = doc.split('\n').filter((line) => line.startsWith(`| \`${code}\` |`));
    expect(rows).toHaveLength(1);
    const status = errorCatalogue[code as keyof typeof errorCatalogue].status;
    expect(rows[0]).toContain(`| ${status} |`);
  });

  it('documents no code that the catalogue lacks', () => {
    const documented = [...doc.matchAll(/^\| `(SB_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(errorCatalogue).sort());
  });

  it('renders the one error shape', () => {
    const err = new HubError('SB_ERR_NOT_FOUND', 'Server 9', { serverId: 9 });
    expect(err.status).toBe(404);
    expect(err.toJSON()).toEqual({
      code: 'SB_ERR_NOT_FOUND',
      message: 'Server 9 not found',
      details: { serverId: 9 },
    });
  });
});
