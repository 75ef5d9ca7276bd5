/**
 * Which transport the next connection attempt uses (`transports` option, tried in order). Until one
 * reaches `connection.established`, every failed attempt moves to the next (wrapping around), so a
 * WebSocket upgrade that a proxy refuses falls back to HTTP streaming, and a gateway that is down for a
 * while does not pin the client to the last of them. The first one established is remembered for the
 * session; it is left only when its connections are cut (closed without a close frame, 1006) several
 * times in a row, as a proxy that lets the upgrade through but kills the socket does.
 */
import type { ClientTransportFactory } from './transport.ts';

export type TransportName = 'websocket' | 'http-stream' | 'sse';

/** Established connections of the remembered transport cut in a row before the next one is tried. */
export const CUTS_BEFORE_FALLBACK = 3;

export class TransportFallback {
  private index = 0;
  private remembered = false;
  private cuts = 0;

  constructor(private readonly transports: ReadonlyArray<readonly [string, ClientTransportFactory]>) {
    if (transports.length === 0)
      throw new Error('no transport available: give transports (or WebSocket, fetch)');
  }

  /** The transport of the next attempt. */
  /** Its name: a `TransportName`, or `custom` for the `transport` option. */
  get current(): string {
    return this.transports[this.index]![0];
  }

  create() {
    return this.transports[this.index]![1]();
  }

  /** A connection reached `connection.established`: its transport is the session's from now on. */
  established(): void {
    this.remembered = true;
  }

  /**
   * A connection ended: `wasEstablished` whether it had reached `connection.established`; `code` its
   * close code (1006: cut without a close frame).
   */
  ended(wasEstablished: boolean, code: number): void {
    if (!this.remembered) {
      if (!wasEstablished) this.next();
      return;
    }
    if (!wasEstablished) return;
    this.cuts = code === 1006 ? this.cuts + 1 : 0;
    if (this.cuts >= CUTS_BEFORE_FALLBACK && this.index < this.transports.length - 1) {
      this.remembered = false;
      this.cuts = 0;
      this.next();
    }
  }

  private next(): void {
    this.index = (this.index + 1) % this.transports.length;
  }
}
