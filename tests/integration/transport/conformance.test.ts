/**
 * The protocol's conformance cases as one table, run over every transport and encoding (WebSocket with
 * JSON and with MessagePack, HTTP streaming, SSE; PROTOCOL 1.1 §14: "every transport has the same
 * semantics"): connect, subscribe and fan-out in order, publish replies and refusals, `since`, session
 * resume, acks and redelivery, auth refresh and expiry, heartbeats, take-over and drain. Each case gets
 * `connect` for the transport under test; the publisher of a case is always a WebSocket client (JSON),
 * so a case checks what its subscriber sees.
 *
 * The table runs twice: against in-process nodes (a case that needs other settings gets a node of its
 * own), then against one `apix serve` process, what `npm start` runs, configured only by the environment
 * variables of docs/configuration.md (PROCESS_ENV: the settings the cases ask for, for the whole run).
 * There, the drain case runs last, over every transport at once, and ends the process with SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import { RawClient, startNode, TEST_SECRET, token } from '../../support/gateway.ts';
import type { FrameClient } from '../../support/gateway.ts';
import { connectOver, TRANSPORTS } from '../../support/stream-client.ts';
import type { ConnectOptions, GatewayUrls, TransportName } from '../../support/stream-client.ts';
import { spawnGateway } from '../../support/process.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { sleep } from '../../support/wait.ts';

/** A gateway a case may close (its own node; on the process, the drain case's SIGTERM). */
interface OwnGateway extends GatewayUrls {
  close(): Promise<void>;
}

interface Ctx {
  readonly transport: TransportName;
  /** The shared gateway of the run. */
  readonly node: GatewayUrls;
  connect(opts?: ConnectOptions, node?: GatewayUrls): Promise<FrameClient>;
  /** A gateway with these settings (in process: a node of its own, closed after the case). */
  ownNode(overrides: Partial<Config>): Promise<OwnGateway>;
  /** Resolves once the gateway holds the session as away (resumable), its connection gone. */
  away(orgId: string, userId: string, sessionId: string): Promise<void>;
}

interface Case {
  readonly name: string;
  /** The case ends its gateway: on the shared process, it runs last. */
  readonly endsGateway?: true;
  run(ctx: Ctx): Promise<void>;
}

/** The settings cases ask for with ownNode; the process runs with them throughout (PROCESS_ENV). */
const HEARTBEAT_MS = 400;
const FAST_HEARTBEAT: Partial<Config> = { heartbeatIntervalMs: HEARTBEAT_MS };
const FAST_ACKS: Partial<Config> = { ackTimeoutMs: 100, retry: { baseMs: 20, maxMs: 50, maxAttempts: 3 } };
const SESSION_TTL_MS = 10_000;

const service = () => token({ sub: 'svc', roles: ['service'] });

async function publishN(pub: FrameClient, channel: string, n: number, from = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const r = await pub.publish(channel, 'tick', { i });
    assert.equal(r.type, 'message.sent', JSON.stringify(r.payload));
    ids.push(r.payload.id);
  }
  return ids;
}

