import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Every Prometheus metric of a hub instance, on its own registry (tests build several hubs per process). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    httpDuration: new Histogram({
      name: 'switchboard_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    upstreamCalls: new Counter({
      name: 'switchboard_upstream_calls_total',
      help: 'Upstream MCP calls by server, tool and outcome',
      labelNames: ['server', 'tool', 'outcome'] as const,
      registers,
    }),
    upstreamCache: new Counter({
      name: 'switchboard_upstream_cache_total',
      help: 'Calls of read-only tools on servers with cache_ttl_ms, answered from the cache (hit) or not (miss)',
      labelNames: ['server', 'tool', 'result'] as const,
      registers,
    }),
    upstreamDuration: new Histogram({
      name: 'switchboard_upstream_call_duration_seconds',
      help: 'Upstream MCP call latency by server',
      labelNames: ['server'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    poolConnections: new Gauge({
      name: 'switchboard_pool_connections',
      help: 'Live upstream connections (processes or HTTP sessions) by server',
      labelNames: ['server'] as const,
      registers,
    }),
    poolInFlight: new Gauge({
      name: 'switchboard_pool_in_flight',
      help: 'Upstream calls executing by server',
      labelNames: ['server'] as const,
      registers,
    }),
    poolQueued: new Gauge({
      name: 'switchboard_pool_queued',
      help: 'Upstream calls waiting for a concurrency slot by server',
      labelNames: ['server'] as const,
      registers,
    }),
    poolReconnects: new Counter({
      name: 'switchboard_pool_reconnects_total',
      help: 'Upstream reconnect attempts by server',
      labelNames: ['server'] as const,
      registers,
    }),
    recorderQueue: new Gauge({
      name: 'switchboard_recorder_queue_length',
      help: 'Events waiting to be written',
      registers,
    }),
    recorderWritten: new Counter({
      name: 'switchboard_recorder_events_written_total',
      help: 'Events written to the database',
      registers,
    }),
    recorderDropped: new Counter({
      name: 'switchboard_recorder_events_dropped_total',
      help: 'Events dropped because the buffer was full or the database kept failing',
      registers,
    }),
    recorderFlushDuration: new Histogram({
      name: 'switchboard_recorder_flush_duration_seconds',
      help: 'Time to write one batch of events',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
