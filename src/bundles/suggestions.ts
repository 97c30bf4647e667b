import { createHash } from 'node:crypto';
import type { Db } from '../db/db.js';
import { notFound } from '../errors.js';
import type {
  AcceptSuggestionInput,
  AcceptSuggestionQuery,
  BundleConfig,
  SuggestionsQuery,
  Workflow,
  WorkflowStep,
} from './payloads.js';
import type { BundleService, BundleView } from './service.js';
import {
  type ArgumentRow,
  commonArguments,
  type ExampleEvents,
  exampleFlows,
  type FlowRow,
  minePatterns,
  type PatternRow,
  serverNames,
} from './suggestion-queries.js';
import { parseReference } from './templating.js';

/**
 * How the workflow template of a suggestion is drawn from its example sessions (at most `examples` of the
 * most recent ones are read). A flow becomes a reference when the value reappeared in at least `flowShare` of
 * them and was not the same value every time (a constant matches by coincidence as easily as by flowing); an
 * argument without a flow keeps its most common value when it was given in at least `argumentShare` of them.
 */
export const SUGGESTION_TEMPLATE = Object.freeze({ examples: 10, flowShare: 0.5, argumentShare: 0.5 });

/** A value of an earlier step's result that reappeared as an argument of a later one. */
export interface SuggestionFlow {
  fromStep: number;
  toStep: number;
  /** Path in the earlier step's structured result, dot-separated. */
  path: string;
  /** The argument it flowed into, dot-separated when nested (`options.url`); argumentPath has its keys. */
  argument: string;
  argumentPath: string[];
  /** Example sessions where the value flowed, and their share of the examples read. */
  sessions: number;
  share: number;
  reference: string;
  /** Whether the workflow template uses it (one flow per argument: the most frequent). */
  used: boolean;
}

export interface BundleSuggestion {
  /** Stable for the same sequence of servers and tools: a hash of it. */
  id: string;
  serverIds: number[];
  /** Names of serverIds. */
  servers: string[];
  /** The tool of each step. */
  tools: string[];
  workflow: Workflow;
  bundleConfig: BundleConfig;
  evidence: {
    support: number;
    confidence: number;
    lift: number;
    /** Sessions mined in all (lift's denominator). */
    sessionsMined: number;
    /** Example sessions, most recent first: `<stream or client id>@<session start>`. */
    sessions: string[];
    flows: SuggestionFlow[];
  };
  score: number;
}

export function suggestionId(stepServers: readonly number[], tools: readonly string[]): string {
  const hash = createHash('sha256')
    .update(JSON.stringify([stepServers, tools]))
    .digest('hex');
  return `sugg-${hash.slice(0, 16)}`;
}

function flowReference(fromStep: number, path: readonly string[]): string | undefined {
  const reference = `{{steps.${fromStep}.result${path.map((k) => `.${k}`).join('')}}}`;
  // A key that the reference syntax cannot spell (a dot, a brace, a space…) would point elsewhere: no flow.
  try {
    const parsed = parseReference(reference.slice(2, -2));
    const same =
      parsed?.kind === 'step' &&
      parsed.step === fromStep &&
      parsed.path.length === path.length &&
      parsed.path.every((k, i) => k === path[i]);
    return same ? reference : undefined;
  } catch {
    return undefined;
  }
}

/** The flows of one pattern that pass the thresholds, the one each argument uses marked. */
function patternFlows(rows: readonly FlowRow[], examples: number): SuggestionFlow[] {
  const flows: SuggestionFlow[] = [];
  for (const r of rows) {
    const share = r.sessions / examples;
    if (share < SUGGESTION_TEMPLATE.flowShare || (r.distinct_values < 2 && examples > 1)) continue;
    const reference = flowReference(r.from_step, r.path);
    if (!reference) continue;
    flows.push({
      fromStep: r.from_step,
      toStep: r.to_step,
      path: r.path.join('.'),
      argument: r.arg.join('.'),
      argumentPath: r.arg,
      sessions: r.sessions,
      share: Math.round(share * 10_000) / 10_000,
      reference,
      used: false,
    });
  }
  // Per argument: the most frequent flow first, then one from a key of the argument's name (a page's title
  // and its h1 are often the same text), then the nearest earlier step, then the shortest path.
  const named = (f: SuggestionFlow) => (f.path.split('.').at(-1) === f.argumentPath.at(-1) ? 0 : 1);
  flows.sort(
    (a, b) =>
      a.toStep - b.toStep ||
      a.argument.localeCompare(b.argument) ||
      b.sessions - a.sessions ||
      named(a) - named(b) ||
      b.fromStep - a.fromStep ||
      a.path.split('.').length - b.path.split('.').length ||
      a.path.localeCompare(b.path),
  );
  const taken = new Set<string>();
  for (const f of flows) {
    const key = `${f.toStep}\u0000${JSON.stringify(f.argumentPath)}`;
    if (taken.has(key)) continue;
    taken.add(key);
    f.used = true;
  }
  return flows;
}

