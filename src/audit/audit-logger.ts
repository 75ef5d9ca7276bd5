/**
 * AuditLogger: the durable, tamper-evident audit trail. Guarantees:
 * - `record` is synchronous and O(1) while the queue has room: it appends to a bounded in-memory queue;
 *   nothing on the caller's path waits on I/O. A full queue is moved to the spill file at once (a
 *   synchronous append, amortized over the queue's length), before anything is refused.
 * - Entries are written in batches, in the order recorded, each organization's entries extending its
 *   hash chain (src/audit/hash-chain.ts) under a row lock on the chain head, so several nodes can share
 *   one database. `createdAt` is stamped by `record` and never decreases, so on one node the chain's
 *   order (`seq`) is the order of the events and of their `createdAt`.
 * - Nothing is dropped silently. When a write fails, the batch and everything queued behind it go to a
 *   bounded spill file in the data dir, replayed (in order, before newer entries) once the database
 *   answers; replays are idempotent (entry ids are fixed at `record` time). Only when the memory queue
 *   and the spill file are both full is an entry refused: `counters.dropped` counts it and it is logged.
 * - Protected entries (`isProtectedAction`: an operator's actions, suspensions) have a reserve of their
 *   own beyond the queue's bound: a flood of other entries never crowds them out.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Clock, Random, TimerHandle } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { Database } from '../store/database.ts';
import { backoffDelayMs } from '../store/flush-loop.ts';
import { pgSafeText, toJsonValue } from '../store/json.ts';
import { silentLogger, type StoreLogger } from '../store/log.ts';
import { appendAuditBatch } from './chain-batch.mjs';
import type { AuditEntry, CHAIN_FIELDS } from './entry.ts';
import { SpillFile } from './spill-file.ts';

/** The chain of entries that belong to no organization (e.g. an auth failure before any org is known).
 * '@' is outside the organization-id alphabet, so no tenant can own this chain. */
export const GATEWAY_ORG_ID = '@gateway';

export interface AuditEntryInput {
  /** The organization whose trail this belongs to; unset: GATEWAY_ORG_ID. */
  readonly orgId?: string | undefined;
  /** Who: a user id, `apikey:<keyId>`, `anonymous`, or an operator. */
  readonly actor: string;
  /** What: `connection.accepted`, `auth.failed`, `admin.suspend`, ... (`<area>.<verb>`). */
  readonly action: string;
  /** On what: a channel, session, key id, ... */
  readonly target?: string | undefined;
  readonly detail?: Record<string, unknown> | undefined;
  /** From where. */
  readonly remoteAddress?: string | undefined;
  readonly userAgent?: string | undefined;
}

/**
 * Entries that are never crowded out by others: an operator's actions (`admin.*`) and suspensions
 * (`session.suspended` / `session.unsuspended`). A client cannot cause them, so they cannot flood.
 */
export function isProtectedAction(action: string): boolean {
  return action.startsWith('admin.') || action.startsWith('session.');
}

/** An entry as queued and spilled: everything but its place in the chain. */
export type PendingAuditEntry = Omit<AuditEntry, (typeof CHAIN_FIELDS)[number]>;

export interface AuditCounters {
  /** Entries accepted by `record`. */
  readonly recorded: number;
  /** Entries committed to the database. */
  readonly written: number;
  /** Entries moved to the spill file. */
  readonly spilled: number;
  /** Spilled entries later committed. */
  readonly replayed: number;
  /** Entries refused: memory queue and spill file both full. */
  readonly dropped: number;
  /** Spill-file lines that could not be parsed (torn by a crash). */
  readonly corrupt: number;
  /** Failed database writes. */
  readonly writeFailures: number;
  /** Entries in memory now. */
  readonly queued: number;
  /** Bytes in the spill file now (0 when healthy). */
  readonly spillBytes: number;
}

