/**
 * The embedded engine's idle shutdown (APIX_EMBEDDED_DB_IDLE_CLOSE_MS): after the idle time with no
 * statement the thread ends (its memory returned), the next statement starts it again and finds every
 * committed row; nothing is shut down under a running transaction or with statements waiting; readiness
 * does not wake it. Time is a ManualClock: the test moves it, not the wall clock.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/clock.ts';
import { PGliteThread } from '../../src/store/pglite-thread.ts';
import { createDatabase } from '../../src/store/database.ts';
import { pgliteTemplate } from '../support/databases.ts';
import { waitFor } from '../support/wait.ts';

describe('embedded database: shut down when idle, started again on demand', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-pgidle-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('suspends after the idle time, resumes for the next statement with the data intact', async () => {
    const clock = new ManualClock();
    const events: string[] = [];
    const thread = await PGliteThread.open({ dataDir: join(dir, 'a') }, undefined, {
      idleCloseMs: 1000,
      clock,
      onIdle: (state) => events.push(state),
    });
    try {
      await thread.exec('CREATE TABLE t (id int PRIMARY KEY, s text); INSERT INTO t VALUES (1, $$one$$)');
      clock.advance(999);
      assert.equal(thread.suspended, false, 'not before the idle time');
      clock.advance(1);
      await waitFor(() => thread.suspended, 60_000, 'the idle shutdown');
      assert.deepEqual(events, ['suspended']);

      // Two statements asked at once while suspended: one start, both answered in order.
      const [a, b] = await Promise.all([
        thread.query<{ s: string }>('SELECT s FROM t WHERE id = 1'),
        thread.query('INSERT INTO t VALUES (2, $$two$$)'),
      ]);
      assert.equal(a.rows[0]?.s, 'one');
      assert.equal(b.affectedRows, 1);
      assert.deepEqual(events, ['suspended', 'resumed']);
      assert.equal(thread.suspended, false);

      // A transaction that spans the idle time is not cut: the timer only runs while nothing is pending.
      await thread.transaction(async (tx) => {
        clock.advance(5000);
        await tx.query('INSERT INTO t VALUES (3, $$three$$)');
      });
      assert.equal(thread.suspended, false);
      clock.advance(1000);
      await waitFor(() => thread.suspended, 60_000, 'the second idle shutdown');
      const ids = (await thread.query<{ id: number }>('SELECT id FROM t ORDER BY id')).rows.map((r) => r.id);
      assert.deepEqual(ids, [1, 2, 3]);
    } finally {
      await thread.close();
    }
    assert.equal(thread.closed, true);
    assert.equal(thread.suspended, false);
  });

  it('a suspended database reports ready without being woken, and closes without starting', async () => {
    const dataDir = join(dir, 'b');
    cpSync(join(await pgliteTemplate(), 'pgdata'), join(dataDir, 'pgdata'), { recursive: true });
    const db = await createDatabase({ dataDir, embeddedIdleCloseMs: 50 });
    try {
      assert.equal(await db.ping(), true);
      // Real (short) idle time here: createDatabase takes no clock. The pings must not wake the engine.
      await waitFor(() => db.suspended === true, 60_000, 'the idle shutdown');
      assert.equal(await db.ping(), true);
      assert.equal(db.suspended, true, 'ping did not start the engine');
      assert.equal(await db.prisma.organization.count(), 0, 'a query through Prisma starts it again');
      assert.equal(db.suspended, false);
    } finally {
      await db.close();
    }
    assert.equal(db.suspended, false);
  });
});
