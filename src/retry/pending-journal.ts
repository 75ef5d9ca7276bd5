/**
 * PendingJournal: writes the RetryManager's in-flight state to the pending store
 * (src/pending/pending-store.ts) off the hot path. A delivery or an ack only touches two maps; once per
 * tick (`flushMs`) everything buffered goes to the store in one batch (one Redis pipeline). An event
 * acknowledged within the tick of its first delivery costs no store write at all.
 *
 * Each session with entries has a deadline: while its holder keeps it live the deadline is refreshed
 * (every quarter of the session TTL); once its client is away it is `sessionTtlMs` + a grace ahead. A
 * periodic sweep (one node at a time, under the store's lease) takes the entries of sessions whose
 * deadline passed (their holder died and nobody resumed them) and hands them to `onExpired`, which
 * dead-letters them.
 */
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import type {
  PendingBatch,
  PendingEntry,
  PendingOwner,
  PendingStore,
  TakenEntries,
} from '../pending/pending-store.ts';

export interface PendingJournalOptions {
  readonly nodeId: string;
  readonly flushMs: number;
  readonly sweepMs: number;
  readonly sessionTtlMs: number;
  /** Most buffered writes; beyond, puts are dropped (counted): the store is too slow or away. */
  readonly maxBuffered?: number;
}

type Put = { owner: PendingOwner; entry: PendingEntry };
type Remove = { sessionKey: string; key: string; id: string };

export class PendingJournal {
  private puts = new Map<string, Put>();
  private removes = new Map<string, Remove>();
  private deadlines = new Map<string, { owner: PendingOwner; at: number }>();
  /** Sessions held live on this node that have entries: their deadline is kept ahead. */
  private readonly live = new Map<string, PendingOwner>();
  private lastRefresh = 0;
  private flushTimer: TimerHandle | undefined;
  private sweepTimer: TimerHandle | undefined;
  private flushing: Promise<void> | undefined;
  private sweeping = false;
  private readonly maxBuffered: number;
  /** Bumped when a batch is taken: a put of the current generation has not reached the store yet. */
  generation = 0;
  writes = 0;
  failures = 0;
  dropped = 0;
  swept = 0;

  constructor(
    readonly store: PendingStore,
    private readonly clock: Clock,
    private readonly options: PendingJournalOptions,
    private readonly onExpired: (owner: PendingOwner, entries: readonly PendingEntry[]) => void,
    private readonly log?: Logger,
  ) {
    this.maxBuffered = options.maxBuffered ?? 200_000;
  }

  /** Buffered writes waiting for the next tick. */
  get buffered(): number {
    return this.puts.size + this.removes.size + this.deadlines.size;
  }

  start(): void {
    this.flushTimer ??= this.clock.setInterval(() => void this.flush(), this.options.flushMs);
    this.sweepTimer ??= this.clock.setInterval(() => void this.sweep(), this.options.sweepMs);
  }

  /** Stops the timers and writes what is buffered. */
  async close(): Promise<void> {
    this.flushTimer?.cancel();
    this.sweepTimer?.cancel();
    this.flushTimer = this.sweepTimer = undefined;
    await this.flush();
  }

  /** An event was delivered (or redelivered): its entry, as of now. Returns the put's generation. */
  put(owner: PendingOwner, entry: PendingEntry): number {
    const k = field(owner.sessionKey, entry.key, entry.id);
    this.removes.delete(k);
    if (!this.puts.has(k) && this.buffered >= this.maxBuffered) {
      this.dropped++;
      return -1;
    }
    this.puts.set(k, { owner, entry });
    if (!this.live.has(owner.sessionKey)) {
      this.live.set(owner.sessionKey, owner);
      this.deadlines.set(owner.sessionKey, { owner, at: this.liveDeadline() });
    }
    return this.generation;
  }

  /**
   * The entry is done (acked, dead-lettered, unsubscribed). `putGeneration`: the generation its only
   * put returned, if known; when the put was not written yet, nothing needs to reach the store.
   */
  remove(sessionKey: string, key: string, id: string, putGeneration?: number): void {
    const k = field(sessionKey, key, id);
    this.puts.delete(k);
    if (putGeneration === this.generation) return;
    this.removes.set(k, { sessionKey, key, id });
  }