export interface AuditLoggerOptions {
  /** Where the trail is kept: its transactions (and, on PGlite, the engine thread's own append). */
  readonly db: Pick<Database, 'transaction' | 'appendAudit'>;
  /** APIX_DATA_DIR; the spill file is `<dataDir>/audit-spill.jsonl`. */
  readonly dataDir: string;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: StoreLogger;
  /** Default 1000 ms. */
  readonly flushIntervalMs?: number;
  /**
   * Entries per transaction (default 1000); a full queue of this many is written at once, a partial one at
   * the next tick. The writes run off the event loop (PostgreSQL's processes, or PGlite's own thread).
   */
  readonly maxBatch?: number;
  /** In-memory queue bound (default 20 000); protected entries have as many again in reserve. */
  readonly maxQueue?: number;
  /** Spill-file bound (default 64 MiB). */
  readonly maxSpillBytes?: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

const MAX_FIELD = 1024;
const clip = (s: string | undefined | null): string | null =>
  s === undefined || s === null ? null : pgSafeText(s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s);

export class AuditLogger {
  private queue: PendingAuditEntry[] = [];
  private readonly spill: SpillFile<PendingAuditEntry>;
  private readonly clock: Clock;
  private readonly logger: StoreLogger;
  private readonly maxBatch: number;
  private readonly maxQueue: number;
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  /** A rerun asked for by the timer or flush(): write the partial batch too. */
  private rerunAll = false;
  private failures = 0;
  /** `spilled` when a full spill file was last logged (logged once per new spill). */
  private spillFullLogged = -1;
  private nextAttemptAt = 0;
  private closed = false;
  /** The last `createdAt` given: stamps never go back, even if the clock does. */
  private lastStamp = 0;
  private readonly n = {
    recorded: 0,
    written: 0,
    spilled: 0,
    replayed: 0,
    dropped: 0,
    corrupt: 0,
    writeFailures: 0,
  };

  constructor(private readonly options: AuditLoggerOptions) {
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.maxBatch = options.maxBatch ?? 1000;
    this.maxQueue = options.maxQueue ?? 20_000;
    this.spill = new SpillFile(
      join(options.dataDir, 'audit-spill.jsonl'),
      options.maxSpillBytes ?? 64 * 1024 * 1024,
    );
    this.timer = this.clock.setInterval(() => this.kick(), options.flushIntervalMs ?? 1_000);
    // Entries spilled by an earlier run are caught up as soon as the database answers.
    if (this.spill.size > 0) this.kick();
  }

  get counters(): AuditCounters {
    return { ...this.n, queued: this.queue.length, spillBytes: this.spill.size };
  }

  /**
   * Queues an entry. A full queue goes to the spill file first; false when the entry was refused all the
   * same (queue and spill file full, or closed): counted in `dropped` and logged.
   */
  record(input: AuditEntryInput): boolean {
    const action = clip(input.action) ?? 'unknown';
    if (!this.closed && this.queue.length >= this.maxQueue) this.overflow();
    const room = this.maxQueue + (isProtectedAction(action) ? this.maxQueue : 0);
    if (this.closed || this.queue.length >= room) {
      this.n.dropped++;
      if (this.n.dropped === 1 || this.n.dropped % 1000 === 0)
        this.logger.error(
          { dropped: this.n.dropped, action },
          'audit: queue and spill file full, entry refused',
        );
      return false;
    }
    const now = Math.trunc(this.clock.now());
    this.lastStamp = Math.max(this.lastStamp, now);
    this.queue.push({
      id: randomUUID(),
      orgId: input.orgId ?? GATEWAY_ORG_ID,
      actor: clip(input.actor) ?? 'unknown',
      action,
      target: clip(input.target),
      detail: toJsonValue(input.detail ?? {}),
      remoteAddress: clip(input.remoteAddress),
      userAgent: clip(input.userAgent),
      createdAt: this.lastStamp,
    });
    this.n.recorded++;
    if (this.queue.length >= this.maxBatch) this.kick(false);
    return true;
  }

  /**
   * The queue is full: moves it to the spill file now (what fits), so that the entry being recorded is
   * not refused while the disk has room. The writer then replays the file, in order, before newer entries.
   */
  private overflow(): void {
    try {
      this.spillQueue();
    } catch (err) {
      this.logger.error({ err }, 'audit: cannot write the spill file');
      return;
    }
    this.kick();
  }

  /** Writes (or spills) everything queued now, ignoring any backoff. Resolves true when all is in the DB. */
  async flush(): Promise<boolean> {
    this.nextAttemptAt = 0;
    await this.run();
    return this.queue.length === 0 && this.spill.size === 0;
  }

  /** Stops the timer and flushes; what cannot be written is left in the spill file for the next start. */
  async close(): Promise<boolean> {
    this.timer?.cancel();
    this.timer = undefined;
    const ok = await this.flush();
    this.closed = true;
    return ok;
  }

  /** `all`: write a partial batch too (the timer, flush); else only full batches (a full queue). */
  private kick(all = true): void {
    void this.run(all);
  }

