/**
 * The embedded PGlite on its worker thread (src/store/pglite-thread.ts) answers as PGlite itself does:
 * the same values for every type (with and without the caller's parsers), PostgreSQL errors with their
 * fields, transactions that hold the engine, roll back on a throw and refuse a commit after an error.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite, messages } from '@electric-sql/pglite';
import { PGliteThread } from '../../src/store/pglite-thread.ts';

const SETUP = `
  CREATE TYPE mood AS ENUM ('calm', 'busy');
  CREATE TABLE t (id int PRIMARY KEY, big bigint, n numeric, f float8, ok boolean, s text, j json, jb jsonb,
    ts timestamp(3), tz timestamptz, d date, b bytea, tags text[], ints int[], m mood, ms mood[]);
  INSERT INTO t VALUES
    (1, 9007199254740993, 12.50, 1.5, true, 'a "q", b', '{"x":[1,2]}', '{"b":1,"a":null}',
     '2025-04-01 12:00:00.123', '2025-04-01 12:00:00+02', '2025-04-01', '\\xdeadbeef', '{a,"b c",NULL}',
     '{1,2,3}', 'busy', '{calm,busy}'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);`;

describe('PGlite on a worker thread', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-pgthread-'));
  let direct: PGlite;
  let thread: PGliteThread;
  before(async () => {
    direct = new PGlite();
    await direct.exec(SETUP);
    thread = await PGliteThread.open({ dataDir: join(dir, 'pgdata') });
    await thread.exec(SETUP);
  });
  after(async () => {
    await thread.close();
    await direct.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs at a lower priority than the event loop (nice +10, that thread only)', () => {
    // Field 19 of /proc/<pid>/task/<tid>/stat is the thread's nice value (Linux keeps one per thread).
    const niceOf = (path: string): number => {
      const stat = readFileSync(path, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    const main = niceOf(`/proc/self/task/${process.pid}/stat`);
    const threads = readdirSync('/proc/self/task').map((tid) => niceOf(`/proc/self/task/${tid}/stat`));
    assert.ok(
      threads.includes(Math.min(19, main + 10)),
      `a thread at nice ${Math.min(19, main + 10)} (main thread ${main}): ${threads.join(',')}`,
    );
    assert.equal(niceOf('/proc/self/stat'), main, 'the process itself keeps its priority');
  });

  it('returns what PGlite returns, for every type, in both row modes and with custom parsers', async () => {
    const sql = 'SELECT * FROM t ORDER BY id';
    assert.deepEqual((await thread.query(sql)).rows, (await direct.query(sql)).rows);
    const arrays = { rowMode: 'array' as const };
    assert.deepEqual((await thread.query(sql, [], arrays)).rows, (await direct.query(sql, [], arrays)).rows);
    // The way pglite-prisma-adapter asks: its own parsers for some types, PGlite's for the others.
    const parsers = {
      1700: (v: string) => `numeric:${v}`,
      1114: (v: string) => `ts:${v}`,
      3802: (v: string) => v,
    };
    const withParsers = { rowMode: 'array' as const, parsers };
    assert.deepEqual(
      (await thread.query(sql, [], withParsers)).rows,
      (await direct.query(sql, [], withParsers)).rows,
    );
    const params = ['x', 42, new Date('2025-01-02T03:04:05.678Z'), null, new Uint8Array([1, 2])];
    const echo = 'SELECT $1::text AS a, $2::int AS b, $3::timestamptz AS c, $4::text AS d, $5::bytea AS e';
    assert.deepEqual((await thread.query(echo, params)).rows, (await direct.query(echo, params)).rows);
    const r = await thread.query('UPDATE t SET s = s WHERE id IN (1, 2)');
    assert.equal(r.affectedRows, 2);
  });

  it('a PostgreSQL error keeps its class and fields', async () => {
    await assert.rejects(thread.query('INSERT INTO t (id) VALUES (1)'), (err: unknown) => {
      assert.ok(err instanceof messages.DatabaseError);
      assert.equal(err.code, '23505');
      assert.equal(err.constraint, 't_pkey');
      return true;
    });
    assert.deepEqual((await thread.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows, [
      { n: 2 },
    ]);
  });

  it('transactions: commit, roll back on a throw, refuse to commit after an error, hold the engine', async () => {
    await thread.transaction(async (tx) => {
      await tx.query(`INSERT INTO t (id, s) VALUES (10, 'kept')`);
    });
    await assert.rejects(
      thread.transaction(async (tx) => {
        await tx.query(`INSERT INTO t (id, s) VALUES (11, 'gone')`);
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    await assert.rejects(
      thread.transaction(async (tx) => {
        await tx.query(`INSERT INTO t (id, s) VALUES (12, 'gone')`);
        await tx.query('SELECT 1/0').catch(() => undefined); // swallowed: the transaction is aborted
      }),
      /aborted/,
    );
    await thread.transaction(async (tx) => {
      await tx.query(`INSERT INTO t (id, s) VALUES (13, 'gone')`);
      await tx.rollback();
    });
    // A statement asked while a transaction is open runs after it ends, never inside it.
    const order: string[] = [];
    let outside: Promise<unknown> | undefined;
    await thread.transaction(async (tx) => {
      outside = thread.query('SELECT count(*)::int AS n FROM t WHERE id = 14').then((r) => {
        order.push(`outside saw ${(r.rows[0] as { n: number }).n}`);
      });
      await tx.query(`INSERT INTO t (id, s) VALUES (14, 'in tx')`);
      await new Promise((resolve) => setTimeout(resolve, 20));
      order.push('tx done');
    });
    await outside;
    assert.deepEqual(order, ['tx done', 'outside saw 1']);
    const ids = (await thread.query<{ id: number }>('SELECT id FROM t WHERE id >= 10 ORDER BY id')).rows;
    assert.deepEqual(
      ids.map((r) => r.id),
      [10, 14],
    );
  });

  it('COPY from CSV text; after close every call fails cleanly', async () => {
    await thread.query(`COPY t (id, s) FROM '/dev/blob' WITH (FORMAT csv)`, [], { csv: '20,"a,b"\n21,\n' });
    assert.deepEqual((await thread.query('SELECT id, s FROM t WHERE id >= 20 ORDER BY id')).rows, [
      { id: 20, s: 'a,b' },
      { id: 21, s: null },
    ]);
    const other = await PGliteThread.open({ dataDir: join(dir, 'other') });
    await other.close();
    assert.equal(other.closed, true);
    await assert.rejects(other.query('SELECT 1'));
  });
});
