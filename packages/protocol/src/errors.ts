/**
 * The one error registry: every wire code of docs/protocol.md §8 with its HTTP status and the close code used
 * when the error ends a connection. Shared by the server and the SDK; listed in docs/errors.md (a test
 * keeps the two in sync).
 */

export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  RATE_LIMITED: 'RATE_LIMITED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  CONFLICT: 'CONFLICT',
  INTERNAL: 'INTERNAL',
  UNAVAILABLE: 'UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  /** Streams (docs/protocol.md §11): the connection has APIX_MAX_OPEN_STREAMS streams open. */
  STREAM_LIMIT: 'STREAM_LIMIT',
  /** Streams: the stream's accumulated text would pass APIX_STREAM_MAX_BYTES. */
  STREAM_TOO_LARGE: 'STREAM_TOO_LARGE',
  /** Streams: no open stream with this id in the channel (never started, or ended). */
  STREAM_NOT_OPEN: 'STREAM_NOT_OPEN',
  /** Streams: the stream had no append for APIX_STREAM_IDLE_TIMEOUT_MS; the server ended it `error`. */
  STREAM_IDLE_TIMEOUT: 'STREAM_IDLE_TIMEOUT',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorSpec {
  readonly httpStatus: number;
  /** Close code when this error ends a connection. */
  readonly closeCode: number;
  readonly description: string;
}

export const ERRORS: Readonly<Record<ErrorCode, ErrorSpec>> = {
  BAD_REQUEST: {
    httpStatus: 400,
    closeCode: 4000,
    description: 'The frame or request is malformed or invalid.',
  },
  UNAUTHORIZED: { httpStatus: 401, closeCode: 4001, description: 'Missing, invalid or revoked credentials.' },
  TOKEN_EXPIRED: {
    httpStatus: 401,
    closeCode: 4002,
    description: 'The token expired; refresh it and reconnect.',
  },
  FORBIDDEN: { httpStatus: 403, closeCode: 4011, description: 'Authenticated, but not allowed to do this.' },
  NOT_FOUND: { httpStatus: 404, closeCode: 4000, description: 'No such resource.' },
  RATE_LIMITED: { httpStatus: 429, closeCode: 4008, description: 'Too many requests; retry after the hint.' },
  PAYLOAD_TOO_LARGE: {
    httpStatus: 413,
    closeCode: 1009,
    description:
      'The frame or body is over the size limit, or JSON in it (connect metadata, a payload) is over its bounds.',
  },
  CONFLICT: {
    httpStatus: 409,
    closeCode: 4009,
    description: 'Conflicts with current state (e.g. session taken over).',
  },
  INTERNAL: { httpStatus: 500, closeCode: 1011, description: 'An unexpected server error.' },
  UNAVAILABLE: {
    httpStatus: 503,
    closeCode: 1001,
    description: 'A dependency is unavailable, or the server is draining.',
  },
  TIMEOUT: {
    httpStatus: 504,
    closeCode: 1011,
    description: 'No answer in time (an RPC call past its `timeoutMs`); the call may still have been served.',
  },
  STREAM_LIMIT: {
    httpStatus: 429,
    closeCode: 4008,
    description: 'Too many open streams on this connection (APIX_MAX_OPEN_STREAMS); end one first.',
  },
  STREAM_TOO_LARGE: {
    httpStatus: 413,
    closeCode: 1009,
    description: "The stream's accumulated text would pass APIX_STREAM_MAX_BYTES; the append is refused.",
  },
  STREAM_NOT_OPEN: {
    httpStatus: 409,
    closeCode: 4000,
    description:
      'No open stream with this id in the channel: never started, already ended, or owned by another user.',
  },
  STREAM_IDLE_TIMEOUT: {
    httpStatus: 408,
    closeCode: 4000,
    description:
      'The stream had no append for APIX_STREAM_IDLE_TIMEOUT_MS; the server ended it with status error.',
  },
};

/** WebSocket close codes (docs/protocol.md §8, plus the extensions marked). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  BAD_REQUEST: 4000,
  UNAUTHORIZED: 4001,
  TOKEN_EXPIRED: 4002,
  CONNECT_TIMEOUT: 4004,
  POLICY_VIOLATION: 4008,
  SESSION_TAKEN_OVER: 4009,
  /** Extension: the client read too slowly and its send buffer crossed the ceiling; reconnect and resume. */
  SLOW_CONSUMER: 4010,
  SUSPENDED: 4011,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Whether a client should reconnect after a close with this code (1000-1999 and 4010: yes). */
export function closeCodeAllowsReconnect(code: number): boolean {
  if (code === CloseCode.SLOW_CONSUMER || code === CloseCode.GOING_AWAY) return true;
  if (code >= 4000) return false;
  return code !== CloseCode.MESSAGE_TOO_BIG;
}

export class ApiXError extends Error {
  readonly code: ErrorCode;
  /** Seconds after which a rate-limited request may be retried. */
  readonly retryAfterMs: number | undefined;
  constructor(code: ErrorCode, message: string, options?: { retryAfterMs?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiXError';
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }
  get httpStatus(): number {
    return ERRORS[this.code].httpStatus;
  }
  get closeCode(): number {
    return ERRORS[this.code].closeCode;
  }
}

export function isApiXError(err: unknown): err is ApiXError {
  return err instanceof ApiXError;
}
