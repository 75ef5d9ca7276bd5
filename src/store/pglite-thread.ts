/**
 * The embedded PostgreSQL (PGlite) on a worker thread, behind the part of PGlite's interface that APIX
 * and pglite-prisma-adapter use (`query`, `exec`, `transaction`, `close`).
 *
 * Why: PGlite runs every statement synchronously on the thread that owns it. In the gateway's thread, a
 * batch of audit entries or connection records held every handshake and delivery for its whole length
 * (10-30 ms a batch, more in a connect storm). On its own thread it runs beside the event loop, using the
 * time the event loop leaves idle.
 *
 * How: the worker (src/store/pglite-worker.mjs) owns the engine and answers each statement with the rows as
 * PostgreSQL's text; this side parses them exactly as PGlite would (the caller's parsers, then the array
 * types, then PGlite's defaults), so results are identical. Statements and transactions run one at a time
 * (a transaction holds the engine until it ends, as in PGlite), in the order they were asked.
 */
import { Worker } from 'node:worker_threads';
import { messages, types, type Results } from '@electric-sql/pglite';
import { InternalError } from '@apix/protocol/internal-errors';
import { systemClock, type Clock, type TimerHandle } from '../clock.ts';
import type { PendingEntry } from '../audit/chain-batch.mjs';

export interface WorkerStart {
  readonly dataDir: string;
  readonly sharedBuffersMb?: number | undefined;
}

export interface RawResult {
  readonly fields: ReadonlyArray<{ readonly name: string; readonly dataTypeID: number }>;
  /** Values as PostgreSQL's text (null for NULL). */
  readonly rows: unknown[][];
  readonly affectedRows?: number | undefined;
  /** The command tag (a COMMIT of an aborted transaction answers ROLLBACK). */
  readonly command?: string | undefined;
}

export interface ErrorData {
  readonly message: string;
  /** A PostgreSQL error (PGlite's DatabaseError): its fields (code, detail, constraint, ...) are kept. */
  readonly database: boolean;
  readonly fields: Record<string, string>;
}

export type PgliteRequest =
  | {
      readonly id: number;
      readonly op: 'query';
      readonly sql: string;
      readonly params?: readonly unknown[];
      readonly csv?: string;
    }
  | { readonly id: number; readonly op: 'exec'; readonly sql: string }
  | {
      readonly id: number;
      readonly op: 'audit';
      readonly entries: readonly PendingEntry[];
      readonly replay: boolean;
    }
  | { readonly id: number; readonly op: 'close' };

export type PgliteResponse =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: ErrorData };

type Parser = (text: string, typeId?: number) => unknown;

export interface ThreadQueryOptions {
  readonly rowMode?: 'array' | 'object';
  readonly parsers?: Readonly<Record<number, Parser>>;
  /** CSV text for a `COPY ... FROM '/dev/blob'` statement. */
  readonly csv?: string;
}

export interface ThreadTransaction {
  query<T>(sql: string, params?: readonly unknown[], options?: ThreadQueryOptions): Promise<Results<T>>;
  exec(sql: string, options?: ThreadQueryOptions): Promise<Array<Results>>;
  rollback(): Promise<void>;
  readonly closed: boolean;
}

const defaultParsers = types.parsers as unknown as Record<number, Parser>;

export interface PGliteThreadOptions {
  /**
   * Ends the thread after this long without a statement, and starts it again (about half a second) for the
   * next one: an idle gateway then holds no PostgreSQL engine (some 50-110 MB of WebAssembly memory and
   * code). 0 or undefined: never.
   */
  readonly idleCloseMs?: number | undefined;
  readonly clock?: Clock | undefined;
  /** Told each time the thread ends for idleness and each time it starts again (metrics, logs). */
  readonly onIdle?: ((state: 'suspended' | 'resumed') => void) | undefined;
}

export class PGliteThread {
  /** Undefined while suspended for idleness (and after close). */
  private worker: Worker | undefined;
  private waking: Promise<void> | undefined;
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  /** Top-level statements and transactions, one at a time, in order. */
  private lock: Promise<unknown> = Promise.resolve();
  /** Statements and transactions asked for and not finished (queued on the lock or running). */
  private pending = 0;
  private idleTimer: TimerHandle | undefined;
  /** Array types' parsers, as PGlite makes them at start. */
  private readonly arrayParsers: Record<number, Parser> = {};
  private stopped: Error | undefined;
  private closing: Promise<void> | undefined;
  private readonly clock: Clock;

  /** Starts the thread and opens (or creates) the database in `dataDir`. */
  static async open(
    start: WorkerStart,
    onStop?: (err: Error) => void,
    options: PGliteThreadOptions = {},
  ): Promise<PGliteThread> {
    const thread = new PGliteThread(start, onStop, options);
    try {
      await thread.wake();
      await thread.loadArrayTypes();
    } catch (err) {
      await thread.worker?.terminate();
      throw err;
    }
    thread.armIdle();
    return thread;
  }

