import { ProtocolError, SdkError, SdkErrorCode, SdkHttpError } from '@modelcontextprotocol/client';
import { type ErrorCode, HubError, isHubError } from '../errors.js';
import type { CallOutcome } from '../events/hub-events.js';

/** How a call that returned a result ended: a tool that answered `isError: true` failed, even though it answered. */
export function classifyResult(result: { isError?: boolean | undefined }): {
  outcome: 'success' | 'tool_error';
  ok: boolean;
} {
  return result.isError === true ? { outcome: 'tool_error', ok: false } : { outcome: 'success', ok: true };
}

export interface ClassifiedError {
  outcome: CallOutcome;
  /** What the caller gets: always a HubError from the catalogue. */
  error: HubError;
  /**
   * The connection itself failed (closed, unreachable, not connected): the request may not have reached the
   * server, and the connection should be replaced. Only such failures are candidates for a retry.
   */
  connectionLost: boolean;
}

export interface ClassifyContext {
  /** What was called, for messages: "server 3 tool echo". */
  what: string;
  /** The caller's signal fired: whatever the SDK threw, the call was cancelled. */
  cancelled?: boolean;
  /** The pool is closing: connection failures are reported as SB_ERR_CLOSED. */
  closing?: boolean;
}

const outcomeOfCode: Partial<Record<ErrorCode, CallOutcome>> = {
  SB_ERR_CANCELLED: 'cancelled',
  SB_ERR_UPSTREAM_TIMEOUT: 'timeout',
  SB_ERR_UPSTREAM_UNAVAILABLE: 'transport_error',
  SB_ERR_UPSTREAM_PROTOCOL: 'protocol_error',
};

/** SDK errors that mean the connection (process, session, socket) is gone or was never there. */
const connectionCodes = new Set<string>([
  SdkErrorCode.NotConnected,
  SdkErrorCode.ConnectionClosed,
  SdkErrorCode.SendFailed,
  SdkErrorCode.EraNegotiationFailed,
  SdkErrorCode.ClientHttpNotImplemented,
  SdkErrorCode.ClientHttpAuthentication,
  SdkErrorCode.ClientHttpForbidden,
  SdkErrorCode.ClientHttpUnexpectedContent,
  SdkErrorCode.ClientHttpFailedToOpenStream,
]);

/** Maps anything a call can throw to an outcome and a catalogue error. Never throws. */
export function classifyError(err: unknown, ctx: ClassifyContext): ClassifiedError {
  if (isHubError(err)) {
    const outcome = outcomeOfCode[err.code] ?? 'rejected';
    return { outcome, error: err, connectionLost: outcome === 'transport_error' };
  }
  // The SDK reports an aborted request as a RequestTimeout error carrying the abort reason: only the
  // caller's signal tells a cancellation from a timeout.
  if (ctx.cancelled) {
    return {
      outcome: 'cancelled',
      error: new HubError('SB_ERR_CANCELLED', ctx.what, undefined, { cause: err }),
      connectionLost: false,
    };
  }
  if (err instanceof SdkError) {
    const sdk = err;
    if (sdk.code === SdkErrorCode.RequestTimeout) {
      return {
        outcome: 'timeout',
        error: new HubError('SB_ERR_UPSTREAM_TIMEOUT', `${ctx.what}: ${sdk.message}`, sdk.data, {
          cause: err,
        }),
        connectionLost: false,
      };
    }
    if (connectionCodes.has(sdk.code)) return lost(err, ctx, httpDetails(err));
    // InvalidResult, CapabilityNotSupported, MethodNotSupportedByProtocolVersion, UnsupportedResultType…:
    // the server answered, but not with something usable.
    return {
      outcome: 'protocol_error',
      error: new HubError(
        'SB_ERR_UPSTREAM_PROTOCOL',
        `${ctx.what}: ${sdk.message}`,
        { sdkCode: sdk.code },
        { cause: err },
      ),
      connectionLost: false,
    };
  }
  if (err instanceof ProtocolError) {
    const rpc = err;
    return {
      outcome: 'protocol_error',
      error: new HubError(
        'SB_ERR_UPSTREAM_PROTOCOL',
        `${ctx.what}: ${rpc.message}`,
        rpc.data === undefined ? { rpcCode: rpc.code } : { rpcCode: rpc.code, data: rpc.data },
        { cause: err },
      ),
      connectionLost: false,
    };
  }
  // fetch failures (TypeError "fetch failed" with a cause such as ECONNREFUSED), spawn errors (ENOENT),
  // broken pipes, the SDK's plain Error('Not connected'): all mean the upstream could not be reached.
  return lost(err, ctx);
}

function lost(err: unknown, ctx: ClassifyContext, details?: unknown): ClassifiedError {
  const message = describe(err);
  return {
    outcome: 'transport_error',
    error: ctx.closing
      ? new HubError('SB_ERR_CLOSED', 'The upstream pool', undefined, { cause: err })
      : new HubError('SB_ERR_UPSTREAM_UNAVAILABLE', `${ctx.what}: ${message}`, details, { cause: err }),
    connectionLost: true,
  };
}

function httpDetails(err: unknown): unknown {
  if (!(err instanceof SdkHttpError)) return undefined;
  const data = err.data as { status?: number } | undefined;
  return data?.status === undefined ? undefined : { httpStatus: data.status };
}

/** A short human message: the error and its root cause (fetch hides ECONNREFUSED in `cause`). */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  const code = (err as { code?: unknown }).code ?? cause?.code;
  const base = err.message || err.name;
  if (typeof code === 'string' && !base.includes(code)) return `${base} (${code})`;
  return base;
}
