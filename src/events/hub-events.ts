/**
 * Domain events: features emit them, the recorder (and later live views) subscribe. Emitting never
 * waits on the database and never throws into the caller.
 */
export type HubEventType =
  | 'tool_call'
  | 'api_call'
  | 'server_change'
  | 'stream_message'
  | 'bundle_step'
  | 'bundle_execution'
  | 'config_change';

/** How a call ended. A tool that answered with isError is a tool_error, not a success. */
export type CallOutcome =
  | 'success'
  | 'tool_error'
  | 'protocol_error'
  | 'transport_error'
  | 'timeout'
  | 'cancelled'
  | 'rejected';

export type EventSource = 'rest' | 'stream' | 'bundle' | 'gateway' | 'hub';

export interface HubEvent {
  type: HubEventType;
  /** When it happened; the recorder uses the time of emit when absent. */
  at?: Date;
  serverId?: number | null;
  bundleId?: string | null;
  streamId?: string | null;
  toolName?: string | null;
  outcome?: CallOutcome | null;
  ok?: boolean | null;
  errorCode?: string | null;
  source?: EventSource | null;
  clientId?: string | null;
  configVersion?: number | null;
  durationMs?: number | null;
  /** Tool calls: time spent waiting for a max_concurrency slot, part of durationMs. */
  queueMs?: number | null;
  /** Tool calls: calls of the server running once this one started, itself included. */
  concurrency?: number | null;
  requestBytes?: number | null;
  responseBytes?: number | null;
  /** Free-form detail; sanitized (secrets redacted, sizes capped) before storage. */
  data?: Record<string, unknown> | null;
}

export type HubEventListener = (event: HubEvent) => void;

export class HubEventBus {
  readonly #listeners = new Set<HubEventListener>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  subscribe(listener: HubEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: HubEvent): void {
    if (!event.at) event.at = new Date();
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }
}
