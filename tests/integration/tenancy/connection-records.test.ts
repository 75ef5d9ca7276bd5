/**
 * Connection records are keyed like the gateway's sessions, by (organization, user, session id) (issue
 * 12, hole 9): two organizations' users who both pick the session id `tab-1` (README's own example) keep
 * two rows, and the migration that introduced the key keeps the rows written before it. On PostgreSQL and
 * PGlite.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HookBus } from '../../../src/hooks.ts';
import { ManualClock } from '../../../src/clock.ts';
import { createRecordRepositories } from '../../../src/store/index.ts';
import type { RecordRepositories } from '../../../src/store/index.ts';
import { attachRecordHooks } from '../../../src/store/record-hooks.ts';
import { ConnectionRecords } from '../../../src/store/connection-records.ts';
import { createDatabase } from '../../../src/store/database.ts';
import { DEFAULT_MIGRATIONS_DIR, loadMigrations, migrate } from '../../../src/store/migrate.ts';
import { databaseTargets } from '../../support/databases.ts';
import type { OpenedDatabase } from '../../support/databases.ts';
import { createTestPostgres } from '../../support/postgres.ts';
import { testConnection, testPrincipal } from '../../support/connection-info.ts';
import { runCli } from '../../support/process.ts';

for (const target of databaseTargets) {
  describe(`connection records per organization (${target.kind})`, () => {
    let opened: OpenedDatabase;
    let skip: string | undefined;
    let repos: RecordRepositories;
    let bus: HookBus;
    const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
    before(async () => {
      skip = await target.skipReason();
      if (skip) return;
      opened = await target.open();
      repos = createRecordRepositories(opened.db.prisma, { clock, flushIntervalMs: 600_000, cacheMs: 5_000 });
      bus = new HookBus((name, err) => assert.fail(`hook ${name} threw: ${String(err)}`));
      attachRecordHooks(bus, repos);
    });
    after(async () => {
      if (skip) return;
      await repos.close();
      await opened.cleanup();
    });

    test('acme/alice and globex/eve both connect as tab-1: two rows, each in its organization', async (t) => {
      if (skip) return t.skip(skip);
      const alice = testConnection('acme', 'tab-1', 'conn-alice', {
        principal: testPrincipal('acme', 'alice'),
        connectedAt: clock.now(),
        channels: ['agent:a'],
      });
      bus.emit('onConnect', { connection: alice, resumed: false });
      await repos.flush();
      clock.advance(1_000);
      const eve = testConnection('globex', 'tab-1', 'conn-eve', {
        principal: testPrincipal('globex', 'eve'),
        connectedAt: clock.now(),
        channels: ['agent:g'],
      });
      bus.emit('onConnect', { connection: eve, resumed: false });
      await repos.flush();

      const acmeRows = await repos.connections.listByOrganization('acme');
      assert.deepEqual(
        acmeRows.map((r) => [r.sessionId, r.userId, r.status, r.channels]),
        [['tab-1', 'alice', 'CONNECTED', ['agent:a']]],
      );
      const globexRows = await repos.connections.listByOrganization('globex');
      assert.deepEqual(
        globexRows.map((r) => [r.sessionId, r.userId]),
        [['tab-1', 'eve']],
      );
      // A status change of one is not the other's.
      bus.emit('onDisconnect', { connection: eve, code: 1000, reason: 'bye', status: 'DISCONNECTED' });
      bus.emit('onSessionEnd', {
        orgId: 'globex',
        userId: 'eve',
        sessionId: 'tab-1',
        status: 'DISCONNECTED',
      });
      await repos.flush();
      const a = await repos.connections.get({ orgId: 'acme', userId: 'alice', sessionId: 'tab-1' });
      const g = await repos.connections.get({ orgId: 'globex', userId: 'eve', sessionId: 'tab-1' });
      assert.equal(a?.status, 'CONNECTED');
      assert.equal(g?.status, 'DISCONNECTED');

      if (opened.postgres) {
        // What an operator sees: `apix connections list --org acme` still has acme's tab-1.
        const dataDir = mkdtempSync(join(tmpdir(), 'apix-conn-cli-'));
        try {
          const r = runCli(['connections', 'list', '--org', 'acme'], {
            DATABASE_URL: opened.postgres.url,
            APIX_DATA_DIR: dataDir,
          });
          assert.equal(r.status, 0, r.stderr);
          assert.match(r.stdout, /^tab-1 {2}CONNECTED {2}user=alice /m, r.stdout);
          assert.doesNotMatch(r.stdout, /eve/, r.stdout);
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      }
    });

    test('statements on the engine, a few rows each: every row stored; past the bound, sessions are refused and counted', async (t) => {
      if (skip) return t.skip(skip);
      const records = new ConnectionRecords(opened.db.prisma, {
        maxPending: 5,
        maxRowsPerStatement: 2,
        execute: (sql, params) => opened.db.withRawSession((session) => session.query(sql, params)),
      });
      const conns = Array.from({ length: 7 }, (_, i) =>
        testConnection('bound-org', `s-${i}`, `c-${i}`, {
          principal: testPrincipal('bound-org', `u-${i}`),
          connectedAt: clock.now(),
          channels: ['agent:b'],
        }),
      );
      for (const c of conns) records.connected(c);
      assert.equal(records.pendingCount, 5, 'the pending map holds its bound');
      assert.equal(records.dropped, 2, 'the two past it are counted');
      await records.flush();
      assert.equal(records.pendingCount, 0);
      const rows = await records.listByOrganization('bound-org');
      assert.deepEqual(rows.map((r) => r.sessionId).sort(), ['s-0', 's-1', 's-2', 's-3', 's-4']);
      // Updates take the same path: a disconnect of one of them, in a statement of its own chunk.
      const ref = { orgId: 'bound-org', userId: 'u-1', sessionId: 's-1' };
      records.statusChanged(ref, 'c-1', 'DISCONNECTED', clock.now());
      await records.flush();
      const s1 = await records.get(ref);
      assert.equal(s1?.status, 'DISCONNECTED');
    });
  });
}

describe('the connection-key migration keeps existing rows', () => {
  for (const kind of ['postgres', 'pglite'] as const) {
    test(kind, async (t) => {
      const target = databaseTargets.find((d) => d.kind === kind)!;
      const skip = await target.skipReason();
      if (skip) return t.skip(skip);
      // A database at the first migration only, with rows in the old shape (one without a user).
      const onlyInit = mkdtempSync(join(tmpdir(), 'apix-mig-'));
      const dataDir = mkdtempSync(join(tmpdir(), 'apix-mig-data-'));
      const first = loadMigrations()[0]!.name;
      cpSync(join(DEFAULT_MIGRATIONS_DIR, first), join(onlyInit, first), { recursive: true });
      const postgres = kind === 'postgres' ? await createTestPostgres() : undefined;
      // Not from the build's template: that one has every migration applied.
      const db = await createDatabase({ databaseUrl: postgres?.url, dataDir, embeddedFromTemplate: false });
      try {
        await migrate(db, { migrationsDir: onlyInit });
        await db.prisma.$executeRawUnsafe(
          `INSERT INTO "ApiXConnection" ("id", "organizationId", "userId", "sessionId", "clientType", "channels",
             "metadata", "lastHeartbeat", "status")
           VALUES ('r1', 'acme', 'alice', 'tab-1', 'WEB_APP', ARRAY['agent:a'], '{}', now(), 'CONNECTED'),
                  ('r2', 'acme', NULL, 'legacy', 'WEB_APP', ARRAY[]::text[], '{}', now(), 'DISCONNECTED')`,
        );
        const result = await migrate(db);
        assert.ok(result.applied.length >= 1, 'the later migrations were applied');
        const rows = await db.prisma.apiXConnection.findMany({ orderBy: { id: 'asc' } });
        assert.deepEqual(
          rows.map((r) => [r.id, r.organizationId, r.userId, r.sessionId, r.status]),
          [
            ['r1', 'acme', 'alice', 'tab-1', 'CONNECTED'],
            ['r2', 'acme', '', 'legacy', 'DISCONNECTED'],
          ],
        );
        // The new key: globex's tab-1 is another row.
        await db.prisma.apiXConnection.create({
          data: {
            organizationId: 'globex',
            userId: 'eve',
            sessionId: 'tab-1',
            clientType: 'WEB_APP',
            channels: [],
            metadata: {},
            lastHeartbeat: new Date(),
            status: 'CONNECTED',
          },
        });
        assert.equal(await db.prisma.apiXConnection.count({ where: { sessionId: 'tab-1' } }), 2);
      } finally {
        await db.close();
        await postgres?.drop();
        rmSync(onlyInit, { recursive: true, force: true });
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
