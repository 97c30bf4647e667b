import { describe, expect, it } from 'vitest';
import {
  compileTemplate,
  getPath,
  parseReference,
  type Reference,
  renderTemplate,
  TemplateSyntaxError,
  TemplateValueError,
  templateReferences,
} from '../../src/bundles/templating.js';

const results: Record<number | string, unknown> = {
  0: { title: 'Hello', count: 3, tags: ['a', 'b'], nested: { ok: true, list: [{ x: 1 }] } },
  1: 'plain text',
};
const context = { campaign_id: 'campaign-123', wait: 5 };

function render(value: unknown): unknown {
  return renderTemplate(compileTemplate(value), (ref: Reference) => {
    if (ref.kind === 'context') return getPath(context, ref.path, 'the context', ref.raw);
    const key = ref.kind === 'prev' ? 0 : ref.step;
    return getPath(results[key], ref.path, `step ${String(key)}`, ref.raw);
  });
}

describe('parseReference', () => {
  it.each([
    ['steps.0.result.title', { kind: 'step', step: 0, path: ['title'] }],
    ['steps.seo.result', { kind: 'step', step: 'seo', path: [] }],
    ['steps.0.result.tags[1]', { kind: 'step', step: 0, path: ['tags', '1'] }],
    [' prev.result.nested.list.0.x ', { kind: 'prev', path: ['nested', 'list', '0', 'x'] }],
    ['prev.result', { kind: 'prev', path: [] }],
    ['context.campaign_id', { kind: 'context', path: ['campaign_id'] }],
    ['context', { kind: 'context', path: [] }],
  ])('%s', (text, expected) => {
    expect(parseReference(text)).toMatchObject(expected);
  });

  it.each([['name'], ['stepsize'], ['previous'], ['contextual.x']])(
    '%s is not a reference (left as text)',
    (text) => {
      expect(parseReference(text)).toBeUndefined();
    },
  );

  it.each([['prev'], ['prev.title'], ['steps.0.title'], ['steps.0'], ['steps.0.result..x'], ['context.']])(
    '%s is malformed',
    (text) => {
      expect(() => parseReference(text)).toThrow(TemplateSyntaxError);
    },
  );
});

describe('rendering', () => {
  it.each([
    ['an exact reference keeps its type (number)', '{{steps.0.result.count}}', 3],
    ['an exact reference keeps its type (object)', '{{prev.result.nested}}', { ok: true, list: [{ x: 1 }] }],
    ['an exact reference keeps its type (array)', '{{steps.0.result.tags}}', ['a', 'b']],
    ['a whole result', '{{steps.1.result}}', 'plain text'],
    [
      'interpolation in text',
      'Title: {{steps.0.result.title}} ({{context.campaign_id}})',
      'Title: Hello (campaign-123)',
    ],
    ['objects interpolated as JSON', 'tags={{steps.0.result.tags}}', 'tags=["a","b"]'],
    ['context numbers keep their type', '{{context.wait}}', 5],
    ['other braces are left alone', 'Hi {{name}}', 'Hi {{name}}'],
    ['no reference at all', 'plain', 'plain'],
  ])('%s', (_what, input, expected) => {
    expect(render(input)).toEqual(expected);
  });

  it('renders references at any depth, leaving literals as they are', () => {
    expect(
      render({ a: ['{{steps.0.result.nested.list.0.x}}', 2], b: { c: '{{context.campaign_id}}' }, d: null }),
    ).toEqual({ a: [1, 2], b: { c: 'campaign-123' }, d: null });
  });

  it('collects the references of a template', () => {
    const refs = templateReferences(compileTemplate({ a: '{{prev.result}}', b: ['x {{steps.s.result.y}}'] }));
    expect(refs.map((r) => r.raw)).toEqual(['{{prev.result}}', '{{steps.s.result.y}}']);
  });

  it.each([
    ['{{steps.0.result.missing}}', /no "missing" at \(top\)/],
    ['{{steps.0.result.nested.nope}}', /no "nope" at nested/],
    ['{{steps.0.result.tags.5}}', /no item "5" at tags \(an array of 2\)/],
    ['{{steps.1.result.length}}', /no "length"/],
    ['{{context.absent}}', /the context has no "absent"/],
  ])('a missing path %s names the key', (input, message) => {
    expect(() => render(input)).toThrow(TemplateValueError);
    expect(() => render(input)).toThrow(message);
  });
});
