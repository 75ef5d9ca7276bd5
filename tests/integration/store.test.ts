/**
 * The durable records on PostgreSQL and PGlite alike: migrations (idempotent, matching the schema),
 * every model through the generated client, and the batched repositories driven through the HookBus.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.ts';
import { HookBus } from '../../src/hooks.ts';
import { Prisma } from '../../src/generated/prisma/client.ts';
import { createRecordRepositories, type RecordRepositories } from '../../src/store/records.ts';
import { attachRecordHooks, HEARTBEAT_RECORD_INTERVAL_MS } from '../../src/store/record-hooks.ts';
import { PrismaChannelRegistry } from '../../src/store/prisma-channel-registry.ts';
import { PrismaDeadLetterStore } from '../../src/store/prisma-dead-letter-store.ts';
import { loadMigrations, migrate } from '../../src/store/migrate.ts';
import { GATEWAY_METADATA_KEY } from '../../src/store/connection-records.ts';
import { testConnection } from '../support/connection-info.ts';
import { databaseTargets, type OpenedDatabase } from '../support/databases.ts';

for (const target of databaseTargets) {
  const skip = await target.skipReason();
  describe(`store on ${target.kind}`, { skip }, () => {
    let opened: OpenedDatabase;
    before(async () => {
      opened = await target.open();
    });
    after(async () => {
      await opened?.cleanup();
    });

    test('migrations are recorded once and re-running them is a no-op', async () => {
      const again = await migrate(opened.db);
      assert.deepEqual(again.applied, []);
      assert.equal(again.alreadyApplied, loadMigrations().length);
      const ledger = await opened.db.prisma.$queryRawUnsafe<Array<{ name: string }>>(
        'SELECT "name" FROM "_apix_migrations" ORDER BY "name"',
      );
      assert.deepEqual(
        ledger.map((r) => r.name),
        loadMigrations().map((m) => m.name),
      );
    });

    test('concurrent migrators serialise on the advisory lock', async () => {
      const results = await Promise.all([migrate(opened.db), migrate(opened.db)]);
      assert.deepEqual(
        results.map((r) => r.applied.length),
        [0, 0],
      );
    });

    test('every table has exactly the columns of its model', async () => {
      const models: Record<string, Record<string, string>> = {
        ApiXConnection: Prisma.ApiXConnectionScalarFieldEnum,
        ApiXEvent: Prisma.ApiXEventScalarFieldEnum,
        ApiXChannel: Prisma.ApiXChannelScalarFieldEnum,
        Organization: Prisma.OrganizationScalarFieldEnum,
        ApiKey: Prisma.ApiKeyScalarFieldEnum,
        AuditLog: Prisma.AuditLogScalarFieldEnum,
        AuditChainHead: Prisma.AuditChainHeadScalarFieldEnum,
        ApiXDeadLetter: Prisma.ApiXDeadLetterScalarFieldEnum,
        ApiXWebhookEndpoint: Prisma.ApiXWebhookEndpointScalarFieldEnum,
        ApiXWebhookBatch: Prisma.ApiXWebhookBatchScalarFieldEnum,
      };
      assert.deepEqual(Object.keys(models).sort(), Object.values(Prisma.ModelName).sort());
      for (const [table, fields] of Object.entries(models)) {
        const cols = await opened.db.prisma.$queryRawUnsafe<Array<{ column_name: string }>>(
          `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`,
          table,
        );
        assert.deepEqual(cols.map((c) => c.column_name).sort(), Object.values(fields).sort(), table);
      }
    });

    test('every model round-trips through the generated client', async () => {
      const p = opened.db.prisma;
      const at = new Date('2025-01-02T03:04:05.678Z');
      const org = await p.organization.create({
        data: { id: 'rt-org', name: 'Round Trip', metadata: { tier: 'pro' } },
      });
      assert.deepEqual(await p.organization.findUnique({ where: { id: 'rt-org' } }), org);

      const conn = {
        organizationId: 'rt-org',
        userId: 'alice',
        sessionId: 'rt-session',
        clientType: 'SDK_WIDGET' as const,
        channels: ['agent:a', 'room:r1'],
        metadata: { nested: { list: [1, 'two', null] } },
        connectedAt: at,
        lastHeartbeat: at,
        status: 'RECONNECTING' as const,
      };
      const c = await p.apiXConnection.create({ data: conn });
      assert.ok(c.id.length > 0);
      assert.deepEqual(await p.apiXConnection.findFirst({ where: { sessionId: 'rt-session' } }), {
        ...conn,
        id: c.id,
      });

      const ev = await p.apiXEvent.create({
        data: {
          eventType: 'tool_call_start',
          channel: 'rt-org/tool:x',
          payload: { a: 1 },
          sessionId: 's',
          metadata: { v: '1' },
        },
      });
      assert.equal(ev.acknowledgment, false);
      assert.equal(ev.retryCount, 0);
      assert.deepEqual(await p.apiXEvent.findUnique({ where: { id: ev.id } }), ev);

      const ch = await p.apiXChannel.create({
        data: {
          name: 'rt-org/room:r1',
          type: 'ROOM',
          organizationId: 'rt-org',
          permissions: { subscribe: ['member'] },
        },
      });
      assert.equal(ch.subscribers, 0);
      assert.deepEqual(await p.apiXChannel.findUnique({ where: { name: 'rt-org/room:r1' } }), ch);

      const key = await p.apiKey.create({
        data: {
          id: 'k1',
          organizationId: 'rt-org',
          hash: 'h'.repeat(64),
          scopes: ['publish:agent'],
          lastUsedAt: at,
          revokedAt: at,
        },
      });
      assert.deepEqual(await p.apiKey.findUnique({ where: { hash: 'h'.repeat(64) } }), key);

      const log = await p.auditLog.create({
        data: {
          id: 'a1',
          orgId: 'rt-org',
          seq: 1,
          prevHash: '0',
          hash: '1',
          actor: 'alice',
          action: 'auth.failed',
          target: null,
          detail: { code: 'UNAUTHORIZED' },
          remoteAddress: '::1',
          userAgent: 'ua',
          createdAt: at,
        },
      });
      assert.deepEqual(await p.auditLog.findUnique({ where: { id: 'a1' } }), log);
      await assert.rejects(
        p.auditLog.create({ data: { ...log, id: 'a2', detail: {} } }),
        (err: { code?: string }) => err.code === 'P2002',
        'seq is unique per organization',
      );

      const head = await p.auditChainHead.create({ data: { orgId: 'rt-org', seq: 1, hash: '1' } });
      assert.deepEqual(await p.auditChainHead.findUnique({ where: { orgId: 'rt-org' } }), head);

      const dl = await p.apiXDeadLetter.create({
        data: {
          organizationId: 'rt-org',
          channel: 'rt-org/agent:a',
          eventId: '1-0',
          sessionId: 's',
          attempts: 5,
          payload: [1],
        },
      });
      assert.deepEqual(await p.apiXDeadLetter.findUnique({ where: { id: dl.id } }), dl);

      // The relation and its cascade exist in SQL.
      await p.organization.delete({ where: { id: 'rt-org' } });
      assert.equal(await p.apiKey.count({ where: { id: 'k1' } }), 0);
    });

    describe('repositories through the hook bus', () => {
      let clock: ManualClock;
      let repos: RecordRepositories;
      let bus: HookBus;
      before(() => {
        clock = new ManualClock(Date.parse('2025-03-01T00:00:00Z'));
        repos = createRecordRepositories(opened.db.prisma, { clock, flushIntervalMs: 5_000, cacheMs: 5_000 });
        bus = new HookBus((name, err) => assert.fail(`hook ${name} threw: ${String(err)}`));
        attachRecordHooks(bus, repos);
      });
      after(async () => {
        await repos.close();
      });

      test('connect upserts, heartbeats are batched, disconnect sets the status', async () => {
        const p = opened.db.prisma;
        const info = testConnection('acme', 'sess-1', 'conn-1', {
          connectedAt: clock.now(),
          channels: ['agent:a1'],
        });
        bus.emit('onConnect', { connection: info, resumed: false });
        assert.equal(
          await p.apiXConnection.count({ where: { sessionId: 'sess-1' } }),
          0,
          'nothing is written inline',
        );
        assert.equal(await repos.flush(), true);
        const row = await p.apiXConnection.findFirstOrThrow({ where: { sessionId: 'sess-1' } });
        assert.equal(row.status, 'CONNECTED');
        assert.deepEqual(row.channels, ['agent:a1']);
        assert.equal((row.metadata as Record<string, any>)[GATEWAY_METADATA_KEY].connectionId, 'conn-1');
        assert.equal((row.metadata as Record<string, any>).app, 'test');
        assert.ok(await p.organization.findUnique({ where: { id: 'acme' } }), 'the organization is noted');

        // 500 pings over 100 s: lastHeartbeat moves once a minute (the first ping 60 s after the last one
        // written), and nothing is written before the flush.
        const connectedAt = clock.now();
        for (let i = 1; i <= 500; i++)
          bus.emit('onHeartbeat', {
            connectionId: 'conn-1',
            sessionId: 'sess-1',
            rttMs: 3,
            at: connectedAt + i * 200,
          });
        assert.equal(repos.counters.pending, 1, '500 pings are one pending change');
        const before = await p.apiXConnection.findFirstOrThrow({ where: { sessionId: 'sess-1' } });
        assert.equal(before.lastHeartbeat.getTime(), connectedAt, 'pings wait for the flush');
        clock.advance(5_000); // the flush loop's interval
        await waitFor(async () => {
          const r = await p.apiXConnection.findFirstOrThrow({ where: { sessionId: 'sess-1' } });
          return r.lastHeartbeat.getTime() === connectedAt + HEARTBEAT_RECORD_INTERVAL_MS;
        });

        bus.emit('onDisconnect', { connection: info, code: 1000, reason: 'bye', status: 'DISCONNECTED' });
        await repos.flush();
        const gone = await p.apiXConnection.findFirstOrThrow({ where: { sessionId: 'sess-1' } });
        assert.equal(gone.status, 'DISCONNECTED');
      });

      test('a replaced connection cannot overwrite the newer one for its session', async () => {
        const p = opened.db.prisma;
        const a = testConnection('acme', 'sess-2', 'conn-a', { connectedAt: clock.now() });
        bus.emit('onConnect', { connection: a, resumed: false });
        await repos.flush();
        clock.advance(1_000);
        const b = testConnection('acme', 'sess-2', 'conn-b', { connectedAt: clock.now() });
        bus.emit('onConnect', { connection: b, resumed: true });
        // The takeover closes the old connection after the new one connected: same flush, then the next.
        bus.emit('onDisconnect', { connection: a, code: 4009, reason: 'taken over', status: 'DISCONNECTED' });
        await repos.flush();
        bus.emit('onDisconnect', { connection: a, code: 4009, reason: 'taken over', status: 'DISCONNECTED' });
        await repos.flush();
        const row = await p.apiXConnection.findFirstOrThrow({ where: { sessionId: 'sess-2' } });
        assert.equal(row.status, 'CONNECTED');
        assert.equal((row.metadata as Record<string, any>)[GATEWAY_METADATA_KEY].connectionId, 'conn-b');
      });

      test('subscriber counts follow subscribe, unsubscribe and disconnect', async () => {
        const p = opened.db.prisma;
        const c1 = testConnection('acme', 'sess-3', 'conn-3', { connectedAt: clock.now() });
        const c2 = testConnection('acme', 'sess-4', 'conn-4', { connectedAt: clock.now() });
        const other = testConnection('globex', 'sess-5', 'conn-5', { connectedAt: clock.now() });
        for (const c of [c1, c2, other]) bus.emit('onConnect', { connection: c, resumed: false });
        const sub = (c: typeof c1, channel: string, channelType: any, granted = true) =>
          bus.emit('onSubscribe', { connection: c, channel, channelType, granted });
        sub(c1, 'workflow:w1', 'WORKFLOW_EVENTS');
        sub(c1, 'workflow:w1', 'WORKFLOW_EVENTS'); // repeated: counted once
        sub(c2, 'workflow:w1', 'WORKFLOW_EVENTS');
        sub(c2, 'system:status', 'SYSTEM_EVENTS');
        sub(other, 'workflow:w1', 'WORKFLOW_EVENTS');
        sub(other, 'system:status', 'SYSTEM_EVENTS');
        sub(c1, 'user:someone-else', 'PRIVATE_USER', false); // denied: not counted
        await repos.flush();
        const count = async (name: string) =>
          (await p.apiXChannel.findUnique({ where: { name } }))?.subscribers;
        assert.equal(await count('acme/workflow:w1'), 2);
        assert.equal(await count('globex/workflow:w1'), 1, 'organizations never share a row');
        assert.equal(await count('_/system:status'), 2, 'system channels are shared');
        assert.equal(await count('acme/user:someone-else'), undefined);
        const sys = await p.apiXChannel.findUniqueOrThrow({ where: { name: '_/system:status' } });
        assert.equal(sys.organizationId, null);

        bus.emit('onUnsubscribe', { connection: c1, channel: 'workflow:w1', reason: 'client' });
        bus.emit('onDisconnect', { connection: c2, code: 1000, reason: 'bye', status: 'DISCONNECTED' });
        bus.emit('onUnsubscribe', { connection: c2, channel: 'workflow:w1', reason: 'after close' }); // ignored
        await repos.flush();
        assert.equal(await count('acme/workflow:w1'), 0);
        assert.equal(await count('_/system:status'), 1);
        const row = await p.apiXConnection.findFirstOrThrow({ where: { sessionId: 'sess-3' } });
        assert.deepEqual(row.channels, []);
      });

      test('channel settings: written by the CLI path, read synchronously from the registry cache', async () => {
        const registry = await new PrismaChannelRegistry(opened.db.prisma, {
          clock,
          refreshMs: 1_000,
        }).start();
        try {
          await repos.channels.setSettings('acme', 'room:war-room', {
            durable: true,
            coalesceKey: 'agentId',
          });
          await repos.channels.setPermissions('acme', 'room:war-room', { subscribe: { roles: ['ops'] } });
          await repos.channels.setPermissions('acme', 'system:status', { history: { deny: true } });
          await assert.rejects(repos.channels.setPermissions('acme', 'nope:x', {}), /invalid channel/);
          assert.equal(registry.get('acme', 'room:war-room'), undefined, 'not yet refreshed');
          clock.advance(1_000);
          await waitFor(async () => registry.get('acme', 'room:war-room') !== undefined);
          assert.deepEqual(registry.get('acme', 'room:war-room'), {
            permissions: { subscribe: { roles: ['ops'] } },
            durable: true,
            coalesceKey: 'agentId',
          });
          assert.equal(
            registry.get('globex', 'room:war-room'),
            undefined,
            'organizations never share settings',
          );
          assert.deepEqual(registry.get('globex', 'system:status'), {
            permissions: { history: { deny: true } },
          });
          await registry.set('globex', 'agent:a', { durable: true });
          assert.deepEqual(registry.get('globex', 'agent:a'), { durable: true }, 'own writes apply at once');
          const row = await opened.db.prisma.apiXChannel.findUniqueOrThrow({
            where: { name: 'acme/room:war-room' },
          });
          assert.deepEqual(row.permissions, {
            subscribe: { roles: ['ops'] },
            durable: true,
            coalesceKey: 'agentId',
          });
        } finally {
          registry.close();
        }
      });

      test('API keys: created once, verified from cache, revoked, lastUsedAt batched', async () => {
        const p = opened.db.prisma;
        const { key, record } = await repos.apiKeys.create('acme', { scopes: ['publish'], name: 'ci' });
        assert.match(key, /^apix_[a-z0-9]+_[A-Za-z0-9_-]+$/);
        const stored = await p.apiKey.findUniqueOrThrow({ where: { id: record.id } });
        assert.notEqual(stored.hash, key);
        assert.equal(stored.lastUsedAt, null);
        assert.deepEqual(await repos.apiKeyStore.verify(key), {
          keyId: record.id,
          orgId: 'acme',
          scopes: ['publish'],
        });
        assert.equal(await repos.apiKeyStore.verify(`${key}x`), undefined);
        assert.equal(await repos.apiKeyStore.verify('not-a-key'), undefined);
        await repos.flush();
        const used = await p.apiKey.findUniqueOrThrow({ where: { id: record.id } });
        assert.equal(used.lastUsedAt?.getTime(), clock.now());

        assert.deepEqual(
          (await repos.apiKeys.list('acme')).map((k) => k.id),
          [record.id],
        );
        assert.equal(await repos.apiKeys.revoke('acme', record.id), true);
        assert.equal(await repos.apiKeys.revoke('acme', record.id), false);
        assert.ok(await repos.apiKeyStore.verify(key), 'still cached: revocation applies within cacheMs');
        clock.advance(5_001);
        assert.equal(await repos.apiKeyStore.verify(key), undefined);
        assert.deepEqual(await repos.apiKeys.list('acme'), []);
      });

      test('durable events, acknowledgements and dead letters', async () => {
        const p = opened.db.prisma;
        const base = { channelKey: 'acme/agent:a1', type: 'agent_status_update', publishedAt: clock.now() };
        repos.events.append({ ...base, eventId: '1-0', payload: { s: 'idle\u0000' }, sessionId: 'sess-1' });
        repos.events.append({ ...base, eventId: '1-1', payload: [1, 2] });
        repos.events.append({ ...base, eventId: '1-1', payload: [1, 2] }); // a retry: no duplicate row
        await repos.flush();
        const rows = await repos.events.list('acme/agent:a1');
        assert.deepEqual(
          rows.map((r) => r.id),
          ['acme/agent:a1@1-0', 'acme/agent:a1@1-1'],
        );
        assert.deepEqual(rows[0]!.payload, { s: 'idle\uFFFD' });
        repos.events.acknowledge('acme/agent:a1', ['1-0']);
        const deadLetters = new PrismaDeadLetterStore(repos.events, 100);
        deadLetters.add({
          orgId: 'acme',
          channel: 'agent:a1',
          eventId: '1-1',
          type: 'agent_status_update',
          sessionId: 'sess-9',
          attempts: 5,
          frame: JSON.stringify({
            type: 'agent_status_update',
            channel: 'agent:a1',
            payload: [1, 2],
            id: '1-1',
          }),
          failedAt: clock.now(),
        });
        assert.equal(deadLetters.list('acme', 10).length, 1, 'listed from memory at once');
        await repos.flush();
        const [acked, dead] = await repos.events.list('acme/agent:a1');
        assert.equal(acked!.acknowledgment, true);
        assert.equal(dead!.retryCount, 5);
        const letters = await repos.events.listDeadLetters('acme');
        assert.equal(letters.length, 1);
        assert.equal(letters[0]!.channel, 'acme/agent:a1');
        assert.deepEqual([letters[0]!.eventType, letters[0]!.payload], ['agent_status_update', [1, 2]]);
        assert.equal(await p.apiXDeadLetter.count({ where: { organizationId: 'globex' } }), 0);
      });
    });
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
