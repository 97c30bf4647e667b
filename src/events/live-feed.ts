import { HubError } from '../errors.js';
import type { HubEvent, HubEventBus } from './hub-events.js';

/**
 * The live feed behind the `/mcp-events` namespace: events from the bus, batched every `intervalMs` and
 * sampled when they come faster than `maxPerBatch` per interval (a uniform reservoir sample, so a chart
 * of a busy hub still shows every kind of event in proportion). Each batch says how many events it stands
 * for (`seen`), so rates stay exact when the events are sampled.
 */
export const LIVE_FEED_DEFAULTS = Object.freeze({ intervalMs: 250, maxPerBatch: 100 });

/** What a UI receives of an event: the figures, never its data (arguments and results stay in the database). */
export interface LiveEvent {
  type: string;
  at: string;
  serverId: number | null;
  bundleId: string | null;
  streamId: string | null;
  toolName: string | null;
  outcome: string | null;
  ok: boolean | null;
  errorCode: string | null;
  durationMs: number | null;
  source: string | null;
}

export interface LiveBatch {
  events: LiveEvent[];
  /** Events that happened in the interval; more than events.length when sampled. */
  seen: number;
  sampled: boolean;
  /** Events seen per server in the interval (key: server id, or `none`), exact even when sampled. */
  perServer: Record<string, number>;
}

export function toLiveEvent(e: HubEvent): LiveEvent {
  return {
    type: e.type,
    at: (e.at ?? new Date()).toISOString(),
    serverId: e.serverId ?? null,
    bundleId: e.bundleId ?? null,
    streamId: e.streamId ?? null,
    toolName: e.toolName ?? null,
    outcome: e.outcome ?? null,
    ok: e.ok ?? null,
    errorCode: e.errorCode ?? null,
    durationMs: e.durationMs ?? null,
    source: e.source ?? null,
  };
}

export class LiveEventFeed {
  readonly #bus: HubEventBus;
  readonly #onBatch: (batch: LiveBatch) => void;
  readonly #intervalMs: number;
  readonly #max: number;
  readonly #random: () => number;
  readonly #watched: () => boolean;
  #state: 'new' | 'started' | 'closed' = 'new';
  /** The sampled events as they came; made into LiveEvents at flush, so only the ones sent are converted. */
  #reservoir: HubEvent[] = [];
  #seen = 0;
  #perServer: Record<string, number> = {};
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: {
    bus: HubEventBus;
    onBatch: (batch: LiveBatch) => void;
    intervalMs?: number;
    maxPerBatch?: number;
    random?: () => number;
    /** False while nobody would receive a batch: events are then not even counted. Default: always true. */
    watched?: () => boolean;
  }) {
    this.#bus = options.bus;
    this.#onBatch = options.onBatch;
    this.#intervalMs = options.intervalMs ?? LIVE_FEED_DEFAULTS.intervalMs;
    this.#max = options.maxPerBatch ?? LIVE_FEED_DEFAULTS.maxPerBatch;
    this.#random = options.random ?? Math.random;
    this.#watched = options.watched ?? (() => true);
  }

  start(): void {
    if (this.#state === 'closed') throw new HubError('SB_ERR_CLOSED', 'Live event feed');
    if (this.#state === 'started') return;
    this.#state = 'started';
    this.#unsubscribe = this.#bus.subscribe((e) => this.#take(e));
    this.#timer = setInterval(() => this.flush(), this.#intervalMs);
    this.#timer.unref();
  }

  #take(e: HubEvent): void {
    if (!this.#watched()) return;
    this.#seen++;
    const key = String(e.serverId ?? 'none');
    this.#perServer[key] = (this.#perServer[key] ?? 0) + 1;
    if (this.#reservoir.length < this.#max) {
      this.#reservoir.push(e);
      return;
    }
    // Algorithm R: the i-th event replaces a kept one with probability max / i.
    const j = Math.floor(this.#random() * this.#seen);
    if (j < this.#max) this.#reservoir[j] = e;
  }

  /** Sends what the interval gathered (in time order), if anything. */
  flush(): void {
    if (this.#seen === 0) return;
    const events = this.#reservoir.map(toLiveEvent).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    const batch = {
      events,
      seen: this.#seen,
      sampled: this.#seen > events.length,
      perServer: this.#perServer,
    };
    this.#reservoir = [];
    this.#seen = 0;
    this.#perServer = {};
    this.#onBatch(batch);
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearInterval(this.#timer);
    this.#unsubscribe?.();
  }
}
