/**
 * The pending-entry store (docs/reliability.md, acknowledged delivery): the in-flight (delivered, not yet acknowledged) events of
 * each session's acknowledged subscriptions, with their attempt count and next due time, kept outside
 * the process so that they survive it. A session resumed on any node takes its entries over and
 * redelivers them with `metadata.retryCount` continuing; a session that never comes back has its
 * entries dead-lettered when its deadline passes (a sweep, by one node at a time under a lease).
 *
 * Writes come in batches (src/retry/pending-journal.ts flushes once per tick), never one round trip per
 * delivery. Implementations: MemoryPendingStore (here; one process) and RedisPendingStore.
 */
import type { PublisherRef } from '../broker/broker.ts';

/** Stored as JSON by the Redis store: keep it plain data. */
export interface PendingEntry {
  /** The channel's engine key and the event id. */
  readonly key: string;
  readonly id: string;
  readonly type: string;
  /** When the event was published (ms since epoch). */
  readonly timestamp: number;
  /** The frame as first delivered (without `retryCount`). */
  readonly frame: string;
  readonly publisher?: PublisherRef | undefined;
  /** Deliveries made so far (1 = the first delivery). */
  readonly attempts: number;
  /** When it is due for its next redelivery (ms since epoch). */
  readonly dueAt: number;
}

/** Whose entries these are: enough to dead-letter them without the session. */
export interface PendingOwner {
  /** The gateway's session key (`<org>/<user>/<sessionId>`). */
  readonly sessionKey: string;
  readonly orgId: string;
  readonly sessionId: string;
}

export interface PendingBatch {
  readonly puts: ReadonlyArray<{ readonly owner: PendingOwner; readonly entry: PendingEntry }>;
  readonly removes: ReadonlyArray<{ readonly sessionKey: string; readonly key: string; readonly id: string }>;
  /**
   * When each session's entries are dead-lettered if nobody holds the session by then (ms since epoch).
   * A deadline only ever moves later.
   */
  readonly deadlines: ReadonlyArray<{ readonly owner: PendingOwner; readonly at: number }>;
}

export interface TakenEntries {
  readonly owner: PendingOwner | undefined;
  /** Ordered by channel key, then event id. */
  readonly entries: readonly PendingEntry[];
}

export interface PendingStore {
  /** Applies a batch (one round trip on Redis). */
  write(batch: PendingBatch): Promise<void>;
  /** Removes and returns every entry of the session, atomically (whoever takes them owns them). */
  take(sessionKey: string): Promise<TakenEntries>;
  /** Sessions whose deadline is at or before `now`, at most `limit`. */
  expired(now: number, limit: number): Promise<string[]>;
  /**
   * For the sweep: takes the session's entries only if its deadline is still at or before `now`
   * (checked atomically with the take, so entries a holder just wrote with a later deadline stay).
   */
  takeExpired(sessionKey: string, now: number): Promise<TakenEntries | undefined>;
  /** Takes or renews the sweep lease for `ms`; true when this node holds it. */
  lease(nodeId: string, ms: number): Promise<boolean>;
}

export function entryField(key: string, id: string): string {
  return `${key}\n${id}`;
}

/** Orders entries as they were delivered within a channel: by channel key, then event id numerically. */
export function sortEntries(entries: PendingEntry[]): PendingEntry[] {
  return entries.sort((a, b) => {
    if (a.key !== b.key) return a.key < b.key ? -1 : 1;
    const [am, as] = a.id.split('-').map(Number) as [number, number];
    const [bm, bs] = b.id.split('-').map(Number) as [number, number];
    return am !== bm ? am - bm : as - bs;
  });
}

/** One process's pending entries (the memory engine): bounded by `maxEntries`, beyond which puts are dropped. */
export class MemoryPendingStore implements PendingStore {
  private readonly sessions = new Map<
    string,
    { owner: PendingOwner; entries: Map<string, PendingEntry>; deadline: number }
  >();
  private leaseHolder: { nodeId: string; until: number } | undefined;
  private count = 0;
  dropped = 0;

  constructor(
    private readonly maxEntries = 1_000_000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.count;
  }

  async write(batch: PendingBatch): Promise<void> {
    for (const { sessionKey, key, id } of batch.removes) {
      const s = this.sessions.get(sessionKey);
      if (s?.entries.delete(entryField(key, id))) this.count--;
    }
    for (const { owner, entry } of batch.puts) {
      let s = this.sessions.get(owner.sessionKey);
      if (!s) {
        s = { owner, entries: new Map(), deadline: Infinity };
        this.sessions.set(owner.sessionKey, s);
      }
      const field = entryField(entry.key, entry.id);
      if (!s.entries.has(field)) {
        if (this.count >= this.maxEntries) {
          this.dropped++;
          continue;
        }
        this.count++;
      }
      s.entries.set(field, entry);
    }
    for (const { owner, at } of batch.deadlines) {
      const s = this.sessions.get(owner.sessionKey);
      // Deadlines only move later (like ZADD GT): a stale write never shortens a live session's.
      if (s) s.deadline = s.deadline === Infinity ? at : Math.max(s.deadline, at);
    }
    for (const [k, s] of this.sessions) if (s.entries.size === 0) this.sessions.delete(k);
  }

  async take(sessionKey: string): Promise<TakenEntries> {
    const s = this.sessions.get(sessionKey);
    if (!s) return { owner: undefined, entries: [] };
    this.sessions.delete(sessionKey);
    this.count -= s.entries.size;
    return { owner: s.owner, entries: sortEntries([...s.entries.values()]) };
  }

  async takeExpired(sessionKey: string, now: number): Promise<TakenEntries | undefined> {
    const s = this.sessions.get(sessionKey);
    if (s && s.deadline > now) return undefined;
    return this.take(sessionKey);
  }

  async expired(now: number, limit: number): Promise<string[]> {
    const out: string[] = [];
    for (const [k, s] of this.sessions) {
      if (out.length >= limit) break;
      if (s.deadline <= now) out.push(k);
    }
    return out;
  }

  /** Every session's entries and deadline (for a snapshot of the state: src/state/state-log.ts). */
  dump(): PendingBatch {
    const puts: Array<{ owner: PendingOwner; entry: PendingEntry }> = [];
    const deadlines: Array<{ owner: PendingOwner; at: number }> = [];
    for (const s of this.sessions.values()) {
      for (const entry of s.entries.values()) puts.push({ owner: s.owner, entry });
      if (s.deadline !== Infinity) deadlines.push({ owner: s.owner, at: s.deadline });
    }
    return { puts, removes: [], deadlines };
  }

  async lease(nodeId: string, ms: number): Promise<boolean> {
    const now = this.now();
    if (this.leaseHolder && this.leaseHolder.until > now && this.leaseHolder.nodeId !== nodeId) return false;
    this.leaseHolder = { nodeId, until: now + ms };
    return true;
  }
}
