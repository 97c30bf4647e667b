import { describe, expect, it } from 'vitest';
import {
  isSecretKey,
  MAX_ARRAY_ITEMS,
  MAX_DEPTH,
  MAX_OBJECT_KEYS,
  MAX_PAYLOAD_BYTES,
  MAX_STRING_CHARS,
  PREVIEW_CHARS,
  REDACTED,
  redactText,
  sanitize,
  sanitizeToJson,
  TIGHT_ARRAY_ITEMS,
  TIGHT_OBJECT_KEYS,
  TIGHT_STRING_CHARS,
} from '../../src/events/sanitizer.js';

describe('isSecretKey', () => {
  it.each([
    ['token', true],
    ['accessToken', true],
    ['refresh_token', true],
    ['X-Auth-Token', true],
    ['GITHUB_PERSONAL_ACCESS_TOKEN', true],
    ['password', true],
    ['PGPASSWORD', true],
    ['passwd', true],
    ['DB_PASS', true],
    ['pwd', true],
    ['secret', true],
    ['clientSecret', true],
    ['client_secret', true],
    ['Authorization', true],
    ['Proxy-Authorization', true],
    ['auth', true],
    ['api_key', true],
    ['apiKey', true],
    ['APIKey', true],
    ['apikey', true],
    ['x-api-key', true],
    ['OPENAI_API_KEY', true],
    ['cookie', true],
    ['Set-Cookie', true],
    ['private_key', true],
    ['privateKey', true],
    ['aws_access_key_id', true],
    ['accessKey', true],
    ['session', true],
    ['sessionId', true],
    ['mcp-session-id', true],
    ['credentials', true],
    ['passphrase', true],
    ['jwt', true],
    // Not secrets: words that merely contain the letters, and ordinary keys.
    ['author', false],
    ['authority', false],
    ['passage', false],
    ['bypass', false],
    ['keywords', false],
    ['keyword_density', false],
    ['tool', false],
    ['message', false],
    ['serverId', false],
    ['streamId', false],
  ])('%s → %s', (key, secret) => {
    expect(isSecretKey(key)).toBe(secret);
  });

  it.each([
    ['max_tokens', 500, false],
    ['maxTokens', 500, false],
    ['total_tokens', 1234, false],
    ['token_count', 7, false],
    ['completionTokens', 3, false],
    // A token count holding something else than a number is treated as a secret.
    ['max_tokens', 'abc', true],
    ['token_count', { a: 1 }, true],
    // A number under a plain secret key stays secret (PINs, numeric one-time codes).
    ['token', 123456, true],
    ['password', 1234, true],
  ])('%s with %j → %s', (key, value, secret) => {
    expect(isSecretKey(key, value)).toBe(secret);
  });
});

describe('redactText', () => {
  it.each([
    ['Authorization: Bearer abc.def-ghi_jkl', `Authorization: Bearer ${REDACTED}`],
    ['bearer eyJhbGciOi.J9x==', `bearer ${REDACTED}`],
    ['call failed (Bearer sk-123) after 3 tries', `call failed (Bearer ${REDACTED}) after 3 tries`],
    ['postgres://admin:hunter2@db.local:5432/app', `postgres://admin:${REDACTED}@db.local:5432/app`],
    ['https://x.test/cb?access_token=abc123&state=ok', `https://x.test/cb?access_token=${REDACTED}&state=ok`],
    ['--password=hunter2 --verbose', `--password=${REDACTED} --verbose`],
    ['{"api_key": "sk-live-1", "model": "m"}', `{"api_key": "${REDACTED}", "model": "m"}`],
    ['{"nested":{"clientSecret":"s\\"x"}}', `{"nested":{"clientSecret":"${REDACTED}"}}`],
    // A cut string: the value's closing quote is gone, the value is still redacted.
    ['{"password": "hunter2-and-more', `{"password": "${REDACTED}"`],
    ['nothing to see here', 'nothing to see here'],
    ['mail me at a@b.c', 'mail me at a@b.c'],
    ['a\u0000b', 'a\ufffdb'],
    ['lone \ud800 surrogate', 'lone \ufffd surrogate'],
    ['emoji 😀 kept', 'emoji 😀 kept'],
  ])('%j', (input, expected) => {
    expect(redactText(input)).toBe(expected);
  });
});

const long = (n: number, c = 'x') => c.repeat(n);

