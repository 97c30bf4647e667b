/**
 * Makes event data safe to store in mcp_events.event_data: secrets redacted, sizes capped, and every value
 * turned into JSON that PostgreSQL's jsonb accepts. Pure: the input is never modified, and it never throws.
 *
 * Rules (documented in the README; the limits are the exported constants below):
 * - Values under secret-looking keys are replaced by "[redacted]", at any depth, in objects and arrays.
 *   A key is split into lower-case words (camelCase, snake_case, kebab-case alike) and is secret when it
 *   contains token, password, passwd, secret, authorization, api_key/apikey, cookie (so set-cookie),
 *   private_key, access_key, session, credential or passphrase, or is one of the words pass, pwd, auth,
 *   jwt. A number under a token-count key (max_tokens, total_tokens, token_count…) is kept.
 * - Inside strings: `Bearer <token>`, URL credentials (`//user:pass@`), `secret=value` assignments and
 *   embedded JSON `"secret": "value"` pairs are redacted.
 * - Strings longer than MAX_STRING_CHARS are cut with a `…[truncated N chars]` marker; arrays longer than
 *   MAX_ARRAY_ITEMS and objects with more than MAX_OBJECT_KEYS keys are cut with a marker; values nested
 *   deeper than MAX_DEPTH become "[max depth]"; cycles become "[circular]".
 * - BigInt becomes a decimal string, Dates ISO strings, Errors `{ name, message, code? }`, binary data
 *   (Buffer, typed arrays, ArrayBuffer) `"[binary N bytes]"`, Maps objects, Sets arrays; functions and
 *   symbols are dropped as JSON.stringify drops them.
 * - NUL characters and lone surrogates are replaced by U+FFFD: jsonb rejects `\u0000` and unpaired
 *   surrogate escapes, and one such value would fail a whole COPY batch.
 * - If the serialized result is over MAX_PAYLOAD_BYTES (UTF-8), the data is sanitized again with the tighter
 *   TIGHT_* limits, which keep its structure (the outcome next to a huge argument, say); if that is still
 *   over, it is replaced by `{ truncated: true, bytes, preview }`, bytes being the size of the first pass's
 *   JSON and preview its first PREVIEW_CHARS.
 */

/** Strings longer than this (UTF-16 code units) are truncated. */
export const MAX_STRING_CHARS = 4096;
/** Arrays keep this many items, then a marker string. */
export const MAX_ARRAY_ITEMS = 100;
/** Objects keep this many keys, then a `"…"` key saying how many were left out. */
export const MAX_OBJECT_KEYS = 200;
/** Objects and arrays nested deeper than this (the top level is depth 0) are replaced by "[max depth]". */
export const MAX_DEPTH = 10;
/** The limits of the second pass, for data whose first pass is over MAX_PAYLOAD_BYTES. */
export const TIGHT_STRING_CHARS = 256;
export const TIGHT_ARRAY_ITEMS = 20;
export const TIGHT_OBJECT_KEYS = 50;
/** Cap on the serialized payload (UTF-8 bytes); over it the data is sanitized tighter, then summarized. */
export const MAX_PAYLOAD_BYTES = 16 * 1024;
/** Length of the serialized-JSON preview kept in that summary. */
export const PREVIEW_CHARS = 1024;
export const REDACTED = '[redacted]';

/** The shape stored in place of a payload that is still too large after sanitizing. */
export interface TruncatedPayload {
  truncated: true;
  /** Size in UTF-8 bytes of the sanitized JSON that was replaced. */
  bytes: number;
  preview: string;
}

// Key words, matched against the key split into lower-case words joined by "_" (so accessToken,
// ACCESS_TOKEN, access-token and x-access-token all read "…access_token…"). Substrings: a key containing
// one of them is secret.
const secretSubstrings = [
  'token',
  'password',
  'passwd',
  'secret',
  'authorization',
  'api_key',
  'apikey',
  'cookie',
  'private_key',
  'privatekey',
  'access_key',
  'accesskey',
  'session',
  'credential',
  'passphrase',
];
// Whole words only: "pass" must not catch "passage" or "bypass", "auth" must not catch "author".
const secretWords = new Set(['pass', 'pwd', 'auth', 'jwt']);
// A token count is not a secret: a number under a key with one of these words next to token(s) is kept.
const countWords = new Set([
  'max',
  'min',
  'total',
  'input',
  'output',
  'prompt',
  'completion',
  'cached',
  'reasoning',
  'num',
  'count',
  'used',
  'remaining',
  'limit',
]);