  /**
   * The session's client went away: its entries wait one session TTL for a resume (deadlines only move
   * later, so a session that was live keeps its live deadline, a quarter TTL longer).
   */
  away(owner: PendingOwner): void {
    if (!this.live.delete(owner.sessionKey)) return; // nothing was put for it here
    this.deadlines.set(owner.sessionKey, {
      owner,
      at: this.clock.now() + this.options.sessionTtlMs + this.grace(),
    });
  }

  /**
   * The session has nothing in flight any more: its deadline is no longer refreshed (the sweep then
   * finds nothing left to dead-letter and cleans up).
   */
  idle(sessionKey: string): void {
    this.live.delete(sessionKey);
  }

  /**
   * This node no longer holds the session (ended, or taken by another node): its buffered puts are
   * dropped (the new holder took the entries; a late write would bring them back). Its deadline stays.
   */
  forget(sessionKey: string): void {
    this.live.delete(sessionKey);
    const prefix = `${sessionKey}\n`;
    for (const k of this.puts.keys()) if (k.startsWith(prefix)) this.puts.delete(k);
  }

  /** Takes the session's stored entries over (a resume); what this node buffered for it is written first. */
  async take(sessionKey: string): Promise<TakenEntries> {
    if (this.hasBuffered(sessionKey)) await this.flush();
    return this.store.take(sessionKey);
  }

  /** Writes what is buffered now (the tick). Never throws; a failed batch is put back (bounded). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    const now = this.clock.now();
    const refreshEvery = Math.max(1000, Math.floor(this.options.sessionTtlMs / 4));
    if (this.live.size > 0 && now - this.lastRefresh >= refreshEvery) {
      this.lastRefresh = now;
      const at = this.liveDeadline();
      for (const owner of this.live.values()) this.deadlines.set(owner.sessionKey, { owner, at });
    }
    if (this.buffered === 0) return Promise.resolve();
    const puts = this.puts;
    const removes = this.removes;
    const deadlines = this.deadlines;
    this.puts = new Map();
    this.removes = new Map();
    this.deadlines = new Map();
    this.generation++;
    const batch: PendingBatch = {
      puts: [...puts.values()],
      removes: [...removes.values()],
      deadlines: [...deadlines.values()],
    };
    this.flushing = this.store.write(batch).then(
      () => {
        this.writes++;
        this.flushing = undefined;
      },
      (err: unknown) => {
        this.failures++;
        this.flushing = undefined;
        if (this.failures === 1 || this.failures % 100 === 0)
          this.log?.warn({ err, failures: this.failures }, 'pending store write failed; retrying');
        // Put back what nothing newer replaced, within the bound.
        for (const [k, v] of removes) if (!this.puts.has(k) && !this.removes.has(k)) this.removes.set(k, v);
        for (const [k, v] of puts) {
          if (this.puts.has(k) || this.removes.has(k)) continue;
          if (this.buffered >= this.maxBuffered) this.dropped++;
          else this.puts.set(k, v);
        }
        for (const [k, v] of deadlines) if (!this.deadlines.has(k)) this.deadlines.set(k, v);
      },
    );
    return this.flushing;
  }

  /** Dead-letters the entries of sessions whose deadline passed, if this node holds the lease. */
  async sweep(): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    let n = 0;
    try {
      if (!(await this.store.lease(this.options.nodeId, this.options.sweepMs * 2))) return 0;
      const sessions = await this.store.expired(this.clock.now(), 100);
      for (const sessionKey of sessions) {
        if (this.live.has(sessionKey)) continue; // held here: its refreshed deadline is on its way
        const taken = await this.store.takeExpired(sessionKey, this.clock.now());
        if (taken?.owner && taken.entries.length > 0) {
          n += taken.entries.length;
          this.onExpired(taken.owner, taken.entries);
        }
      }
      this.swept += n;
      return n;
    } catch (err) {
      this.log?.warn({ err }, 'pending sweep failed');
      return n;
    } finally {
      this.sweeping = false;
    }
  }

  private hasBuffered(sessionKey: string): boolean {
    if (this.deadlines.has(sessionKey)) return true;
    const prefix = `${sessionKey}\n`;
    for (const k of this.puts.keys()) if (k.startsWith(prefix)) return true;
    for (const k of this.removes.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  private grace(): number {
    return Math.max(1000, this.options.flushMs * 10);
  }

  private liveDeadline(): number {
    return (
      this.clock.now() +
      this.options.sessionTtlMs +
      Math.max(1000, this.options.sessionTtlMs / 4) +
      this.grace()
    );
  }
}

function field(sessionKey: string, key: string, id: string): string {
  return `${sessionKey}\n${key}\n${id}`;
}