describe('sanitize', () => {
  const cyclic: Record<string, unknown> = { name: 'loop' };
  cyclic.self = cyclic;
  const shared = { v: 1 };
  const withProto = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');

  it.each<[string, unknown, unknown]>([
    ['null stays null', null, null],
    ['undefined becomes null', undefined, null],
    ['plain data passes unchanged', { a: 1, b: 'two', c: [true, null] }, { a: 1, b: 'two', c: [true, null] }],
    [
      'secret keys redacted at any depth, in objects and arrays',
      { headers: { Authorization: 'Bearer t' }, list: [{ password: 'p' }, { nested: [{ api_key: 'k' }] }] },
      {
        headers: { Authorization: REDACTED },
        list: [{ password: REDACTED }, { nested: [{ api_key: REDACTED }] }],
      },
    ],
    [
      'a whole object under a secret key is redacted',
      { credentials: { user: 'u', pass: 'p' } },
      { credentials: REDACTED },
    ],
    [
      'token counts kept',
      { usage: { max_tokens: 10, total_tokens: 20 } },
      { usage: { max_tokens: 10, total_tokens: 20 } },
    ],
    ['bearer inside a string', { note: 'sent Bearer abc' }, { note: `sent Bearer ${REDACTED}` }],
    [
      'long strings truncated with a marker',
      { s: long(MAX_STRING_CHARS + 123) },
      { s: `${long(MAX_STRING_CHARS)}…[truncated 123 chars]` },
    ],
    [
      'very long strings report every cut char',
      { s: long(MAX_STRING_CHARS * 10) },
      { s: `${long(MAX_STRING_CHARS)}…[truncated ${MAX_STRING_CHARS * 9} chars]` },
    ],
    [
      'a surrogate pair is never split by truncation',
      { s: `${long(MAX_STRING_CHARS - 1)}😀${long(10)}` },
      { s: `${long(MAX_STRING_CHARS - 1)}…[truncated 12 chars]` },
    ],
    [
      'long arrays cut with a marker',
      { a: Array.from({ length: MAX_ARRAY_ITEMS + 5 }, (_, i) => i) },
      { a: [...Array.from({ length: MAX_ARRAY_ITEMS }, (_, i) => i), '…[truncated 5 items]'] },
    ],
    ['cycles', cyclic, { name: 'loop', self: '[circular]' }],
    ['a shared (acyclic) reference is kept twice', { a: shared, b: shared }, { a: { v: 1 }, b: { v: 1 } }],
    ['BigInt', { n: 12345678901234567890n }, { n: '12345678901234567890' }],
    ['Buffer: size only', { b: Buffer.from('secret bytes') }, { b: '[binary 12 bytes]' }],
    ['Uint8Array: size only', { b: new Uint8Array(1000) }, { b: '[binary 1000 bytes]' }],
    ['ArrayBuffer: size only', { b: new ArrayBuffer(8) }, { b: '[binary 8 bytes]' }],
    ['Date', { at: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)) }, { at: '2024-01-02T03:04:05.000Z' }],
    ['invalid Date', { at: new Date(Number.NaN) }, { at: null }],
    [
      'Error: name, message (redacted), code',
      { err: Object.assign(new TypeError('token Bearer abc rejected'), { code: 'E_AUTH', stack: 'at x' }) },
      { err: { name: 'TypeError', message: `token Bearer ${REDACTED} rejected`, code: 'E_AUTH' } },
    ],
    [
      'Map and Set',
      {
        m: new Map<unknown, unknown>([
          ['a', 1],
          ['secret', 's'],
        ]),
        s: new Set([1, 2]),
      },
      { m: { a: 1, secret: REDACTED }, s: [1, 2] },
    ],
    [
      'NaN and Infinity become null',
      { a: Number.NaN, b: [Number.POSITIVE_INFINITY] },
      { a: null, b: [null] },
    ],
    ['functions and symbols dropped', { f: () => 1, s: Symbol('x'), a: [() => 1] }, { a: [null] }],
    [
      'NUL and lone surrogates in strings and keys',
      { 'k\u0000': 'v\u0000\udc00' },
      { 'k\ufffd': 'v\ufffd\ufffd' },
    ],
    [
      'toJSON of class instances',
      { u: new URL('https://user:pw@x.test/a?token=t') },
      { u: `https://user:${REDACTED}@x.test/a?token=${REDACTED}` },
    ],
  ])('%s', (_name, input, expected) => {
    expect(sanitize(input)).toEqual(expected);
  });

  it('keeps an own __proto__ key as data', () => {
    const out = sanitize(withProto) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(['__proto__', 'ok']);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(JSON.parse(sanitizeToJson(withProto) as string)).toEqual(withProto);
  });

  it('limits depth', () => {
    const root: Record<string, unknown> = {};
    let node = root;
    for (let i = 0; i < MAX_DEPTH + 5; i++) {
      const child: Record<string, unknown> = {};
      node.n = child;
      node = child;
    }
    let out = sanitize(root) as Record<string, unknown>;
    for (let i = 0; i < MAX_DEPTH - 1; i++) out = out.n as Record<string, unknown>;
    expect(out.n).toBe('[max depth]');
  });

  it('cuts objects with too many keys', () => {
    const big = Object.fromEntries(Array.from({ length: MAX_OBJECT_KEYS + 7 }, (_, i) => [`k${i}`, i]));
    const out = sanitize(big) as Record<string, unknown>;
    expect(Object.keys(out)).toHaveLength(MAX_OBJECT_KEYS + 1);
    expect(out['…']).toBe('[truncated 7 keys]');
  });

  it('sanitizes tighter before summarizing, so that the structure of a large payload survives', () => {
    const data = {
      arguments: { html: long(100_000) },
      result: {
        structuredContent: {
          links: Array.from({ length: 800 }, (_, i) => ({ href: long(200, `${i % 10}`) })),
        },
      },
    };
    const json = sanitizeToJson(data) as string;
    const out = JSON.parse(json);
    expect(out.truncated).toBeUndefined();
    expect(out.arguments.html).toBe(
      `${long(TIGHT_STRING_CHARS)}…[truncated ${100_000 - TIGHT_STRING_CHARS} chars]`,
    );
    expect(out.result.structuredContent.links).toHaveLength(TIGHT_ARRAY_ITEMS + 1);
    expect(out.result.structuredContent.links[TIGHT_ARRAY_ITEMS]).toBe(
      `…[truncated ${800 - TIGHT_ARRAY_ITEMS} items]`,
    );
    expect(out.result.structuredContent.links[3]).toEqual({ href: long(200, '3') });
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    expect(JSON.parse(json)).toEqual(sanitize(data));
  });

  it('replaces a payload still over the cap after the tighter pass by a summary without secrets', () => {
    const data = {
      password: 'hunter2',
      ...Object.fromEntries(
        Array.from({ length: TIGHT_OBJECT_KEYS }, (_, i) => [
          `part${i}`,
          `${i} Bearer abcdef ${long(1000, 'é')}`,
        ]),
      ),
    };
    const json = sanitizeToJson(data) as string;
    const out = JSON.parse(json);
    expect(out.truncated).toBe(true);
    expect(out.bytes).toBeGreaterThan(MAX_PAYLOAD_BYTES);
    expect(out.preview.length).toBeLessThanOrEqual(PREVIEW_CHARS);
    expect(json).not.toContain('hunter2');
    expect(json).not.toContain('abcdef');
    expect(Buffer.byteLength(json)).toBeLessThan(MAX_PAYLOAD_BYTES);
  });

  it('serializes exactly what sanitize returns, within the cap', () => {
    const inputs = [
      { a: 1 },
      { s: long(MAX_STRING_CHARS * 3), token: 't' },
      { list: Array.from({ length: 500 }, () => ({ x: long(100) })) },
    ];
    for (const input of inputs) {
      const json = sanitizeToJson(input) as string;
      expect(JSON.parse(json)).toEqual(sanitize(input));
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    }
  });

  it('never modifies its input', () => {
    const input = {
      token: 't',
      nested: { s: long(MAX_STRING_CHARS + 1), list: Array(MAX_ARRAY_ITEMS + 1).fill(0) },
    };
    const copy = structuredClone(input);
    sanitize(input);
    expect(input).toEqual(copy);
  });

  it('never throws: a throwing getter becomes a marker', () => {
    const input = {
      get boom(): never {
        throw new Error('getter failed with Bearer xyz');
      },
    };
    expect(sanitize(input)).toEqual({ unserializable: true, error: `getter failed with Bearer ${REDACTED}` });
  });
});