const KEY_PLAIN = 0;
const KEY_SECRET = 1;
/** Secret unless the value is a number (a token count). */
const KEY_COUNT = 2;
/** Not secret, but the key itself holds NUL or lone surrogates and must be cleaned. */
const KEY_UNCLEAN = 3;
type KeyClass = 0 | 1 | 2 | 3;

const keyWordSplit = /[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/;
// What jsonb cannot hold: NUL, and surrogates that are not part of a pair (emoji pairs are fine).
const badCharsSource =
  '\\u0000|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]';
const badChars = new RegExp(badCharsSource);
const badCharsAll = new RegExp(badCharsSource, 'g');

function classifyKeyUncached(key: string): KeyClass {
  const words = key
    .split(keyWordSplit)
    .filter((w) => w.length > 0)
    .map((w) => w.toLowerCase());
  const joined = words.join('_');
  const secret = secretSubstrings.some((s) => joined.includes(s)) || words.some((w) => secretWords.has(w));
  if (secret) {
    const counts =
      words.some((w) => w === 'token' || w === 'tokens') &&
      words.some((w) => countWords.has(w)) &&
      !secretSubstrings.some((s) => s !== 'token' && joined.includes(s));
    return counts ? KEY_COUNT : KEY_SECRET;
  }
  return badChars.test(key) ? KEY_UNCLEAN : KEY_PLAIN;
}

// Events repeat the same few keys, so the classification is cached. Bounded: keys can be data (ids).
const keyCache = new Map<string, KeyClass>();
const KEY_CACHE_SIZE = 4096;

function classifyKey(key: string): KeyClass {
  let c = keyCache.get(key);
  if (c === undefined) {
    c = classifyKeyUncached(key);
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.clear();
    keyCache.set(key, c);
  }
  return c;
}

/** Whether a value stored under this key is redacted (a number under a token-count key is kept). */
export function isSecretKey(key: string, value?: unknown): boolean {
  const c = classifyKey(key);
  return c === KEY_SECRET || (c === KEY_COUNT && typeof value !== 'number');
}

// The secret key words as they may appear inside free text (any separator or none).
const textKeyword =
  'token|passw(?:or)?d|secret|authorization|api[-_]?key|cookie|private[-_]?key|access[-_]?key|session|credential|passphrase';
// Cheap pre-check run on every string: only a string that matches it goes through the rewrites below.
const suspiciousText = new RegExp(`${badCharsSource}|bearer|@|${textKeyword}`, 'i');
const bearerText = /\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*/gi;
const urlCredentialsText = /(\/\/[^\s/:@]*):[^\s/@]*@/g;
// `"client_secret": "…"` inside a string holding JSON (tool results often embed JSON in text content).
// The closing quote may be missing: the string may have been cut in the middle of the value.
const embeddedJsonText = new RegExp(
  `("[^"\\\\\\n]{0,64}?(?:${textKeyword})[^"\\\\\\n]{0,64}"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*(?:"|$)`,
  'gi',
);
// `access_token=…` in query strings, form bodies and command lines.
const assignmentText = new RegExp(`((?:${textKeyword})[\\w-]{0,64}=)(?!\\[redacted\\])[^&\\s"',;]+`, 'gi');

const cleanChars = (s: string): string => s.replace(badCharsAll, '\ufffd');

/** Redacts secrets inside free text and makes it storable in jsonb; does not truncate. */
export function redactText(s: string): string {
  if (!suspiciousText.test(s)) return s;
  let out = badChars.test(s) ? cleanChars(s) : s;
  out = out.replace(bearerText, `$1 ${REDACTED}`);
  out = out.replace(urlCredentialsText, `$1:${REDACTED}@`);
  out = out.replace(embeddedJsonText, `$1"${REDACTED}"`);
  return out.replace(assignmentText, `$1${REDACTED}`);
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

interface Limits {
  strings: number;
  items: number;
  keys: number;
}
const LIMITS: Limits = { strings: MAX_STRING_CHARS, items: MAX_ARRAY_ITEMS, keys: MAX_OBJECT_KEYS };
const TIGHT_LIMITS: Limits = {
  strings: TIGHT_STRING_CHARS,
  items: TIGHT_ARRAY_ITEMS,
  keys: TIGHT_OBJECT_KEYS,
};

/** Redacts, then cuts to `max` chars (never inside a surrogate pair) with a marker saying how much. */
function sanitizeString(s: string, max = MAX_STRING_CHARS): string {
  // Redact before cutting, so that a cut cannot hide the start of a secret from the patterns. A string
  // far beyond the limit is first cut with slack, so the regexes never scan megabytes.
  const head = s.length > max * 2 ? s.slice(0, max * 2) : s;
  const unseen = s.length - head.length;
  const redacted = redactText(head);
  if (unseen === 0 && redacted.length <= max) return redacted;
  let end = Math.min(max, redacted.length);
  if (isHighSurrogate(redacted.charCodeAt(end - 1))) end--;
  return `${redacted.slice(0, end)}…[truncated ${redacted.length - end + unseen} chars]`;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// Upper bound on the nodes the fast-path check visits before it gives up and lets the full walk decide.
const FAST_PATH_NODES = 512;

/**
 * Fast path: true when value is already safe as is — plain JSON data, no secret-looking keys, no
 * suspicious or long strings, within every limit — so that JSON.stringify(value) can be stored directly.
 */
function isClean(value: unknown, depth: number, budget: { nodes: number }): boolean {
  if (--budget.nodes < 0) return false;
  switch (typeof value) {
    case 'string':
      return value.length <= MAX_STRING_CHARS && !suspiciousText.test(value);
    case 'number':
      return Number.isFinite(value);
    case 'boolean':
    case 'undefined':
      return true;
    case 'object': {
      if (value === null) return true;
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(value)) {
        if (value.length > MAX_ARRAY_ITEMS) return false;
        for (let i = 0; i < value.length; i++) if (!isClean(value[i], depth + 1, budget)) return false;
        return true;
      }
      if (!isPlainObject(value)) return false;
      let keys = 0;
      for (const key in value) {
        if (++keys > MAX_OBJECT_KEYS) return false;
        if (classifyKey(key) !== KEY_PLAIN) return false;
        if (!isClean((value as Record<string, unknown>)[key], depth + 1, budget)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

function binarySize(v: object): number | undefined {
  if (ArrayBuffer.isView(v)) return v.byteLength;
  if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) return v.byteLength;
  return undefined;
}

/** What one full walk carries: its limits, and the objects on the current path (to find cycles). */
interface Walk {
  limits: Limits;
  ancestors: object[];
}

/** The full walk: builds a sanitized copy. */
function walk(value: unknown, depth: number, w: Walk): unknown {
  switch (typeof value) {
    case 'string':
      return sanitizeString(value, w.limits.strings);
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  const obj = value as object;
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? null : obj.toISOString();
  const bytes = binarySize(obj);
  if (bytes !== undefined) return `[binary ${bytes} bytes]`;
  if (w.ancestors.includes(obj)) return '[circular]';
  if (depth >= MAX_DEPTH) return '[max depth]';
  w.ancestors.push(obj);
  try {
    if (obj instanceof Error) {
      const out: Record<string, unknown> = { name: sanitizeString(String(obj.name), w.limits.strings) };
      out.message = sanitizeString(String(obj.message), w.limits.strings);
      const code = (obj as { code?: unknown }).code;
      if (typeof code === 'string' || typeof code === 'number') out.code = walk(code, depth + 1, w);
      return out;
    }
    if (Array.isArray(obj) || obj instanceof Set) {
      const items = Array.isArray(obj) ? obj : [...obj];
      const n = Math.min(items.length, w.limits.items);
      const out: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = walk(items[i], depth + 1, w);
        out[i] = v === undefined ? null : v;
      }
      if (items.length > n) out.push(`…[truncated ${items.length - n} items]`);
      return out;
    }
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function' && !isPlainObject(obj)) {
      return walk(toJSON.call(obj), depth + 1, w);
    }
    return walkEntries(obj, depth, w);
  } finally {
    w.ancestors.pop();
  }
}

/** A plain object or Map as a sanitized plain object: keys cleaned, secrets redacted, at most the limit's. */
function walkEntries(obj: object, depth: number, w: Walk): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let kept = 0;
  let skipped = 0;
  const add = (rawKey: unknown, v: unknown) => {
    if (kept >= w.limits.keys) {
      skipped++;
      return;
    }
    const keyText = String(rawKey);
    const c = classifyKey(keyText);
    const key = c === KEY_UNCLEAN ? cleanChars(keyText) : keyText;
    const safe =
      c === KEY_SECRET || (c === KEY_COUNT && typeof v !== 'number') ? REDACTED : walk(v, depth + 1, w);
    if (v === undefined || safe === undefined) return;
    // An own "__proto__" key (JSON.parse makes those) must stay a key, so it is defined as data. Every other
    // key is assigned: defining each property would turn the copy into a slow dictionary object.
    if (key === '__proto__')
      Object.defineProperty(out, key, { value: safe, enumerable: true, writable: true, configurable: true });
    else out[key] = safe;
    kept++;
  };
  if (obj instanceof Map) for (const [k, v] of obj) add(k, v);
  else for (const key in obj) if (Object.hasOwn(obj, key)) add(key, (obj as Record<string, unknown>)[key]);
  if (skipped > 0) out['…'] = `[truncated ${skipped} keys]`;
  return out;
}

function utf8Bytes(json: string): number {
  // A UTF-16 code unit takes 1 to 3 UTF-8 bytes, so the exact count is needed only near the cap.
  return json.length * 3 <= MAX_PAYLOAD_BYTES ? json.length : Buffer.byteLength(json);
}

function summary(json: string, bytes: number): TruncatedPayload {
  const end = isHighSurrogate(json.charCodeAt(PREVIEW_CHARS - 1)) ? PREVIEW_CHARS - 1 : PREVIEW_CHARS;
  return { truncated: true, bytes, preview: json.slice(0, end) };
}

function sanitizeBoth(data: unknown): { value: unknown; json: string } | null {
  if (data === undefined || data === null) return null;
  try {
    if (isClean(data, 0, { nodes: FAST_PATH_NODES })) {
      const json = JSON.stringify(data);
      if (json === undefined) return null;
      const bytes = utf8Bytes(json);
      if (bytes <= MAX_PAYLOAD_BYTES) return { value: data, json };
    }
    const value = walk(data, 0, { limits: LIMITS, ancestors: [] });
    if (value === undefined) return null;
    const json = JSON.stringify(value);
    const bytes = utf8Bytes(json);
    if (bytes <= MAX_PAYLOAD_BYTES) return { value, json };
    const tight = walk(data, 0, { limits: TIGHT_LIMITS, ancestors: [] });
    const tightJson = JSON.stringify(tight);
    if (utf8Bytes(tightJson) <= MAX_PAYLOAD_BYTES) return { value: tight, json: tightJson };
    const small = summary(json, bytes);
    return { value: small, json: JSON.stringify(small) };
  } catch (err) {
    // A getter or toJSON that throws, a Proxy that lies: store that it happened, never the value.
    const value = { unserializable: true, error: sanitizeString(String((err as Error)?.message ?? err)) };
    return { value, json: JSON.stringify(value) };
  }
}

/**
 * The sanitized value (plain JSON data), or null for null/undefined input. May return the input itself
 * when it is already safe: treat the result as read-only.
 */
export function sanitize(data: unknown): unknown {
  return sanitizeBoth(data)?.value ?? null;
}

/** The sanitized value serialized as JSON (what the recorder stores), or null for null/undefined input. */
export function sanitizeToJson(data: unknown): string | null {
  return sanitizeBoth(data)?.json ?? null;
}