const CASES: readonly Case[] = [
  {
    name: 'connect: connection.established with the granted and denied channels',
    async run({ connect, transport }) {
      // A new session id: the process keeps the previous transports' sessions for a resume.
      const sessionId = `s-est-${Math.random().toString(36).slice(2)}`;
      const c = await connect({ subscriptions: ['agent:a1', 'user:alice', 'user:bob'], sessionId });
      const f = c.frames.find((x) => x.type === 'connection.established')!;
      assert.equal(f.payload.resumed, false);
      assert.equal(f.payload.sessionId, sessionId);
      assert.equal(typeof f.payload.heartbeatIntervalMs, 'number');
      assert.deepEqual([...f.payload.subscriptions].sort(), ['agent:a1', 'user:alice']);
      assert.deepEqual(
        f.payload.denied.map((d: { channel: string; code: string }) => [d.channel, d.code]),
        [['user:bob', 'FORBIDDEN']],
      );
      assert.equal(typeof f.payload.sessionToken === 'string', !transport.startsWith('websocket'));
      c.close();
    },
  },
  {
    name: 'connect: a bad token is refused with connection.error UNAUTHORIZED and close 4001',
    async run({ connect }) {
      await assert.rejects(connect({ token: 'not-a-token' }), /UNAUTHORIZED/);
    },
  },
  {
    name: 'fan-out: every event, in publish order, once; message.sent echoes the correlation id',
    async run({ connect, node }) {
      const subs = await Promise.all([connect(), connect()]);
      for (const s of subs) await s.subscribe({ channels: ['agent:fan'] });
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const ids = await publishN(pub, 'agent:fan', 30);
      for (const s of subs) {
        const events = await s.waitForEvents(30, 'agent:fan');
        assert.deepEqual(
          events.map((e) => e.id),
          ids,
        );
      }
      for (const s of subs) s.close();
      pub.close();
    },
  },
  {
    name: 'publish from this transport: message.sent, and message.failed for a bad frame',
    async run({ connect }) {
      const c = await connect({ token: await service(), subscriptions: ['agent:own'] });
      const ok = await c.publish('agent:own', 'note', { hello: 1 });
      assert.equal(ok.type, 'message.sent');
      assert.equal((await c.waitForEvents(1, 'agent:own'))[0]!.id, ok.payload.id);
      const bad = await c.publish('agent:own', 'connection.established', {});
      assert.equal(bad.type, 'message.failed');
      assert.equal(bad.payload.code, 'BAD_REQUEST');
      c.send({ type: 'heartbeat.ping', payload: { ts: 42 } });
      assert.equal((await c.nextOfType('heartbeat.pong')).payload.ts, 42);
      c.close();
    },
  },
  {
    name: 'since: the retained events after the id, then live ones, no gap, no duplicate',
    async run({ connect, node }) {
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const ids = await publishN(pub, 'agent:since', 10);
      const c = await connect();
      const live = publishN(pub, 'agent:since', 10, 10);
      const added = await c.subscribe({ channels: ['agent:since'], since: { 'agent:since': ids[3] } });
      assert.deepEqual(added.payload.channels, [{ channel: 'agent:since', recovered: true }]);
      await live;
      const events = await c.waitForEvents(16, 'agent:since');
      assert.deepEqual(
        events.map((e) => e.payload.i),
        Array.from({ length: 16 }, (_, k) => k + 4),
      );
      c.close();
      pub.close();
    },
  },
  {
    name: 'resume: a dropped session comes back with its subscriptions and the missed events in order',
    async run({ connect, node, away }) {
      // An organization of its own: on the process, `away` counts its resumable sessions.
      const org = `res${Math.random().toString(36).slice(2, 10)}`;
      const tok = await token({ sub: 'carol', org });
      const sessionId = `resume-${Math.random().toString(36).slice(2)}`;
      const c1 = await connect({ token: tok, sessionId, subscriptions: ['agent:res'] });
      const pub = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'svc', org, roles: ['service'] }),
      });
      const first = await publishN(pub, 'agent:res', 3);
      await c1.waitForEvents(3, 'agent:res');
      c1.terminate();
      await away(org, 'carol', sessionId);
      await publishN(pub, 'agent:res', 4, 3);
      const c2 = await connect({ token: tok, sessionId });
      const est = c2.frames.find((f) => f.type === 'connection.established')!;
      assert.equal(est.payload.resumed, true);
      assert.deepEqual(est.payload.subscriptions, ['agent:res']);
      const events = await c2.waitForEvents(4, 'agent:res');
      assert.deepEqual(
        events.map((e) => e.payload.i),
        [3, 4, 5, 6],
      );
      assert.ok(!events.some((e) => first.includes(e.id!)), 'nothing already delivered comes again');
      c2.close();
      pub.close();
    },
  },
  {
    name: 'acks: an un-acked event is redelivered with retryCount, an acked one is not',
    async run({ connect, ownNode }) {
      const node = await ownNode(FAST_ACKS);
      const sub = await connect({ token: await token({ sub: 'worker' }) }, node);
      await sub.subscribe({ channels: ['tool:jobs'], acknowledgment: true });
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const a = await pub.publish('tool:jobs', 'job', { n: 1 });
      const b = await pub.publish('tool:jobs', 'job', { n: 2 });
      const firstA = await sub.next((f) => f.id === a.payload.id);
      sub.send({ type: 'ack', payload: { channel: 'tool:jobs', ids: [firstA.id] } });
      const failed = await pub.nextOfType('message.failed', 5000);
      assert.equal(failed.payload.id, b.payload.id);
      const deliveries = sub.events('tool:jobs');
      assert.equal(deliveries.filter((e) => e.id === a.payload.id).length, 1, 'acked: delivered once');
      assert.deepEqual(
        deliveries.filter((e) => e.id === b.payload.id).map((e) => e.metadata.retryCount),
        [undefined, 1, 2],
      );
      sub.close();
      pub.close();
    },
  },
  {
    name: 'auth.refresh: another user is refused without closing; the same user is refreshed',
    async run({ connect }) {
      const c = await connect({ token: await token({ expiresIn: '10m' }) });
      c.send({ type: 'auth.refresh', payload: { token: await token({ sub: 'bob' }) } });
      const err = await c.nextOfType('connection.error');
      assert.equal(err.payload.code, 'UNAUTHORIZED');
      assert.equal(err.payload.fatal, false);
      c.send({ type: 'auth.refresh', payload: { token: await token({ expiresIn: '1h' }) } });
      const ok = await c.nextOfType('auth.refreshed');
      assert.ok(ok.payload.expiresAt > Date.now() + 3_000_000);
      assert.equal(c.closed, undefined);
      c.close();
    },
  },
  {
    name: 'token expiry: connection.disconnected TOKEN_EXPIRED, then close 4002',
    async run({ connect, ownNode }) {
      const node = await ownNode(FAST_HEARTBEAT);
      const exp = Math.floor(Date.now() / 1000) + 2;
      const c = await connect({ token: await token({ expiresIn: exp }) }, node);
      const d = await c.nextOfType('connection.disconnected', 10_000);
      assert.equal(d.payload.code, 'TOKEN_EXPIRED');
      assert.equal((await c.waitClosed()).code, 4002);
    },
  },
  {
    name: 'heartbeat: the server pings; a client that answers stays connected',
    async run({ connect, ownNode }) {
      const node = await ownNode(FAST_HEARTBEAT);
      const c = await connect({}, node);
      for (let i = 0; i < 4; i++) await c.nextOfType('heartbeat.ping', 10 * HEARTBEAT_MS + 5000);
      assert.equal(c.closed, undefined);
      c.close();
    },
  },
  {
    name: 'take-over: a newer connection of the session closes the older with 4009',
    async run({ connect }) {
      const tok = await token({ sub: 'dave' });
      const sessionId = `take-${Math.random().toString(36).slice(2)}`;
      const c1 = await connect({ token: tok, sessionId });
      const c2 = await connect({ token: tok, sessionId });
      assert.equal((await c1.waitClosed(5000)).code, 4009);
      c2.close();
    },
  },
  {
    name: 'drain: connection.disconnected with reconnect:true, then 1001',
    endsGateway: true,
    async run({ connect, ownNode }) {
      const node = await ownNode({});
      const c = await connect({}, node);
      const closing = node.close();
      const d = await c.nextOfType('connection.disconnected', 5000);
      assert.equal(d.payload.reconnect, true);
      assert.equal((await c.waitClosed(5000)).code, 1001);
      await closing;
    },
  },
];