  /** `onStop`: the thread ended without close() (a crash); every call fails from then on. */
  private constructor(
    private readonly start: WorkerStart,
    private readonly onStop: ((err: Error) => void) | undefined,
    private readonly options: PGliteThreadOptions,
  ) {
    this.clock = options.clock ?? systemClock;
  }

  /** Whether the thread is ended for idleness (it starts again on the next statement). */
  get suspended(): boolean {
    return this.worker === undefined && !this.closed;
  }

  /** Starts the thread (and the engine in it) when it is not running. */
  private wake(): Promise<void> {
    if (this.worker) return Promise.resolve();
    this.waking ??= (async () => {
      const worker = this.spawn();
      try {
        await new Promise<unknown>((resolve, reject) => this.calls.set(0, { resolve, reject }));
        this.worker = worker;
      } catch (err) {
        await worker.terminate();
        throw err;
      } finally {
        this.waking = undefined;
      }
    })();
    return this.waking;
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./pglite-worker.mjs', import.meta.url), {
      workerData: this.start,
      // The thread's JavaScript is small (the rows cross as text); a small young generation keeps the
      // garbage of its messages from adding megabytes to the process.
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    worker.on('message', (res: PgliteResponse) => {
      const call = this.calls.get(res.id);
      if (!call) return;
      this.calls.delete(res.id);
      if (res.ok) call.resolve(res.result);
      else call.reject(toError(res.error));
    });
    const stop = (err: Error): void => {
      // A thread ended for idleness (no longer this.worker, not waking) is no failure.
      if (this.worker !== worker && !this.waking) return;
      if (!this.stopped && !this.closing) this.onStop?.(err);
      this.stopped ??= err;
      for (const call of this.calls.values()) call.reject(err);
      this.calls.clear();
    };
    worker.on('error', (err) =>
      stop(new InternalError('APIX_ERR_DB_UNAVAILABLE', `the embedded database stopped: ${err.message}`)),
    );
    worker.on('exit', (code) =>
      stop(new InternalError('APIX_ERR_DB_UNAVAILABLE', `the embedded database thread exited (${code})`)),
    );
    return worker;
  }

  private armIdle(): void {
    const ms = this.options.idleCloseMs;
    if (!ms || this.pending > 0 || this.closed || !this.worker) return;
    this.idleTimer?.cancel();
    this.idleTimer = this.clock.setTimeout(() => {
      this.idleTimer = undefined;
      this.lock = this.lock.then(() => this.suspendIfIdle()).catch(() => undefined);
    }, ms);
  }

  /** On the lock, so that nothing runs meanwhile: closes the engine cleanly, then ends its thread. */
  private async suspendIfIdle(): Promise<void> {
    const worker = this.worker;
    if (this.pending > 0 || this.closed || !worker) return;
    await this.call({ id: 0, op: 'close' });
    this.worker = undefined;
    this.options.onIdle?.('suspended');
    await worker.terminate();
  }

  get closed(): boolean {
    return this.stopped !== undefined || this.closing !== undefined;
  }

  query<T>(sql: string, params?: readonly unknown[], options?: ThreadQueryOptions): Promise<Results<T>> {
    return this.exclusive(() => this.runQuery<T>(sql, params, options));
  }

  exec(sql: string, options?: ThreadQueryOptions): Promise<Array<Results>> {
    return this.exclusive(() => this.runExec(sql, options));
  }

  /**
   * Appends a batch of audit entries to their chains in one transaction on the engine's thread, which also
   * hashes them and makes the rows (src/audit/chain-batch.mjs): this thread only hands the entries over.
   * Resolves how many rows were stored (a replay skips those already stored).
   */
  appendAudit(entries: readonly PendingEntry[], replay: boolean): Promise<number> {
    return this.exclusive(async () => (await this.call({ id: 0, op: 'audit', entries, replay })) as number);
  }

