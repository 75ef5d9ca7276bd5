/**
 * Single-use, short-lived SSE tickets (docs/transports.md): `POST /v1/sse/ticket` trades the real token
 * (in the Authorization header) for a ticket, and `GET /v1/sse?connect=` carries the ticket where the
 * token would be, so a URL that ends up in a proxy's or browser's log holds nothing reusable. The store
 * is in memory on the node that issued the ticket, bounded (`APIX_SSE_TICKETS_MAX`): a ticket is
 * redeemed on that node (the client opens its stream right after asking, through the same connection).
 */
import { ApiXError } from '@apix/protocol';

interface Ticket {
  readonly token: string;
  readonly expiresAt: number;
}

export interface SseTicketOptions {
  readonly ttlMs: number;
  readonly max: number;
  readonly now: () => number;
  /** A new ticket's text: unguessable (random bytes, base64url). */
  readonly newTicket: () => string;
}

export class SseTickets {
  /** Insertion order is expiry order (one TTL for all): the oldest are swept from the front. */
  private readonly tickets = new Map<string, Ticket>();
  issuedTotal = 0;
  redeemedTotal = 0;

  constructor(private readonly options: SseTicketOptions) {}

  get size(): number {
    return this.tickets.size;
  }

  issue(token: string): { ticket: string; expiresAt: number } {
    const now = this.options.now();
    this.sweep(now);
    if (this.tickets.size >= this.options.max)
      throw new ApiXError('RATE_LIMITED', 'too many SSE tickets outstanding; retry shortly', {
        retryAfterMs: 1000,
      });
    const ticket = this.options.newTicket();
    const expiresAt = now + this.options.ttlMs;
    this.tickets.set(ticket, { token, expiresAt });
    this.issuedTotal++;
    return { ticket, expiresAt };
  }

  /** The token a ticket stands for; the ticket is spent. Throws UNAUTHORIZED for an unknown, spent or expired one. */
  redeem(ticket: string): string {
    const entry = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    if (entry === undefined || entry.expiresAt <= this.options.now())
      throw new ApiXError('UNAUTHORIZED', 'the SSE ticket is unknown, already used or expired');
    this.redeemedTotal++;
    return entry.token;
  }

  private sweep(now: number): void {
    for (const [ticket, entry] of this.tickets) {
      if (entry.expiresAt > now) return;
      this.tickets.delete(ticket);
    }
  }
}