/** In-process nodes: a shared one per transport, and one of its own for a case that asks. */
for (const transport of TRANSPORTS) {
  describe(`protocol conformance over ${transport}, in-process nodes`, () => {
    let node: ApiXNode;
    before(async () => {
      node = await startNode({ sessionTtlMs: SESSION_TTL_MS });
    });
    after(() => node.close());

    for (const c of CASES) {
      it(c.name, async () => {
        const own: ApiXNode[] = [];
        try {
          await c.run({
            transport,
            node,
            connect: (opts, on) => connectOver(transport, on ?? node, opts),
            ownNode: async (overrides) => {
              const n = await startNode(overrides);
              own.push(n);
              return n;
            },
            away: (orgId, userId, sessionId) =>
              until(
                () => node.gateway.sessions.get(`${orgId}/${userId}/${sessionId}`)?.isLive === false,
                'the session to be away',
              ),
          });
        } finally {
          for (const n of own) await n.close();
        }
      });
    }
  });
}

/** The environment of the process: what the cases ask for (ownNode) for the whole run. */
function processEnv(dataDir: string): Record<string, string> {
  return {
    APIX_DATA_DIR: dataDir,
    APIX_JWT_SECRET: TEST_SECRET,
    APIX_SESSION_TTL_MS: String(SESSION_TTL_MS),
    APIX_HEARTBEAT_INTERVAL_MS: String(FAST_HEARTBEAT.heartbeatIntervalMs),
    APIX_ACK_TIMEOUT_MS: String(FAST_ACKS.ackTimeoutMs),
    APIX_RETRY_BASE_MS: String(FAST_ACKS.retry!.baseMs),
    APIX_RETRY_MAX_MS: String(FAST_ACKS.retry!.maxMs),
    APIX_RETRY_MAX_ATTEMPTS: String(FAST_ACKS.retry!.maxAttempts),
    APIX_DRAIN_TIMEOUT_MS: '10000',
  };
}

