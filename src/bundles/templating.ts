/**
 * References in a workflow step's arguments (auto_chain):
 *
 *   {{steps.<index or id>.result.<path>}}   a value of an earlier step's result
 *   {{prev.result.<path>}}                  a value of the step just before
 *   {{context.<path>}}                      a value of the execution's context
 *
 * The path is optional (the whole result or context) and is made of dot-separated keys; array items are
 * numbers (`items.0.name`, or `items[0].name`). A string that is exactly one reference is replaced by the
 * value with its JSON type; a reference inside a longer string is interpolated (objects as JSON). Text in
 * braces that starts with none of steps/prev/context is left as it is.
 *
 * Pure: compiling finds the references (so the engine knows the dependencies before anything runs);
 * rendering takes a resolver for the values.
 */

export type Reference =
  | { kind: 'step'; step: number | string; path: string[]; raw: string }
  | { kind: 'prev'; path: string[]; raw: string }
  | { kind: 'context'; path: string[]; raw: string };

export type Template =
  | { kind: 'literal'; value: unknown }
  | { kind: 'ref'; ref: Reference }
  | { kind: 'text'; parts: (string | Reference)[] }
  | { kind: 'array'; items: Template[] }
  | { kind: 'object'; entries: [string, Template][] };

/** A reference that is malformed: the workflow is invalid. */
export class TemplateSyntaxError extends Error {}

/** A reference whose value is missing when the step is about to run. */
export class TemplateValueError extends Error {}

const braces = /\{\{\s*([^{}]*?)\s*\}\}/g;
const referenceRoot = /^(steps|prev|context)(\.|\[|$)/;

function parsePath(text: string, raw: string): string[] {
  if (text === '') return [];
  const normalized = text.replace(/\[(\d+)\]/g, '.$1');
  const segments = (normalized.startsWith('.') ? normalized.slice(1) : normalized).split('.');
  if (segments.some((s) => s === '')) throw new TemplateSyntaxError(`${raw}: empty segment in the path`);
  return segments;
}

/** Parses the text between the braces; undefined when it is not a reference (left as literal text). */
export function parseReference(inner: string): Reference | undefined {
  const text = inner.trim();
  if (!referenceRoot.test(text)) return undefined;
  const raw = `{{${text}}}`;
  if (text === 'context' || text.startsWith('context.') || text.startsWith('context[')) {
    return { kind: 'context', path: parsePath(text.slice('context'.length), raw), raw };
  }
  if (text.startsWith('prev')) {
    const m = /^prev\.result((?:[.[].*)?)$/.exec(text);
    if (!m) throw new TemplateSyntaxError(`${raw}: write {{prev.result}} or {{prev.result.<path>}}`);
    return { kind: 'prev', path: parsePath(m[1]!, raw), raw };
  }
  const m = /^steps\.([A-Za-z0-9_-]+)\.result((?:[.[].*)?)$/.exec(text);
  if (!m)
    throw new TemplateSyntaxError(
      `${raw}: write {{steps.<index or id>.result}} or {{steps.<i>.result.<path>}}`,
    );
  const key = m[1]!;
  const step = /^\d+$/.test(key) ? Number(key) : key;
  return { kind: 'step', step, path: parsePath(m[2]!, raw), raw };
}

export function compileTemplate(value: unknown): Template {
  if (typeof value === 'string') {
    const parts: (string | Reference)[] = [];
    let last = 0;
    let found = false;
    for (const m of value.matchAll(braces)) {
      const ref = parseReference(m[1]!);
      if (!ref) continue;
      found = true;
      if (m.index > last) parts.push(value.slice(last, m.index));
      parts.push(ref);
      last = m.index + m[0].length;
    }
    if (!found) return { kind: 'literal', value };
    if (last < value.length) parts.push(value.slice(last));
    if (parts.length === 1 && typeof parts[0] !== 'string') return { kind: 'ref', ref: parts[0]! };
    return { kind: 'text', parts };
  }
  if (Array.isArray(value)) {
    const items = value.map(compileTemplate);
    return items.every((t) => t.kind === 'literal') ? { kind: 'literal', value } : { kind: 'array', items };
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, v]): [string, Template] => [k, compileTemplate(v)]);
    return entries.every(([, t]) => t.kind === 'literal')
      ? { kind: 'literal', value }
      : { kind: 'object', entries };
  }
  return { kind: 'literal', value };
}

export function templateReferences(template: Template): Reference[] {
  switch (template.kind) {
    case 'literal':
      return [];
    case 'ref':
      return [template.ref];
    case 'text':
      return template.parts.filter((p): p is Reference => typeof p !== 'string');
    case 'array':
      return template.items.flatMap(templateReferences);
    case 'object':
      return template.entries.flatMap(([, t]) => templateReferences(t));
  }
}

/** Follows a path into a value; throws TemplateValueError naming the first key that is not there. */
export function getPath(root: unknown, path: readonly string[], what: string, raw: string): unknown {
  let current = root;
  for (let i = 0; i < path.length; i++) {
    const key = path[i]!;
    const here = path.slice(0, i).join('.') || '(top)';
    if (Array.isArray(current)) {
      const index = /^\d+$/.test(key) ? Number(key) : Number.NaN;
      if (!(index < current.length)) {
        throw new TemplateValueError(
          `${raw}: ${what} has no item "${key}" at ${here} (an array of ${current.length})`,
        );
      }
      current = current[index];
    } else if (current !== null && typeof current === 'object' && Object.hasOwn(current, key)) {
      current = (current as Record<string, unknown>)[key];
    } else {
      throw new TemplateValueError(`${raw}: ${what} has no "${key}" at ${here}`);
    }
  }
  if (current === undefined) throw new TemplateValueError(`${raw}: ${what} has no value`);
  return current;
}

/** The value a reference stands for; the resolver throws TemplateValueError when it has none. */
export type Resolver = (ref: Reference) => unknown;

export function renderTemplate(template: Template, resolve: Resolver): unknown {
  switch (template.kind) {
    case 'literal':
      return template.value;
    case 'ref':
      return resolve(template.ref);
    case 'text':
      return template.parts
        .map((p) => {
          if (typeof p === 'string') return p;
          const v = resolve(p);
          return typeof v === 'string' ? v : JSON.stringify(v);
        })
        .join('');
    case 'array':
      return template.items.map((t) => renderTemplate(t, resolve));
    case 'object':
      return Object.fromEntries(template.entries.map(([k, t]) => [k, renderTemplate(t, resolve)]));
  }
}