  private run(all = true): Promise<void> {
    if (this.running) {
      this.rerun = true;
      this.rerunAll ||= all;
      return this.running;
    }
    this.running = (async () => {
      try {
        let writeAll = all;
        do {
          this.rerun = false;
          await this.step(writeAll);
          writeAll = this.rerunAll;
          this.rerunAll = false;
        } while (this.rerun);
      } catch (err) {
        // Only the spill file itself failing lands here (disk full, permissions): keep the entries queued.
        this.logger.error({ err }, 'audit: cannot write the spill file');
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /**
   * Writes the queue in batches of maxBatch; a partial batch only when `all` (the timer, flush): entries
   * trickling in while a batch is written wait for the next full batch or tick instead of going out a
   * few at a time (a transaction costs milliseconds however few rows it holds: at 1,000 publishes/s the
   * writer made 40 transactions a second of 25 entries).
   */
  private async step(all: boolean): Promise<void> {
    for (;;) {
      const backingOff = this.clock.now() < this.nextAttemptAt;
      if (this.spill.size > 0) {
        // Degraded: newer entries go behind the spilled ones, preserving order; the DB is retried on backoff.
        this.spillQueue();
        if (backingOff) return;
        if (!(await this.replaySpill())) return;
        continue;
      }
      if (backingOff || this.queue.length < (all ? 1 : this.maxBatch)) return;
      // Out of the queue while it is written: an overflow meanwhile spills only what came after it.
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        await this.write(batch, false);
      } catch (err) {
        this.failed(err);
        // Older than anything spilled or queued since: first in the file.
        try {
          this.spill.prepend(batch);
        } catch (spillErr) {
          this.queue = batch.concat(this.queue);
          throw spillErr;
        }
        this.n.spilled += batch.length;
        this.spillQueue();
        return;
      }
      this.n.written += batch.length;
    }
  }

  /**
   * Moves the queue to the spill file, behind what it holds; what does not fit stays queued (newer than
   * everything in the file), and is refused only by `record` once the queue is full too.
   */
  private spillQueue(): void {
    if (this.queue.length === 0) return;
    const r = this.spill.append(this.queue);
    this.n.spilled += r.written;
    if (r.written > 0) this.queue = this.queue.slice(r.written);
    if (r.refused > 0 && this.spillFullLogged < this.n.spilled) {
      this.spillFullLogged = this.n.spilled;
      this.logger.error(
        { queued: this.queue.length, path: this.spill.path },
        'audit: spill file full, entries held in memory',
      );
    }
  }

  /** Writes the spill file's entries; false when a write failed (the rest stays in the file). */
  private async replaySpill(): Promise<boolean> {
    const { entries, corrupt, bytes } = this.spill.readAll();
    if (corrupt > 0) {
      this.n.corrupt += corrupt;
      this.logger.error(
        { corrupt, path: this.spill.path },
        'audit: unreadable lines in the spill file were skipped',
      );
    }
    let done = 0;
    let ok = true;
    try {
      while (done < entries.length) {
        const batch = entries.slice(done, done + this.maxBatch);
        await this.write(batch, true);
        done += batch.length;
        this.n.written += batch.length;
        this.n.replayed += batch.length;
      }
    } catch (err) {
      this.failed(err);
      ok = false;
    }
    // Entries spilled while this ran (a full queue) were appended after `bytes`: they stay, behind.
    this.spill.replace(entries.slice(done), bytes);
    if (done === entries.length && done > 0)
      this.logger.info({ replayed: done }, 'audit: caught up with entries spilled during a database outage');
    return ok;
  }

  private failed(err: unknown): void {
    this.failures++;
    this.n.writeFailures++;
    const delay = backoffDelayMs(
      this.failures - 1,
      this.options.retryBaseMs ?? 500,
      this.options.retryMaxMs ?? 30_000,
      this.options.random ?? Math.random,
    );
    this.nextAttemptAt = this.clock.now() + delay;
    if (this.failures === 1 || this.failures % 10 === 0)
      this.logger.warn(
        { err, failures: this.failures, retryInMs: delay },
        'audit: database write failed; spilling to file',
      );
  }

  /**
   * Appends a batch to the chains in one transaction (src/audit/chain-batch.mjs). On the embedded PGlite
   * that runs whole on the engine's thread (hashing, rows, COPY): this thread only hands the batch over.
   */
  private async write(batch: readonly PendingAuditEntry[], replay: boolean): Promise<void> {
    const { db } = this.options;
    if (db.appendAudit) await db.appendAudit(batch, replay);
    else
      await db.transaction((tx) =>
        appendAuditBatch(
          { query: (sql, params) => tx.query<Record<string, unknown>>(sql, params) },
          batch,
          replay,
        ),
      );
    this.failures = 0;
  }
}
