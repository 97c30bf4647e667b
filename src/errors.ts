/**
 * The one error catalogue. Every error the hub reports has a stable code, an HTTP status and a message
 * template; the HTTP and socket layers turn a HubError into `{ success:false, error:{code,message,details} }`.
 * Codes are documented in docs/ERRORS.md (a test keeps the two in step). A retired code is never reused.
 */
export const errorCatalogue = {
  SB_ERR_VALIDATION: { status: 400, message: 'Invalid input: %s' },
  SB_ERR_BAD_JSON: { status: 400, message: 'Malformed JSON body: %s' },
  SB_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type: %s' },
  SB_ERR_PAYLOAD_TOO_LARGE: { status: 413, message: 'Payload too large: %s' },
  SB_ERR_UNAUTHORIZED: { status: 401, message: 'Authentication required: %s' },
  SB_ERR_FORBIDDEN: { status: 403, message: 'Forbidden: %s' },
  SB_ERR_NOT_FOUND: { status: 404, message: '%s not found' },
  SB_ERR_STREAM_STOPPED: { status: 410, message: 'Stream %s has stopped' },
  SB_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'No route %s' },
  SB_ERR_CONFLICT: { status: 409, message: 'Conflict: %s' },
  SB_ERR_RATE_LIMITED: { status: 429, message: 'Rate limit exceeded: %s' },
  SB_ERR_SERVER_DISABLED: { status: 409, message: 'Server %s is disabled' },
  SB_ERR_STDIO_NOT_ALLOWED: { status: 403, message: 'Command not allowed for stdio servers: %s' },
  SB_ERR_TOOL_NOT_FOUND: { status: 404, message: 'Tool %s not found' },
  SB_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'Upstream server unavailable: %s' },
  SB_ERR_UPSTREAM_PROTOCOL: { status: 502, message: 'Upstream server returned an error: %s' },
  SB_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'Upstream call timed out: %s' },
  SB_ERR_CANCELLED: { status: 499, message: 'Cancelled: %s' },
  SB_ERR_QUEUE_FULL: { status: 503, message: 'Too many calls waiting: %s' },
  SB_ERR_CLOSED: { status: 503, message: '%s is closed' },
  SB_ERR_TOOL_ERROR: { status: 502, message: 'The tool reported an error: %s' },
  SB_ERR_STEP_INPUT: { status: 422, message: 'A workflow step could not get its arguments: %s' },
  SB_ERR_STEP_SKIPPED: { status: 424, message: 'A workflow step was skipped: %s' },
  SB_ERR_INTERRUPTED: { status: 503, message: 'Interrupted: %s' },
  SB_ERR_INTERNAL: { status: 500, message: 'Internal error: %s' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export class HubError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    detail: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(errorCatalogue[code].message.replace('%s', detail), options);
    this.name = 'HubError';
    this.status = errorCatalogue[code].status;
  }

  toJSON(): { code: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isHubError(err: unknown): err is HubError {
  return err instanceof HubError;
}

export const notFound = (what: string, details?: unknown) => new HubError('SB_ERR_NOT_FOUND', what, details);
