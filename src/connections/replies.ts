/** How the server answers a connection that did something wrong, or that it closes. */
import { CloseCode, ERRORS, isApiXError } from '@apix/protocol';
import type { ErrorCode } from '@apix/protocol';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import { encodeControl, encodeError } from '../gateway/frames.ts';
import { Phase } from './session.ts';
import type { Connection } from './session.ts';

export class Replies {
  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Answers a bad frame: `connection.error`; fatal ones (before connect) close with the code's close code. */
  fail(conn: Connection, code: ErrorCode, message: string, fatal = false, correlationId?: string): void {
    const isFatal = fatal || conn.phase === Phase.AWAITING_CONNECT || conn.phase === Phase.CONNECTING;
    const now = this.clock.now();
    conn.send(encodeError(code, message, isFatal, now, correlationId));
    if (isFatal) {
      const closeCode = code === 'INTERNAL' ? CloseCode.INTERNAL_ERROR : ERRORS[code].closeCode;
      conn.close(closeCode, message, now);
    }
  }

  /** A server-initiated close: `connection.disconnected` first, then the close code. */
  disconnect(
    conn: Connection,
    code: ErrorCode | string,
    reason: string,
    closeCode: number,
    reconnect: boolean,
    correlationId?: string,
  ): void {
    const now = this.clock.now();
    conn.send(encodeControl('connection.disconnected', { code, reason, reconnect }, now, correlationId));
    conn.close(closeCode, reason, now);
  }

  internalError(conn: Connection, err: unknown, fatal: boolean): void {
    if (isApiXError(err)) return this.fail(conn, err.code, err.message, fatal);
    this.log.error({ err, connectionId: conn.id }, 'unexpected error handling a frame');
    this.fail(conn, 'INTERNAL', 'internal error', fatal);
  }
}
