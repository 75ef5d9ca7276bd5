/**
 * The audit trail on PostgreSQL and PGlite: an entry for each hook kind, the per-organization hash
 * chain and its verification (altered, removed, truncated), queries, bounds, and the spill file: a real
 * outage (a TCP proxy in front of PostgreSQL, cut and restored) and a restart after one.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AuditLogger, GATEWAY_ORG_ID } from '../../src/audit/audit-logger.ts';
import { attachAuditHooks, AuditAction } from '../../src/audit/audit-hooks.ts';
import { parseAuditQuery, queryAudit } from '../../src/audit/query.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { ManualClock } from '../../src/clock.ts';
import { HookBus } from '../../src/hooks.ts';
import type { Database, PrismaClient } from '../../src/store/database.ts';
import { testConnection, testPeer, testPrincipal } from '../support/connection-info.ts';
import { databaseTargets, type OpenedDatabase } from '../support/databases.ts';
import { viaPort } from '../support/postgres.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

const T0 = Date.parse('2025-04-01T12:00:00Z');

function entry(orgId: string, i: number) {
  return { orgId, actor: `user-${i}`, action: 'admin.test', target: `t${i}`, detail: { i } };
}

for (const target of databaseTargets) {
  const skip = await target.skipReason();
  describe(`audit trail on ${target.kind}`, { skip }, () => {
    let opened: OpenedDatabase;
    let prisma: PrismaClient;
    let db: Database;
    before(async () => {
      opened = await target.open();
      db = opened.db;
      prisma = db.prisma;
    });
    let reopened: Database | undefined;
    after(async () => {
      await reopened?.close();
      await opened?.cleanup();
    });

    const newLogger = (overrides: Partial<ConstructorParameters<typeof AuditLogger>[0]> = {}) =>
      new AuditLogger({ db, dataDir: opened.dataDir, clock: new ManualClock(T0), ...overrides });

    test('text fields round-trip exactly, whatever they hold (CSV quoting on PGlite, jsonb on PostgreSQL)', async () => {
      const audit = newLogger();
      const awkward = [
        { actor: 'a,b', target: 'say "hi", then leave', userAgent: 'line\nbreak\r\nand more' },
        { actor: '""', target: '', userAgent: null },
        { actor: '\\N', target: '\\.', userAgent: 'tab\there, é ✓ \u2028' },
        { actor: 'nul\u0000byte', target: null, userAgent: ',' },
        { actor: 'lone \ud800 surrogate', target: 'x'.repeat(1023) + '\ud83d\ude00', userAgent: 'ok' },
      ];
      for (const [i, a] of awkward.entries())
        audit.record({
          orgId: 'csv-org',
          action: 'admin.test',
          actor: a.actor,
          target: a.target ?? undefined,
          userAgent: a.userAgent ?? undefined,
          detail: { i, quote: '"', comma: ',', nl: '\n', nested: { b: [1, '"x"'], a: null } },
          remoteAddress: i % 2 ? undefined : '::1',
        });
      assert.equal(await audit.close(), true);
      const { entries } = await queryAudit(prisma, { orgId: 'csv-org' });
      assert.equal(entries.length, awkward.length);
      for (const [i, a] of awkward.entries()) {
        const e = entries[i]!;
        assert.deepEqual(
          [e.actor, e.target, e.userAgent, e.remoteAddress],
          [
            a.actor.replace('\u0000', '\uFFFD').replace('\ud800', '\uFFFD'),
            // Clipped at 1024 UTF-16 units, which splits the emoji: its half becomes U+FFFD.
            a.target && a.target.length > 1024 ? a.target.slice(0, 1023) + '\uFFFD' : a.target,
            a.userAgent,
            i % 2 ? null : '::1',
          ],
        );
        assert.deepEqual(e.detail, {
          i,
          quote: '"',
          comma: ',',
          nl: '\n',
          nested: { b: [1, '"x"'], a: null },
        });
      }
      assert.equal((await verifyAuditChain(prisma, 'csv-org')).ok, true);
    });

    test('batches: a full batch is written at once, a partial one waits for the tick', async () => {
      const clock = new ManualClock(T0);
      const audit = new AuditLogger({
        db,
        dataDir: opened.dataDir,
        clock,
        maxBatch: 5,
        flushIntervalMs: 1_000,
      });
      const written = async () => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return audit.counters.written;
      };
      for (let i = 0; i < 4; i++) audit.record(entry('batch-org', i));
      assert.equal(await written(), 0, 'four of five: not yet');
      audit.record(entry('batch-org', 4)); // fills the batch: its write starts
      // Recorded while that write is in flight: they wait for the next full batch or tick, not a
      // transaction of their own right after it.
      for (let i = 5; i < 8; i++) audit.record(entry('batch-org', i));
      for (let i = 0; i < 50 && audit.counters.written < 5; i++) await written();
      assert.equal(audit.counters.written, 5, 'the full batch is written without a tick');
      assert.equal(await written(), 5, 'the partial batch waits');
      clock.advance(1_000);
      for (let i = 0; i < 50 && audit.counters.written < 8; i++) await written();
      assert.equal(audit.counters.written, 8, 'the tick writes it');
      assert.equal(await audit.close(), true);
      assert.equal((await verifyAuditChain(prisma, 'batch-org')).ok, true);
    });

    test('every proxy-call decision is recorded, with where it came from', async () => {
      const audit = newLogger();
      const bus = new HookBus((name, err) => assert.fail(`hook ${name} threw: ${String(err)}`));
      attachAuditHooks(bus, audit);
      const alice = testPrincipal('proxy-org', 'alice');
      const base = { principal: alice, peer: testPeer };
      bus.emit('onProxyDecision', {
        ...base,
        kind: 'connect',
        target: 's1',
        allowed: true,
        source: 'backend',
      });
      bus.emit('onProxyDecision', {
        ...base,
        kind: 'subscribe',
        target: 'agent:bob',
        allowed: false,
        source: 'cache',
        code: 'FORBIDDEN',
        reason: 'not your agent',
      });
      bus.emit('onProxyDecision', {
        ...base,
        kind: 'publish',
        target: 'agent:alice',
        allowed: false,
        source: 'policy',
        code: 'UNAVAILABLE',
        reason: 'the publish proxy failed (timeout: no answer within 3000 ms)',
      });
      assert.equal(await audit.flush(), true);
      await audit.close();
      const { entries } = await queryAudit(prisma, { orgId: 'proxy-org', limit: 10 });
      assert.deepEqual(
        entries.map((e) => [e.action, e.actor, e.target, e.detail]),
        [
          [AuditAction.PROXY_ALLOWED, 'alice', 's1', { kind: 'connect', source: 'backend' }],
          [
            AuditAction.PROXY_DENIED,
            'alice',
            'agent:bob',
            { kind: 'subscribe', source: 'cache', code: 'FORBIDDEN', reason: 'not your agent' },
          ],
          [
            AuditAction.PROXY_DENIED,
            'alice',
            'agent:alice',
            {
              kind: 'publish',
              source: 'policy',
              code: 'UNAVAILABLE',
              reason: 'the publish proxy failed (timeout: no answer within 3000 ms)',
            },
          ],
        ],
      );
    });

    test('every hook kind is recorded: who, organization, when, what, from where', async () => {
      const audit = newLogger();
      const bus = new HookBus((name, err) => assert.fail(`hook ${name} threw: ${String(err)}`));
      attachAuditHooks(bus, audit);
      const conn = testConnection('hooks-org', 's1', 'c1', { connectedAt: T0 + 1 });
      const alice = conn.principal;
      const key = testPrincipal('hooks-org', 'apikey:k1', { kind: 'apiKey', keyId: 'k1', isService: true });
      bus.emit('onConnect', { connection: conn, resumed: false });
      bus.emit('onConnectRefused', {
        peer: testPeer,
        code: 'UNAUTHORIZED',
        reason: 'bad signature',
        orgId: 'hooks-org',
      });
      bus.emit('onConnectRefused', { peer: testPeer, code: 'ORIGIN', reason: 'origin not allowed' });
      bus.emit('onAuthFailure', {
        peer: testPeer,
        code: 'TOKEN_EXPIRED',
        reason: 'jwt expired',
        via: 'http',
      });
      bus.emit('onSubscribe', {
        connection: conn,
        channel: 'agent:a',
        channelType: 'AGENT_EVENTS',
        granted: true,
      });
      bus.emit('onSubscribe', {
        connection: conn,
        channel: 'user:bob',
        channelType: 'PRIVATE_USER',
        granted: false,
        code: 'FORBIDDEN',
        reason: 'not your channel',
      });
      bus.emit('onPublish', {
        principal: key,
        peer: testPeer,
        connection: undefined,
        channel: 'system:notice',
        channelType: 'SYSTEM_EVENTS',
        type: 'system_notification',
        id: '5-0',
        bytes: 42,
      });
      bus.emit('onDeny', {
        principal: alice,
        peer: testPeer,
        action: 'publish',
        channel: 'system:x',
        reason: 'services only',
      });
      bus.emit('onSuspend', {
        orgId: 'hooks-org',
        userId: 'u1',
        sessionId: 's1',
        by: 'ops',
        reason: 'abuse',
        suspended: true,
      });
      bus.emit('onDeadLetter', {
        orgId: 'hooks-org',
        channel: 'agent:a',
        eventId: '6-0',
        sessionId: 's1',
        attempts: 5,
      });
      bus.emit('onAdminAction', {
        principal: alice,
        peer: testPeer,
        action: 'kick',
        target: 's1',
        detail: { why: 'test' },
      });
      bus.emit('onDisconnect', { connection: conn, code: 4011, reason: 'suspended', status: 'SUSPENDED' });
      assert.equal(audit.counters.queued, 12);
      assert.equal(await audit.flush(), true);
      await audit.close();

      const { entries } = await queryAudit(prisma, { orgId: 'hooks-org', limit: 100 });
      assert.deepEqual(
        entries.map((e) => e.action),
        [
          AuditAction.CONNECTION_ACCEPTED,
          AuditAction.CONNECTION_REFUSED,
          AuditAction.SUBSCRIPTION_GRANTED,
          AuditAction.SUBSCRIPTION_DENIED,
          AuditAction.EVENT_PUBLISHED,
          AuditAction.PERMISSION_DENIED,
          AuditAction.SESSION_SUSPENDED,
          AuditAction.MESSAGE_DEAD_LETTERED,
          'admin.kick',
          AuditAction.CONNECTION_CLOSED,
        ],
      );
      assert.deepEqual(
        entries.map((e) => e.seq),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      const [accepted, refused, , denied, published] = entries;
      assert.equal(accepted!.actor, 'user-s1');
      assert.equal(accepted!.target, 's1');
      // Stamped when recorded (the logger's clock); the socket's opening time is in the detail.
      assert.equal(accepted!.createdAt, new Date(T0).toISOString());
      assert.equal((accepted!.detail as any).openedAt, T0 + 1);
      assert.equal(accepted!.remoteAddress, testPeer.remoteAddress);
      assert.equal(accepted!.userAgent, testPeer.userAgent);
      assert.equal((refused!.detail as any).reason, 'bad signature');
      assert.deepEqual(denied!.detail, {
        channelType: 'PRIVATE_USER',
        sessionId: 's1',
        code: 'FORBIDDEN',
        reason: 'not your channel',
      });
      assert.equal(published!.actor, 'apikey:k1');
      assert.equal((published!.detail as any).via, 'http');

      // Entries with no organization have their own chain.
      const gateway = await queryAudit(prisma, { orgId: GATEWAY_ORG_ID });
      assert.deepEqual(
        gateway.entries.map((e) => [e.action, (e.detail as any).code]),
        [
          [AuditAction.CONNECTION_REFUSED, 'ORIGIN'],
          [AuditAction.AUTH_FAILED, 'TOKEN_EXPIRED'],
        ],
      );
      assert.equal((await verifyAuditChain(prisma, 'hooks-org')).ok, true);
      assert.equal((await verifyAuditChain(prisma, GATEWAY_ORG_ID)).ok, true);
    });

    test('queries filter by time, type (exact or area), position and limit', async () => {
      const clock = new ManualClock(T0);
      const audit = newLogger({ clock });
      audit.record({ orgId: 'q-org', actor: 'a', action: 'connection.accepted' });
      clock.advance(60_000);
      audit.record({ orgId: 'q-org', actor: 'a', action: 'connection.refused' });
      audit.record({ orgId: 'q-org', actor: 'a', action: 'auth.failed' });
      audit.record({ orgId: 'q-org', actor: 'a', action: 'connectionx.odd' });
      audit.record({ orgId: 'other-org', actor: 'b', action: 'auth.failed' });
      await audit.close();
      const actions = async (q: Omit<Parameters<typeof queryAudit>[1], 'orgId'>) =>
        (await queryAudit(prisma, { orgId: 'q-org', ...q })).entries.map((e) => e.action);
      assert.deepEqual(await actions({ type: 'connection' }), ['connection.accepted', 'connection.refused']);
      assert.deepEqual(await actions({ type: 'auth.failed' }), ['auth.failed']);
      assert.deepEqual(await actions({ since: T0 + 1 }), [
        'connection.refused',
        'auth.failed',
        'connectionx.odd',
      ]);
      assert.deepEqual(await actions({ limit: 2 }), ['connection.accepted', 'connection.refused']);
      const page = await queryAudit(prisma, { orgId: 'q-org', afterSeq: 2, limit: 1 });
      assert.deepEqual([page.entries[0]!.seq, page.nextAfterSeq], [3, 3]);

      const parsed = parseAuditQuery(
        'q-org',
        new URLSearchParams('since=2025-04-01T12:00:01Z&type=auth&limit=5'),
      );
      assert.deepEqual(parsed, {
        ok: true,
        query: { orgId: 'q-org', since: T0 + 1000, type: 'auth', limit: 5 },
      });
      assert.equal(parseAuditQuery('q-org', new URLSearchParams('limit=5000')).ok, false);
      assert.equal(parseAuditQuery('q-org', new URLSearchParams('since=yesterday')).ok, false);
      assert.equal(parseAuditQuery('q-org', new URLSearchParams('type=DROP TABLE')).ok, false);
    });

    test('verification finds an altered entry, a removed entry and a truncated chain', async () => {
      const audit = newLogger({ maxBatch: 7 }); // several transactions per chain
      for (const org of ['t-alter', 't-remove', 't-truncate', 't-head'])
        for (let i = 1; i <= 20; i++) audit.record(entry(org, i));
      await audit.close();
      for (const org of ['t-alter', 't-remove', 't-truncate', 't-head']) {
        const v = await verifyAuditChain(prisma, org, { pageSize: 6 });
        assert.deepEqual([v.ok, v.checked, v.lastSeq, v.headSeq], [true, 20, 20, 20], org);
      }

      await prisma.auditLog.updateMany({ where: { orgId: 't-alter', seq: 5 }, data: { detail: { i: 500 } } });
      const altered = await verifyAuditChain(prisma, 't-alter', { pageSize: 6 });
      assert.equal(altered.ok, false);
      assert.deepEqual(
        altered.problems.map((p) => [p.kind, p.seq]),
        [['altered', 5]],
      );
      // Re-hashing the altered entry does not hide it: the next entry no longer follows it.
      await prisma.auditLog.updateMany({ where: { orgId: 't-alter', seq: 6 }, data: { actor: 'mallory' } });
      assert.deepEqual(
        (await verifyAuditChain(prisma, 't-alter')).problems.map((p) => [p.kind, p.seq]),
        [
          ['altered', 5],
          ['altered', 6],
        ],
      );

      await prisma.auditLog.deleteMany({ where: { orgId: 't-remove', seq: 11 } });
      const removed = await verifyAuditChain(prisma, 't-remove', { pageSize: 6 });
      assert.deepEqual(
        removed.problems.map((p) => [p.kind, p.seq]),
        [['missing', 11]],
      );

      await prisma.auditLog.deleteMany({ where: { orgId: 't-truncate', seq: { gte: 19 } } });
      const truncated = await verifyAuditChain(prisma, 't-truncate');
      assert.deepEqual(
        truncated.problems.map((p) => [p.kind, p.seq]),
        [['truncated', 19]],
      );

      // Entries written after a head row was lost continue the chain from the last entry.
      await prisma.auditChainHead.delete({ where: { orgId: 't-head' } });
      const more = newLogger();
      more.record(entry('t-head', 21));
      await more.close();
      const healed = await verifyAuditChain(prisma, 't-head');
      assert.deepEqual([healed.ok, healed.lastSeq, healed.headSeq], [true, 21, 21]);
    });

    test('several writers on one organization extend one valid chain', async () => {
      const writers = [newLogger({ maxBatch: 5 }), newLogger({ maxBatch: 3 }), newLogger({ maxBatch: 4 })];
      for (let i = 0; i < 60; i++) writers[i % 3]!.record(entry('shared-org', i));
      await Promise.all(writers.map((w) => w.flush()));
      await Promise.all(writers.map((w) => w.close()));
      const v = await verifyAuditChain(prisma, 'shared-org');
      assert.deepEqual([v.ok, v.checked, v.headSeq], [true, 60, 60]);
    });

    test('bounded: a full queue goes to the spill file before anything is refused; all written, in order', async () => {
      const audit = newLogger({ maxQueue: 5 });
      for (let i = 0; i < 48; i++) audit.record(entry('bound-org', i));
      const c = audit.counters;
      assert.equal(c.dropped, 0);
      assert.equal(c.recorded, 48);
      assert.ok(c.queued <= 5, `queued ${c.queued}`);
      assert.ok(c.spilled >= 40, `spilled ${c.spilled}`);
      assert.equal(await audit.close(), true);
      assert.equal(audit.counters.written, 48);
      const { entries } = await queryAudit(prisma, { orgId: 'bound-org', limit: 100 });
      assert.deepEqual(
        entries.map((e) => e.target),
        Array.from({ length: 48 }, (_, i) => `t${i}`),
      );
      assert.equal((await verifyAuditChain(prisma, 'bound-org')).ok, true);
      assert.equal(existsSync(join(opened.dataDir, 'audit-spill.jsonl')), false);
      assert.equal(audit.record(entry('bound-org', 99)), false, 'closed loggers refuse');
    });

    test('queue and spill file full: other entries are refused and counted, admin and session entries are not', async () => {
      const audit = newLogger({ maxQueue: 5, maxSpillBytes: 1024 });
      const flood = (i: number) => ({
        orgId: 'crowd-org',
        actor: 'mallory',
        action: 'permission.denied',
        target: `x${i}`,
      });
      for (let i = 0; i < 100; i++) audit.record(flood(i));
      const before = audit.counters;
      assert.ok(before.dropped > 0 && before.spilled > 0, JSON.stringify(before));
      assert.ok(before.spillBytes <= 1024);
      for (let i = 0; i < 4; i++)
        assert.equal(
          audit.record({
            orgId: 'crowd-org',
            actor: 'ops',
            action: 'admin.revoke-user-tokens',
            target: `u${i}`,
          }),
          true,
        );
      assert.equal(
        audit.record({ orgId: 'crowd-org', actor: 'ops', action: 'session.suspended', target: 's' }),
        true,
      );
      assert.equal(audit.record(flood(100)), false, 'the rest still waits for room');
      assert.equal(await audit.close(), true);
      const { entries } = await queryAudit(prisma, { orgId: 'crowd-org', limit: 1000 });
      assert.deepEqual(
        entries.filter((e) => e.actor === 'ops').map((e) => e.target),
        ['u0', 'u1', 'u2', 'u3', 's'],
      );
      assert.equal(entries.length, audit.counters.written);
      assert.equal(audit.counters.written + audit.counters.dropped, 106);
    });

    test("seq follows createdAt: an entry's time is when it was recorded, never earlier than the one before", async () => {
      const clock = new ManualClock(T0);
      const audit = newLogger({ clock });
      const bus = new HookBus((name, err) => assert.fail(`hook ${name} threw: ${String(err)}`));
      attachAuditHooks(bus, audit);
      // A connection opened at T0 + 1 is accepted (authenticated) at T0 + 20; another entry came in between.
      const conn = testConnection('order-org', 's1', 'c1', { connectedAt: T0 + 1 });
      clock.advance(10);
      audit.record({ orgId: 'order-org', actor: 'other', action: 'connection.closed', target: 's0' });
      clock.advance(10);
      bus.emit('onConnect', { connection: conn, resumed: false });
      clock.advance(-15 as number); // a clock stepped back: stamps do not follow it
      audit.record({ orgId: 'order-org', actor: 'other', action: 'connection.closed', target: 's2' });
      assert.equal(await audit.close(), true);
      const { entries } = await queryAudit(prisma, { orgId: 'order-org' });
      assert.deepEqual(
        entries.map((e) => [e.seq, e.target]),
        [
          [1, 's0'],
          [2, 's1'],
          [3, 's2'],
        ],
      );
      const times = entries.map((e) => Date.parse(e.createdAt));
      assert.deepEqual(times, [T0 + 10, T0 + 20, T0 + 20]);
    });

    test('an entry spilled by a run that lost its database is caught up by the next run', async () => {
      // A run whose database is gone: its writes fail, so its entries go to the spill file. (PGlite is
      // single-process, so "gone" there is the suite's own database closed and then reopened.)
      let lost = opened.db;
      if (target.kind === 'postgres') lost = await opened.reopen();
      await lost.close();
      const first = new AuditLogger({
        db: lost,
        dataDir: opened.dataDir,
        clock: new ManualClock(T0),
      });
      for (let i = 1; i <= 4; i++) first.record(entry('restart-org', i));
      assert.equal(await first.close(), false);
      assert.deepEqual([first.counters.spilled, first.counters.dropped], [4, 0]);
      assert.ok(existsSync(join(opened.dataDir, 'audit-spill.jsonl')));
      if (target.kind === 'pglite') {
        reopened = await opened.reopen();
        db = reopened;
        prisma = reopened.prisma;
      }

      const second = newLogger();
      second.record(entry('restart-org', 5));
      assert.equal(await second.close(), true);
      assert.equal(second.counters.replayed, 4);
      assert.equal(existsSync(join(opened.dataDir, 'audit-spill.jsonl')), false);
      const { entries } = await queryAudit(prisma, { orgId: 'restart-org' });
      assert.deepEqual(
        entries.map((e) => e.target),
        ['t1', 't2', 't3', 't4', 't5'],
        'spilled entries keep their place',
      );
      assert.equal((await verifyAuditChain(prisma, 'restart-org')).ok, true);
    });

    if (target.kind === 'postgres')
      test('a network outage spills to the file; entries catch up, in order, when it ends', async () => {
        const pgInfo = opened.postgres!;
        const proxy = await startTcpProxy(pgInfo.host, pgInfo.port);
        const viaProxy = await opened.reopen({ databaseUrl: viaPort(pgInfo.url, proxy.port) });
        const clock = new ManualClock(T0);
        const audit = new AuditLogger({
          db: viaProxy,
          dataDir: opened.dataDir,
          clock,
          retryBaseMs: 1_000,
          maxSpillBytes: 2_000,
        });
        try {
          audit.record(entry('outage-org', 1));
          assert.equal(await audit.flush(), true);

          proxy.cut();
          for (let i = 2; i <= 6; i++) audit.record(entry('outage-org', i));
          assert.equal(await audit.flush(), false);
          assert.deepEqual([audit.counters.spilled, audit.counters.queued], [5, 0]);
          assert.ok(audit.counters.writeFailures >= 1);
          assert.ok(audit.counters.spillBytes > 0);
          // More entries during the outage queue behind the spilled ones; beyond the file's bound they wait
          // in memory (refused only once the queue is full too).
          for (let i = 7; i <= 40; i++) audit.record(entry('outage-org', i));
          clock.advance(1_000);
          await audit.flush();
          const { spilled, dropped, queued } = audit.counters;
          assert.equal(dropped, 0);
          assert.ok(queued > 0 && spilled + queued === 39, `spilled ${spilled} + queued ${queued}`);

          proxy.restore();
          assert.equal(await audit.flush(), true);
          assert.equal(audit.counters.replayed, spilled);
          assert.equal(audit.counters.spillBytes, 0);
          const { entries } = await queryAudit(prisma, { orgId: 'outage-org', limit: 1000 });
          assert.deepEqual(
            entries.map((e) => e.target),
            Array.from({ length: 40 }, (_, i) => `t${i + 1}`),
          );
          assert.equal((await verifyAuditChain(prisma, 'outage-org')).ok, true);
        } finally {
          await audit.close();
          await viaProxy.close();
          await proxy.close();
        }
      });
  });
}