/** Sets `value` at `path`, copying the objects on the way (common argument values are shared) or making them. */
function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  // Defined as data: a recorded "__proto__" key must stay a key, not set a prototype.
  const put = (node: Record<string, unknown>, key: string, v: unknown) =>
    Object.defineProperty(node, key, { value: v, enumerable: true, writable: true, configurable: true });
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    const copy: Record<string, unknown> =
      next !== null && typeof next === 'object' && !Array.isArray(next)
        ? { ...(next as Record<string, unknown>) }
        : {};
    put(node, key, copy);
    node = copy;
  }
  put(node, path.at(-1)!, value);
}

function template(
  p: PatternRow,
  flows: readonly SuggestionFlow[],
  args: readonly ArgumentRow[],
  examples: number,
): Workflow {
  const steps = p.tools.map((tool, i): WorkflowStep => {
    const stepArgs: Record<string, unknown> = {};
    for (const a of args.filter((r) => r.step === i)) {
      if (a.present / examples >= SUGGESTION_TEMPLATE.argumentShare) stepArgs[a.arg] = a.value;
    }
    for (const f of flows) if (f.used && f.toStep === i) setPath(stepArgs, f.argumentPath, f.reference);
    const sorted = Object.fromEntries(Object.entries(stepArgs).sort(([a], [b]) => a.localeCompare(b)));
    return { server: p.server_ids.indexOf(p.step_servers[i]!), tool, args: sorted };
  });
  return { steps };
}

export interface SuggestionDeps {
  db: Db;
  bundles: Pick<BundleService, 'create' | 'assertNotAccepted'>;
}

/**
 * Bundles suggested from usage: suggest_bundle_from_patterns() mines the event log in the database; the
 * example sessions of the patterns kept are then read (a bounded query) to find where values flowed from
 * one step's result into a later step's arguments, which makes the workflow template.
 */
export class BundleSuggestions {
  readonly #d: SuggestionDeps;

  constructor(deps: SuggestionDeps) {
    this.#d = deps;
  }

  async list(q: SuggestionsQuery): Promise<BundleSuggestion[]> {
    return this.#build(await this.#mine(q, q.limit));
  }

  /**
   * Creates the bundle of a suggestion, recomputed with the same thresholds: an id that is no longer
   * suggested (not enough evidence any more, a server deleted, or a bundle of those servers made since) is
   * not found.
   */
  async accept(
    id: string,
    input: AcceptSuggestionInput,
    q: AcceptSuggestionQuery,
  ): Promise<{ suggestion: BundleSuggestion; bundle: BundleView }> {
    await this.#d.bundles.assertNotAccepted(id);
    const pattern = (await this.#mine(q)).find((p) => suggestionId(p.step_servers, p.tools) === id);
    if (!pattern) {
      throw notFound(`Suggestion ${id}`, {
        suggestionId: id,
        hint: 'GET /api/mcp/bundle/suggestions lists the current ones (with the same minSupport and since)',
      });
    }
    const [suggestion] = await this.#build([pattern]);
    const s = suggestion!;
    const bundle = await this.#d.bundles.create(
      {
        bundleName: input?.bundleName ?? `${s.servers.join(' + ')}: ${s.tools.join(' → ')}`.slice(0, 255),
        serverIds: s.serverIds,
        bundleConfig: s.bundleConfig,
        description:
          input?.description ??
          `Suggested from usage (${s.id}): ${s.evidence.support} sessions, confidence ${s.evidence.confidence}, lift ${s.evidence.lift}`,
        workflow: s.workflow,
      },
      s.id,
    );
    return { suggestion: s, bundle };
  }

  #mine(q: AcceptSuggestionQuery, limit?: number): Promise<PatternRow[]> {
    return minePatterns(this.#d.db, {
      minSupport: q.minSupport,
      since: q.since ?? null,
      maxExamples: SUGGESTION_TEMPLATE.examples,
      ...(limit === undefined ? {} : { limit }),
    });
  }

  async #build(patterns: readonly PatternRow[]): Promise<BundleSuggestion[]> {
    const examples: ExampleEvents[] = patterns.flatMap((p, pattern) =>
      p.examples.map((x, example) => ({ pattern, example, events: x.events })),
    );
    const [flowRows, argRows, names] = await Promise.all([
      exampleFlows(this.#d.db, examples),
      commonArguments(this.#d.db, examples),
      serverNames(this.#d.db, [...new Set(patterns.flatMap((p) => p.server_ids))]),
    ]);
    return patterns.map((p, i) => {
      const n = p.examples.length;
      const flows = patternFlows(
        flowRows.filter((r) => r.pattern === i),
        n,
      );
      const workflow = template(
        p,
        flows,
        argRows.filter((r) => r.pattern === i),
        n,
      );
      const chained = flows.some((f) => f.used);
      return {
        id: suggestionId(p.step_servers, p.tools),
        serverIds: p.server_ids,
        servers: p.server_ids.map((id) => names.get(id) ?? `server ${id}`),
        tools: p.tools,
        workflow,
        bundleConfig: chained ? { auto_chain: true, parallel: false } : { parallel: false },
        evidence: {
          support: p.support,
          confidence: p.confidence,
          lift: p.lift,
          sessionsMined: p.sessions,
          sessions: p.examples.map((x) => x.session),
          flows,
        },
        score: p.score,
      };
    });
  }
}
