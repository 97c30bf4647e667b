import { describe, expect, it } from 'vitest';
import { encodeCopyRows, encodeCopyValue } from '../../src/db/db.js';

describe('COPY text encoding', () => {
  it.each([
    [null, '\\N'],
    [undefined, '\\N'],
    [42, '42'],
    [true, 'true'],
    ['plain', 'plain'],
    ['tab\there', 'tab\\there'],
    ['line\nbreak\r', 'line\\nbreak\\r'],
    ['back\\slash', 'back\\\\slash'],
    [{ a: 'x\ty' }, '{"a":"x\\\\ty"}'],
    [new Date('2026-01-02T03:04:05.006Z'), '2026-01-02T03:04:05.006Z'],
  ])('encodes %j', (value, expected) => {
    expect(encodeCopyValue(value)).toBe(expected);
  });

  it('joins columns with tabs and rows with newlines', () => {
    expect(
      encodeCopyRows([
        [1, 'a'],
        [2, null],
      ]),
    ).toBe('1\ta\n2\t\\N\n');
  });
});