/** The settings ownNode may ask of the process: those PROCESS_ENV gives it. */
function assertProcessHas(overrides: Partial<Config>): void {
  const allowed = { ...FAST_HEARTBEAT, ...FAST_ACKS } as Record<string, unknown>;
  for (const [key, value] of Object.entries(overrides))
    assert.deepEqual(value, allowed[key], `the process runs without ${key}=${JSON.stringify(value)}`);
}

/** Polls an async check (an HTTP request) until true. */
async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The organization's resumable (away) sessions on the process, from `GET /v1/admin/stats`. */
async function awaySessions(gw: GatewayUrls, orgId: string): Promise<number> {
  const res = await fetch(`${gw.httpUrl}/v1/admin/stats`, {
    headers: { authorization: `Bearer ${await token({ sub: 'operator', org: orgId, roles: ['admin'] })}` },
  });
  assert.equal(res.status, 200);
  const stats = (await res.json()) as { organization: { connections: { byStatus: Record<string, number> } } };
  return stats.organization.connections.byStatus.RECONNECTING ?? 0;
}

/**
 * SIGTERM once every runner has arrived (the drain cases run at once, one per transport, each with its
 * clients connected); a runner that failed before arriving is counted as arrived, so the others go on.
 */
function sigtermBarrier(runners: number, gw: () => GatewayProcess) {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((resolve) => (release = resolve));
  let exit: Promise<number | null> | undefined;
  const arrive = () => {
    if (++arrived === runners) release();
  };
  return {
    arrive,
    async closeWhenAll(): Promise<void> {
      arrive();
      await all;
      exit ??= gw().kill('SIGTERM');
      assert.equal(await exit, 0, 'the drained process exits 0');
    },
  };
}

describe('protocol conformance against `apix serve` (one process, what `npm start` runs)', () => {
  let gw: GatewayProcess;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'apix-conformance-'));
    gw = await spawnGateway(processEnv(dataDir));
  });
  after(async () => {
    await gw.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  const ctx = (transport: TransportName, close: () => Promise<void>): Ctx => ({
    transport,
    node: gw,
    connect: (opts, on) => connectOver(transport, on ?? gw, opts),
    ownNode: async (overrides) => {
      assertProcessHas(overrides);
      return { wsUrl: gw.wsUrl, httpUrl: gw.httpUrl, close };
    },
    away: (orgId) => until(async () => (await awaySessions(gw, orgId)) === 1, 'the session to be away'),
  });

  for (const transport of TRANSPORTS)
    describe(`over ${transport}`, () => {
      for (const c of CASES.filter((x) => !x.endsGateway))
        it(c.name, () => c.run(ctx(transport, async () => {})));
    });

  // Last: the cases that end the gateway, over every transport at once, then one SIGTERM.
  for (const c of CASES.filter((x) => x.endsGateway))
    describe(`${c.name}, over every transport at once`, { concurrency: true }, () => {
      const barrier = sigtermBarrier(TRANSPORTS.length, () => gw);
      for (const transport of TRANSPORTS)
        it(`over ${transport}`, async () => {
          let closed = false;
          try {
            await c.run(ctx(transport, () => ((closed = true), barrier.closeWhenAll())));
          } finally {
            if (!closed) barrier.arrive();
          }
        });
    });
});
