/**
 * The database: PostgreSQL when a `postgres://` URL is given (pg pool + @prisma/adapter-pg), else
 * embedded PGlite persisted in `<dataDir>/pgdata` (pglite-prisma-adapter). Both run the same schema and
 * migrations. One place creates the Prisma client; components receive it (STYLE.md 2).
 */
import type { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { openEmbedded, takePrestarted } from './embedded-open.ts';
import { PrismaClient } from '../generated/prisma/client.ts';
import { silentLogger, type StoreLogger } from './log.ts';
import { InternalError } from '@apix/protocol/internal-errors';
import type { PendingEntry } from '../audit/chain-batch.mjs';

export type { PrismaClient } from '../generated/prisma/client.ts';

export type DatabaseKind = 'postgres' | 'pglite';

/** A single raw SQL session: multi-statement `exec` (simple protocol) and parameterised `query`. */
export interface RawSqlSession {
  exec(sql: string): Promise<void>;
  query<Row extends Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
}

/** One transaction of raw statements, for the batch writers that need neither Prisma's models nor its plans. */
export interface SqlTransaction {
  query<Row extends Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
}

export interface Database {
  readonly prisma: PrismaClient;
  readonly kind: DatabaseKind;
  /** Where the data lives, for messages: the URL without credentials, or the PGlite directory. */
  readonly location: string;
  /** True when a trivial query answers within `timeoutMs`; never throws (for /readyz). */
  ping(timeoutMs?: number): Promise<boolean>;
  /** Embedded PGlite only: its engine is shut down for idleness (started again by the next statement). */
  readonly suspended?: boolean;
  /**
   * Runs `fn` on one dedicated connection (PostgreSQL) or on the embedded engine (PGlite), for work
   * Prisma cannot express: multi-statement migration scripts inside one transaction.
   */
  withRawSession<T>(fn: (session: RawSqlSession) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in one transaction (committed when it resolves, rolled back when it throws): through Prisma's
   * interactive transaction on PostgreSQL, on the engine itself on PGlite (which holds the engine for it,
   * so Prisma's own queries wait and never interleave).
   */
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  /**
   * Embedded PGlite only: appends a batch of audit entries to their chains on the engine's own thread,
   * which hashes them, makes the rows and stores them by COPY (src/audit/chain-batch.mjs); the caller's
   * thread only hands the entries over. Resolves how many rows were stored. Undefined on PostgreSQL, whose
   * work runs in its own processes: the audit logger runs the same code in a transaction there.
   */
  readonly appendAudit?: (batch: readonly PendingEntry[], replay: boolean) => Promise<number>;
  /** Disconnects Prisma and closes the pool or the embedded engine (flushing it to disk). Idempotent. */
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** A `postgres://` URL; unset: embedded PGlite. */
  readonly databaseUrl?: string | undefined;
  /** APIX_DATA_DIR; PGlite keeps its files in `<dataDir>/pgdata`. */
  readonly dataDir: string;
  /**
   * PGlite's shared_buffers in MiB (unset: left as it is). Its pages live in the gateway's heap, so they
   * are what the records cost in memory per connection; 16 MiB holds the hot index pages, the OS page
   * cache the rest (PostgreSQL's default, 128 MiB, grew the process by 3-4 KB per connection). A start
   * parameter: it holds from this open on, nothing is written to the data directory.
   */
  readonly embeddedBuffersMb?: number | undefined;
  /** Embedded PGlite only: false makes a new database by initdb instead of copying the build's template. */
  readonly embeddedFromTemplate?: boolean | undefined;
  /** Embedded PGlite only: see PGliteThreadOptions.idleCloseMs (default: never). */
  readonly embeddedIdleCloseMs?: number | undefined;
  /** Pool size on PostgreSQL (default 10). */
  readonly poolSize?: number;
  /** Client-side limit on one query, so that a dead network fails writes instead of hanging them. */
  readonly queryTimeoutMs?: number;
  readonly logger?: StoreLogger;
}

export { DatabaseInUseError } from './embedded-open.ts';

/**
 * Prisma caches the compiled plan of every query and batch shape, up to 1000 of each by default, with no
 * bound on their size. The record writers' batches (`createMany` of N rows, a transaction of N updates) have
 * a new shape for every N, and a plan of hundreds of rows weighs megabytes: the soak saw a node's heap
 * grow by about 1 MB/s, to gigabytes (tests: tests/integration/store-plan-cache.test.ts). Off: plans are
 * compiled per call, off the delivery path (records are written in the background).
 */
const QUERY_PLAN_CACHE = 0;

export async function createDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl ? createPostgres(options, options.databaseUrl) : createPglite(options);
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new InternalError('APIX_ERR_TIMEOUT', `timed out after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function createPostgres(options: DatabaseOptions, url: string): Promise<Database> {
  // Loaded only here: `pg` probes for Cloudflare Workers when it loads (a `new Response`, which loads
  // undici), 150-700 ms of an embedded node's start for a driver it never uses.
  const [{ default: pg }, { PrismaPg }] = await Promise.all([import('pg'), import('@prisma/adapter-pg')]);
  const logger = options.logger ?? silentLogger;
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    query_timeout: options.queryTimeoutMs ?? 15_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its server emits on the pool; without a listener that would crash the process.
  pool.on('error', (err) => logger.warn({ err }, 'postgres: idle connection lost'));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool), queryPlanCacheMaxSize: QUERY_PLAN_CACHE });
  let closed: Promise<void> | undefined;
  return {
    prisma,
    kind: 'postgres',
    location: redactUrl(url),
    async ping(timeoutMs = 2_000) {
      try {
        await withTimeout(pool.query('SELECT 1'), timeoutMs);
        return true;
      } catch {
        return false;
      }
    },
    transaction(fn) {
      return prisma.$transaction(
        (tx) =>
          fn({
            query: (sql, params = []) => tx.$queryRawUnsafe(sql, ...params),
          }),
        { maxWait: 10_000, timeout: 30_000 },
      );
    },
    async withRawSession(fn) {
      const client = await pool.connect();
      try {
        return await fn({
          exec: async (sql) => void (await client.query(sql)),
          query: async (sql, params) => (await client.query(sql, params as unknown[] | undefined)).rows,
        });
      } finally {
        client.release();
      }
    },
    close() {
      closed ??= (async () => {
        await prisma.$disconnect();
        await pool.end();
      })();
      return closed;
    },
  };
}

async function createPglite(options: DatabaseOptions): Promise<Database> {
  // Started already by `apix serve` (prestartEmbedded) when it could, else now.
  const embedded = {
    sharedBuffersMb: options.embeddedBuffersMb,
    idleCloseMs: options.embeddedIdleCloseMs,
    fromTemplate: options.embeddedFromTemplate,
  };
  const opened = await (takePrestarted(options.dataDir, embedded) ?? openEmbedded(options.dataDir, embedded));
  const { dir, engine, releaseLock } = opened;
  opened.onIdle = (state) =>
    (options.logger ?? silentLogger).info(
      state === 'suspended'
        ? 'the embedded database is shut down while idle (started again by the next statement)'
        : 'the embedded database is started again',
    );
  opened.onStop = (err) =>
    (options.logger ?? silentLogger).error(
      { err },
      'the embedded database stopped; records and the audit trail now fail (the audit spills to its file)',
    );
  const prisma = new PrismaClient({
    // The adapter uses query/exec/transaction, which the thread provides with PGlite's own semantics.
    adapter: new PrismaPGlite(engine as unknown as PGlite),
    queryPlanCacheMaxSize: QUERY_PLAN_CACHE,
  });
  let closed: Promise<void> | undefined;
  return {
    prisma,
    kind: 'pglite',
    location: dir,
    get suspended() {
      return engine.suspended;
    },
    async ping() {
      if (engine.closed) return false;
      // Shut down for idleness, and started again by the next statement: not woken up just to answer.
      if (engine.suspended) return true;
      try {
        await engine.query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    transaction(fn) {
      return engine.transaction((tx) =>
        fn({
          query: async <Row>(sql: string, params?: readonly unknown[]) =>
            (await tx.query<Row>(sql, params)).rows,
        } as SqlTransaction),
      );
    },
    appendAudit: (batch, replay) => engine.appendAudit(batch, replay),
    async withRawSession(fn) {
      return fn({
        exec: async (sql) => void (await engine.exec(sql)),
        query: async <Row>(sql: string, params?: readonly unknown[]) =>
          (await engine.query<Row>(sql, params)).rows,
      } as RawSqlSession);
    },
    close() {
      closed ??= (async () => {
        try {
          await prisma.$disconnect();
          if (!engine.closed) await engine.close();
        } finally {
          releaseLock();
        }
      })();
      return closed;
    },
  };
}
