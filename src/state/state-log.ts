/**
 * The embedded node's state log: what the memory engines hold that a restart must not lose (each
 * channel's retained history and ids, the sessions waiting for a resume, their offline queues and
 * in-flight events, the idempotency keys of the window) is appended to `<dataDir>/state.log`, one JSON
 * array per line, and read back when the node starts.
 *
 * - Hot path: an engine change pushes one small tuple of references into a buffer; no serialization, no
 *   I/O. Every `flushMs` the buffer is serialized and appended (in slices, yielding between them), and
 *   once more on close (graceful shutdown, after the gateway drained and saved its sessions).
 * - What a crash loses: the changes of the last `flushMs` at most (a torn last line is skipped on read).
 * - Bounds: the buffer holds at most `maxBufferedBytes`; past it the changes are dropped and the next
 *   write is a full snapshot instead (it holds everything). The file is compacted (a snapshot of the
 *   current state written to `state.log.tmp`, then renamed over it) when it outgrows `compactBytes` and
 *   twice its size after the last compaction; the state itself is bounded by the engines' own bounds.
 *   Sessions past their TTL, and the queues of sessions that are gone, are left out of a snapshot.
 */
import { mkdir, open, rename, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import type { StoreLogger } from '../store/log.ts';
import { FlushLoop } from '../store/flush-loop.ts';
import { acquireDirLock } from '../store/dir-lock.ts';
import type { BrokerEvent, HistoryOptions } from '../broker/broker.ts';
import type { MemoryHistory } from '../broker/memory-history.ts';
import type { MemoryIdempotency } from '../broker/memory-idempotency.ts';
import type { MemorySessionStore } from '../sessions/memory-session-store.ts';
import type { PrivateChannelState, SessionSnapshot, SessionStore } from '../sessions/session-store.ts';
import type { MemoryOfflineQueue } from '../queue/memory-queue.ts';
import type { DrainResult, OfflineQueue, QueuedFrame } from '../queue/queue.ts';
import type {
  MemoryPendingStore,
  PendingBatch,
  PendingStore,
  TakenEntries,
} from '../pending/pending-store.ts';

/** The engines whose state the log keeps. */
export interface LoggedState {
  readonly history: MemoryHistory;
  readonly idempotency: MemoryIdempotency;
  readonly sessions: MemorySessionStore;
  readonly queue: MemoryOfflineQueue;
  readonly pending: MemoryPendingStore;
}

export interface StateLogOptions {
  readonly dataDir: string;
  readonly flushMs: number;
  readonly compactBytes: number;
  readonly maxBufferedBytes: number;
  /** History bounds for events whose channel bounds are not in the log. */
  readonly history: HistoryOptions;
  /** A restored session waits at most this long for its resume (from the restart). */
  readonly sessionTtlMs: number;
  readonly clock: Clock;
  readonly logger: StoreLogger;
}

/**
 * Records, by their first element:
 * `c` channel created [key, floor, top|null]; `e` event kept [key, id, type, timestamp, frame, size, ttlMs,
 * sealed?]; `t` publish not kept [key, id]; `i` idempotency key [k, id, expiresAt]; `s` session saved
 * [snapshot]; `d` session deleted [key]; `q` queued [session, item]; `Q` queue drained [session];
 * `p` pending batch [batch]; `x` pending taken [session].
 */
type Rec = readonly unknown[];

const FILE = 'state.log';
/** Records serialized per slice of a write (the event loop runs between slices). */
const SLICE = 2000;

function eventRec(ev: BrokerEvent, opts: HistoryOptions): Rec {
  return ev.sealed === undefined
    ? ['e', ev.key, ev.id, ev.type, ev.timestamp, ev.frame, opts.size, opts.ttlMs]
    : ['e', ev.key, ev.id, ev.type, ev.timestamp, ev.frame, opts.size, opts.ttlMs, ev.sealed];
}

export class StateLog {
  private buffer: Rec[] = [];
  private bufferedBytes = 0;
  /** The buffer overflowed or a write failed: the next write is a full snapshot. */
  private snapshotWanted = false;
  private handle: FileHandle | undefined;
  private fileBytes = 0;
  private compactedBytes = 0;
  private readonly loop: FlushLoop;
  private readonly path: string;
  readonly counters = { restored: 0, skippedLines: 0, writes: 0, snapshots: 0, overflows: 0 };

  private constructor(
    private readonly state: LoggedState,
    private readonly options: StateLogOptions,
  ) {
    this.path = join(options.dataDir, FILE);
    this.loop = new FlushLoop(() => this.flushOnce(), {
      name: 'state-log',
      clock: options.clock,
      intervalMs: options.flushMs,
      logger: options.logger,
    });
  }

  /** Restores the state from the log (if any), writes it back compacted, then logs every change. */
  /** Releases the state log's lock file (taken by open). */
  private releaseLock: () => void = () => {};

  static async open(state: LoggedState, options: StateLogOptions): Promise<StateLog> {
    const log = new StateLog(state, options);
    await mkdir(options.dataDir, { recursive: true });
    // One process per state log: a second `apix serve` on this data dir must not restore and rewrite it
    // under the running one (whose later appends would then go to the replaced file).
    log.releaseLock = acquireDirLock(
      `${log.path}.lock`,
      `the state log ${log.path}`,
      'stop that process, or give this one another APIX_DATA_DIR',
    );
    try {
      await log.restore();
      await log.compact();
    } catch (err) {
      log.releaseLock();
      throw err;
    }
    log.attach();
    log.loop.start();
    return log;
  }

  /** The session store, offline queue and pending store to give the gateway: they log their changes. */
  sessionStore(): SessionStore {
    const inner = this.state.sessions;
    return {
      // Saved sessions outlive the process: a node shutting down leaves them for its next start.
      outlivesNode: true,
      save: (snapshot) => {
        this.push(['s', snapshot], 200);
        return inner.save(snapshot);
      },
      load: (key) => inner.load(key),
      delete: (key) => {
        this.push(['d', key], 50);
        return inner.delete(key);
      },
      privateChannelState: (orgId: string, userId: string): Promise<PrivateChannelState> =>
        inner.privateChannelState(orgId, userId),
    };
  }

  offlineQueue(): OfflineQueue {
    const inner = this.state.queue;
    return {
      push: (session: string, item: QueuedFrame) => {
        this.push(['q', session, item], 100 + item.frame.length);
        return inner.push(session, item);
      },
      drain: (session: string): Promise<DrainResult> => {
        this.push(['Q', session], 50);
        return inner.drain(session);
      },
      size: (session) => inner.size(session),
      clear: (session) => {
        this.push(['Q', session], 50);
        return inner.clear(session);
      },
      totalSize: () => inner.totalSize(),
    };
  }

  pendingStore(): PendingStore {
    const inner = this.state.pending;
    const taken = (key: string, t: TakenEntries | undefined) => {
      if (t !== undefined && t.entries.length > 0) this.push(['x', key], 50);
      return t;
    };
    return {
      write: (batch: PendingBatch) => {
        let bytes = 100;
        for (const p of batch.puts) bytes += 200 + p.entry.frame.length;
        this.push(['p', batch], bytes);
        return inner.write(batch);
      },
      take: async (key) => taken(key, await inner.take(key))!,
      takeExpired: async (key, now) => taken(key, await inner.takeExpired(key, now)),
      expired: (now, limit) => inner.expired(now, limit),
      lease: (nodeId, ms) => inner.lease(nodeId, ms),
    };
  }

  /** Writes what is buffered now; resolves whether it was written. */
  flush(): Promise<boolean> {
    return this.loop.flush();
  }

  /** The last write (graceful shutdown): call after the gateway drained. */
  async close(): Promise<void> {
    this.state.history.observer = undefined;
    this.state.idempotency.onRemember = undefined;
    const ok = await this.loop.close();
    if (!ok) this.options.logger.warn({ path: this.path }, 'state log: last write failed');
    await this.handle?.sync().catch(() => {});
    await this.handle?.close().catch(() => {});
    this.handle = undefined;
    this.releaseLock();
  }

  get buffered(): number {
    return this.buffer.length;
  }
  get bytes(): number {
    return this.fileBytes;
  }

  private push(rec: Rec, bytes: number): void {
    if (this.snapshotWanted) return;
    if (this.bufferedBytes + bytes > this.options.maxBufferedBytes) {
      // The disk is too slow (or away): the next write is a snapshot of everything instead.
      this.counters.overflows++;
      this.snapshotWanted = true;
      this.buffer = [];
      this.bufferedBytes = 0;
      return;
    }
    this.buffer.push(rec);
    this.bufferedBytes += bytes;
  }

  private attach(): void {
    this.state.history.observer = {
      created: (key, floor) => this.push(['c', key, floor, null], 50 + key.length),
      kept: (ev, opts) => this.push(eventRec(ev, opts), 100 + ev.frame.length + (ev.sealed?.length ?? 0)),
      skipped: (key, id) => this.push(['t', key, id], 50 + key.length),
    };
    this.state.idempotency.onRemember = (k, id, expiresAt) =>
      this.push(['i', k, id, expiresAt], 60 + k.length);
  }

  private async flushOnce(): Promise<void> {
    if (
      this.snapshotWanted ||
      (this.fileBytes > this.options.compactBytes && this.fileBytes > 2 * this.compactedBytes)
    )
      return this.compact();
    if (this.buffer.length === 0) return;
    const recs = this.buffer;
    this.buffer = [];
    this.bufferedBytes = 0;
    try {
      this.fileBytes += await writeRecords(this.handle!, recs);
      this.counters.writes++;
    } catch (err) {
      // What was taken is not in the file: a snapshot (of everything) replaces it at the next attempt.
      this.snapshotWanted = true;
      throw err;
    }
  }

  /** Writes a snapshot of the state to a new file and puts it in place of the log. */
  private async compact(): Promise<void> {
    // Taken at one instant, with the buffer: changes from now on are appended after the snapshot.
    this.snapshotWanted = false;
    this.buffer = [];
    this.bufferedBytes = 0;
    const recs = this.snapshotRecords();
    const tmp = `${this.path}.tmp`;
    let written: number;
    try {
      const out = await open(tmp, 'w');
      try {
        written = await writeRecords(out, recs);
        await out.sync();
      } finally {
        await out.close();
      }
      await this.handle?.close();
      this.handle = undefined;
      await rename(tmp, this.path);
    } catch (err) {
      this.snapshotWanted = true;
      throw err;
    } finally {
      this.handle ??= await open(this.path, 'a');
    }
    this.fileBytes = written;
    this.compactedBytes = written;
    this.counters.snapshots++;
  }

  private snapshotRecords(): Rec[] {
    const { history, idempotency, sessions, queue, pending } = this.state;
    const recs: Rec[] = [];
    for (const ch of history.snapshot()) {
      recs.push(['c', ch.key, ch.floor, ch.top ?? null]);
      const opts = ch.opts ?? this.options.history;
      for (const ev of ch.events) recs.push(eventRec(ev, opts));
    }
    const now = this.options.clock.now();
    for (const [k, id, expiresAt] of idempotency.entries())
      if (expiresAt > now) recs.push(['i', k, id, expiresAt]);
    const live = new Set<string>();
    for (const s of sessions.entries()) {
      live.add(s.sessionId);
      recs.push(['s', s]);
    }
    for (const [session, q] of queue.entries())
      if (live.has(session)) for (const item of q.items) recs.push(['q', session, item]);
    const dump = pending.dump();
    if (dump.puts.length > 0) recs.push(['p', dump]);
    return recs;
  }

  private async restore(): Promise<void> {
    const size = await stat(this.path).then(
      (s) => s.size,
      () => -1,
    );
    if (size < 0) return;
    const now = this.options.clock.now();
    const lines = createInterface({ input: createReadStream(this.path, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.length === 0) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (!Array.isArray(parsed)) {
        // A torn last line (a crash in the middle of a write), or damage: skipped.
        this.counters.skippedLines++;
        continue;
      }
      const r = parsed as unknown[];
      this.counters.restored++;
      await this.apply(r, now);
    }
    this.options.logger.info(
      { path: this.path, records: this.counters.restored, skipped: this.counters.skippedLines },
      'state restored',
    );
  }

  /** Applies one record of the log to the state (an unknown kind is counted as skipped). */
  private async apply(r: unknown[], now: number): Promise<void> {
    const { history, idempotency, sessions, queue, pending } = this.state;
    switch (r[0]) {
      case 'c':
        history.restoreChannel(r[1] as string, r[2] as string, (r[3] as string | null) ?? undefined);
        break;
      case 'e':
        history.restoreEvent(
          {
            key: r[1] as string,
            id: r[2] as string,
            type: r[3] as string,
            timestamp: r[4] as number,
            frame: r[5] as string,
            publisher: undefined,
            ...(r[8] !== undefined ? { sealed: r[8] as string } : {}),
          },
          now,
          { size: r[6] as number, ttlMs: r[7] as number },
        );
        break;
      case 't':
        history.restoreSkipped(r[1] as string, r[2] as string);
        break;
      case 'i':
        if ((r[3] as number) > now) idempotency.restore(r[1] as string, r[2] as string, r[3] as number);
        break;
      case 's': {
        const s = r[1] as SessionSnapshot;
        // Nobody is connected after a restart: it waits for its resume, at most one TTL from now.
        const expiresAt = Math.min(s.expiresAt, now + this.options.sessionTtlMs);
        if (expiresAt > now) await sessions.save({ ...s, live: false, expiresAt });
        else await sessions.delete(s.sessionId);
        break;
      }
      case 'd':
        await sessions.delete(r[1] as string);
        break;
      case 'q':
        await queue.push(r[1] as string, r[2] as QueuedFrame);
        break;
      case 'Q':
        await queue.clear(r[1] as string);
        break;
      case 'p':
        await pending.write(r[1] as PendingBatch);
        break;
      case 'x':
        await pending.take(r[1] as string);
        break;
      default:
        this.counters.skippedLines++;
    }
  }
}

/** Appends the records as JSON lines, a slice at a time; resolves with the bytes written. */
async function writeRecords(handle: FileHandle, recs: readonly Rec[]): Promise<number> {
  let bytes = 0;
  for (let i = 0; i < recs.length; i += SLICE) {
    let text = '';
    const end = Math.min(recs.length, i + SLICE);
    for (let j = i; j < end; j++) text += JSON.stringify(recs[j]) + '\n';
    const buf = Buffer.from(text, 'utf8');
    await handle.writeFile(buf);
    bytes += buf.length;
  }
  return bytes;
}