  /** BEGIN, `fn`, COMMIT (ROLLBACK when it throws); nothing else runs on the engine meanwhile. */
  transaction<T>(fn: (tx: ThreadTransaction) => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      await this.runExec('BEGIN');
      let closed = false;
      const open = (): void => {
        if (closed) throw new InternalError('APIX_ERR_CLOSED', 'Transaction is closed');
      };
      const tx: ThreadTransaction = {
        query: async <R>(sql: string, params?: readonly unknown[], options?: ThreadQueryOptions) => {
          open();
          return this.runQuery<R>(sql, params, options);
        },
        exec: async (sql, options) => {
          open();
          return this.runExec(sql, options);
        },
        rollback: async () => {
          open();
          closed = true;
          // pglite-prisma-adapter calls this without awaiting it: with the thread gone there is nothing to
          // roll back, and a rejection here would be unhandled.
          if (this.stopped) return;
          await this.runExec('ROLLBACK');
        },
        get closed() {
          return closed;
        },
      };
      try {
        const result = await fn(tx);
        if (!closed) {
          closed = true;
          const [commit] = await this.runExec('COMMIT');
          if ((commit as { command?: string } | undefined)?.command === 'ROLLBACK')
            throw toError({
              message: 'current transaction is aborted: rolled back at COMMIT',
              database: true,
              fields: { code: '25P02', severity: 'ERROR' },
            });
        }
        return result;
      } catch (err) {
        if (!closed) {
          closed = true;
          await this.runExec('ROLLBACK').catch(() => undefined);
        }
        throw err;
      }
    });
  }

  /** Closes the engine (flushing it to disk) and ends the thread. Idempotent. */
  close(): Promise<void> {
    this.idleTimer?.cancel();
    this.closing ??= (async () => {
      // After the statements already asked for (a suspended thread is not woken just to be closed).
      await this.lock;
      const worker = this.worker;
      if (!worker) return;
      try {
        if (!this.stopped) await this.call({ id: 0, op: 'close' });
      } finally {
        this.worker = undefined;
        await worker.terminate();
      }
    })();
    return this.closing;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.pending++;
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    const run = this.lock
      .then(async () => {
        if (!this.worker && !this.stopped && !this.closing) {
          await this.wake();
          this.options.onIdle?.('resumed');
        }
        return fn();
      })
      .finally(() => {
        this.pending--;
        this.armIdle();
      });
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async runQuery<T>(
    sql: string,
    params: readonly unknown[] | undefined,
    options: ThreadQueryOptions | undefined,
  ): Promise<Results<T>> {
    const raw = (await this.call({
      id: 0,
      op: 'query',
      sql,
      ...(params && params.length ? { params } : {}),
      ...(options?.csv !== undefined ? { csv: options.csv } : {}),
    })) as RawResult;
    return this.parse<T>(raw, options);
  }

  private async runExec(sql: string, options?: ThreadQueryOptions): Promise<Array<Results>> {
    const raws = (await this.call({ id: 0, op: 'exec', sql })) as RawResult[];
    return raws.map((r) => this.parse(r, options));
  }

  private call(req: PgliteRequest): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.stopped);
    const worker = this.worker;
    if (!worker)
      return Promise.reject(new InternalError('APIX_ERR_CLOSED', 'the embedded database is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      try {
        worker.postMessage({ ...req, id });
      } catch (err) {
        // A parameter that cannot be cloned: this call fails, the others go on.
        this.calls.delete(id);
        reject(err as Error);
      }
    });
  }

  /** Text to values, as PGlite's own parseType: the caller's parser, else the array types', else PGlite's. */
  private parse<T>(raw: RawResult, options: ThreadQueryOptions | undefined): Results<T> {
    const parsers = raw.fields.map(
      (f) =>
        options?.parsers?.[f.dataTypeID] ?? this.arrayParsers[f.dataTypeID] ?? defaultParsers[f.dataTypeID],
    );
    const typeIds = raw.fields.map((f) => f.dataTypeID);
    const value = (v: unknown, i: number): unknown => {
      if (v === null || v === undefined) return null;
      const p = parsers[i];
      return p ? p(v as string, typeIds[i]!) : v;
    };
    const rows =
      options?.rowMode === 'array'
        ? raw.rows.map((r) => r.map(value))
        : raw.rows.map((r) => {
            const row: Record<string, unknown> = {};
            for (let i = 0; i < raw.fields.length; i++) row[raw.fields[i]!.name] = value(r[i], i);
            return row;
          });
    return {
      rows: rows as T[],
      fields: raw.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })),
      ...(raw.affectedRows !== undefined ? { affectedRows: raw.affectedRows } : {}),
      ...(raw.command !== undefined ? { command: raw.command } : {}),
    } as Results<T>;
  }

  private async loadArrayTypes(): Promise<void> {
    const r = await this.runQuery<{ oid: number; typarray: number }>(
      `SELECT b.oid, b.typarray FROM pg_catalog.pg_type a LEFT JOIN pg_catalog.pg_type b ON b.oid = a.typelem
       WHERE a.typcategory = 'A' GROUP BY b.oid, b.typarray ORDER BY b.oid`,
      undefined,
      undefined,
    );
    for (const { oid, typarray } of r.rows)
      this.arrayParsers[typarray] = (text) =>
        types.arrayParser(text, (this.arrayParsers[oid] ?? defaultParsers[oid]) as Parser, typarray);
  }
}

function toError(data: ErrorData): Error {
  if (!data.database) return new InternalError('APIX_ERR_DB_UNAVAILABLE', data.message);
  const err = new messages.DatabaseError(data.message, 0, 'error');
  Object.assign(err, data.fields);
  return err;
}
