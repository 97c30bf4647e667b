import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalogue, HubError } from '../src/errors.js';
import { projectRoot } from '../src/paths.js';

describe('error catalogue', () => {
  const doc = readFileSync(path.join(projectRoot, 'docs', 'ERRORS.md'), 'utf8');
  // Table rows as [code, status, when], whatever padding the formatter gave them.
  const rows = doc
    .split('\n')
    .filter((line) => line.startsWith('| `SB_ERR_'))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );

  it.each(Object.keys(errorCatalogue))('%s is documented once with its status', (code) => {
    const matching = rows.filter((r) => r[0] === `\`${code}\``);
    expect(matching).toHaveLength(1);
    expect(matching[0]![1]).toBe(String(errorCatalogue[code as keyof typeof errorCatalogue].status));
  });

  it('documents no code that the catalogue lacks', () => {
    const documented = rows.map((r) => r[0]!.replaceAll('`', ''));
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
