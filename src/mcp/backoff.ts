/**
 * Reconnect delays: exponential growth with jitter, so that a server that keeps failing to start is not
 * hammered and several hubs (or several instances of one server) do not retry in lockstep.
 */
export interface BackoffOptions {
  /** Delay before the first retry, before jitter. */
  baseMs: number;
  /** Upper bound of any delay, before jitter. */
  maxMs: number;
  /** Growth per consecutive failure. */
  factor: number;
  /** Share of the delay that is random: 0 = none, 1 = anywhere in [0, delay]. */
  jitter: number;
}

export const defaultBackoff: Readonly<BackoffOptions> = Object.freeze({
  baseMs: 100,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.5,
});

/**
 * Delay before the next attempt after `failures` consecutive failures (0 → no delay). "Equal jitter": the
 * delay is in [(1 - jitter) × d, d] with d = min(max, base × factor^(failures - 1)), never zero after a failure.
 */
export function backoffDelay(
  failures: number,
  options: BackoffOptions = defaultBackoff,
  random: () => number = Math.random,
): number {
  if (failures <= 0) return 0;
  const exp = Math.min(options.maxMs, options.baseMs * options.factor ** Math.min(failures - 1, 64));
  const jitter = Math.min(1, Math.max(0, options.jitter));
  return Math.round(exp * (1 - jitter) + exp * jitter * random());
}
