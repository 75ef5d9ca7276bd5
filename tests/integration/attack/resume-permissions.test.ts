/**
 * Issue 12, holes 5, 6 and 8, on the memory engine and on two Redis nodes sharing one Redis:
 * - 5: a resume or a takeover with new credentials re-runs the subscribe check for every restored
 *   subscription (same node, and on another node from the snapshot); a subscription the new token does not
 *   allow is dropped (`denied` of `connection.established`, then `subscription.removed`) and gets no event.
 *   Re-subscribing with `replay` to an existing subscription is checked too.
 * - 6: a channel whose `history` rule denies the caller hands out no past event over WebSocket (`replay`,
 *   `since`, `resume.lastEventIds`): the subscription is granted with `recovered: false`.
 * - 8: the client type that permission rules see comes from the credential (the `client_type` claim, an API
 *   key), never from the `connect` frame.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { waitFor } from '../../support/wait.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import { MemoryChannelRegistry } from '../../../src/subscriptions/channel-registry.ts';
import type { ChannelRegistry, ChannelSettings } from '../../../src/subscriptions/channel-registry.ts';
import { sessionKey } from '../../../src/connections/session.ts';

/** A registry that tells nobody of changes (as a node that missed the change would behave). */
class QuietRegistry implements ChannelRegistry {
  private readonly inner = new MemoryChannelRegistry();
  get(orgId: string, name: string): ChannelSettings | undefined {
    return this.inner.get(orgId, name);
  }
  set(orgId: string, name: string, settings: ChannelSettings): Promise<void> {
    return this.inner.set(orgId, name, settings);
  }
}

interface Setup {
  nodes: ApiXNode[];
  channels: QuietRegistry;
  close(): Promise<void>;
}

async function startNodes(
  n: number,
  engines: (cfg: Config) => Promise<ApiXNode['engines'] | undefined>,
): Promise<Setup> {
  const channels = new QuietRegistry();
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < n; i++) {
    const cfg = config({ nodeId: `rp${i}-${Math.random().toString(36).slice(2, 6)}` });
    const e = await engines(cfg);
    const node = createNode({
      config: cfg,
      logger: createLogger('silent', cfg.nodeId!),
      channels,
      ...(e ? { engines: e } : {}),
    });
    await node.listen();
    nodes.push(node);
  }
  return { nodes, channels, close: async () => void (await Promise.all(nodes.map((x) => x.close()))) };
}

const dora = (roles: string[]) => token({ sub: 'dora', roles });
const established = (c: RawClient): Frame => c.frames.find((f) => f.type === 'connection.established')!;

/** Connects, returning the client even when the answer is not `connection.established`. */
async function connectRaw(
  url: string,
  tok: string,
  sessionId: string,
  extra: Record<string, unknown> = {},
): Promise<RawClient> {
  const c = await RawClient.open(url);
  c.send({
    type: 'connect',
    payload: {
      sessionId,
      clientType: 'WEB_APP',
      authentication: { token: tok },
      subscriptions: [],
      ...extra,
    },
  });
  await c.next((f) => f.type === 'connection.established' || f.type === 'connection.error');
  return c;
}

/** Publishes a marker on `agent:marker` and waits for it: every earlier frame has arrived by then. */
async function barrier(svc: RawClient, c: RawClient): Promise<void> {
  const tag = Math.random().toString(36).slice(2);
  await svc.publish('agent:marker', 'marker', { tag });
  await c.next((f) => f.type === 'marker' && f.payload?.tag === tag, 5000);
}

function suite(name: string, make: () => Promise<Setup>, skip: string | false): void {
  describe(`resume, replay and client type permissions (${name})`, { skip }, () => {
    let setup: Setup;
    let svc: RawClient;
    const clients: RawClient[] = [];
    const track = (c: RawClient) => (clients.push(c), c);
    const a = () => setup.nodes[0]!;
    const b = () => setup.nodes[setup.nodes.length - 1]!;

    before(async () => {
      setup = await make();
      svc = await RawClient.connect(a().wsUrl, { token: await token({ sub: 'svc', roles: ['service'] }) });
      await setup.channels.set('acme', 'room:staff', { permissions: { subscribe: { roles: ['admin'] } } });
      await setup.channels.set('acme', 'room:board', {
        permissions: { subscribe: { roles: ['member', 'admin'] }, history: { deny: true } },
      });
      await setup.channels.set('acme', 'agent:svc-only', {
        permissions: { publish: { clientTypes: ['INTERNAL_SERVICE'] } },
      });
    });
    after(async () => {
      for (const c of clients) c.terminate();
      svc?.close();
      await setup?.close();
    });

    /** dora as admin, on `node`, subscribed to room:staff and the admin dashboard, then gone. */
    async function adminSessionAway(node: ApiXNode, sessionId: string): Promise<void> {
      const admin = track(
        await RawClient.connect(node.wsUrl, {
          token: await dora(['admin']),
          sessionId,
          subscriptions: ['room:staff', 'org:apix-dashboard', 'agent:marker'],
        }),
      );
      assert.deepEqual(established(admin).payload.denied, []);
      await svc.publish('room:staff', 'note', { n: 'seen' });
      await admin.next((f) => f.type === 'note');
      admin.close();
      await admin.waitClosed();
      const key = sessionKey('acme', 'dora', sessionId);
      await waitFor(() => node.gateway.sessions.get(key)?.isLive === false, 5000, 'the session to be away');
    }

    function assertDropped(c: RawClient): void {
      const est = established(c).payload;
      assert.equal(est.resumed, true);
      assert.ok(!est.subscriptions.includes('room:staff'), JSON.stringify(est));
      assert.ok(!est.subscriptions.includes('org:apix-dashboard'), JSON.stringify(est));
      assert.ok(est.subscriptions.includes('agent:marker'));
      const denied = new Map(est.denied.map((d: { channel: string; code: string }) => [d.channel, d.code]));
      assert.equal(denied.get('room:staff'), 'FORBIDDEN');
      assert.equal(denied.get('org:apix-dashboard'), 'FORBIDDEN');
      const removed = c.frames.find((f) => f.type === 'subscription.removed');
      assert.ok(removed, 'subscription.removed follows');
      assert.deepEqual([...removed.payload.channels].sort(), ['org:apix-dashboard', 'room:staff']);
    }

    it('hole 5: a resume on the same node with a member token drops the admin-only subscriptions', async () => {
      await adminSessionAway(a(), 'S-same');
      await svc.publish('room:staff', 'note', { n: 'while-away' });
      const m = track(
        await connectRaw(a().wsUrl, await dora(['member']), 'S-same', {
          resume: { lastEventIds: { 'room:staff': '0-0' } },
        }),
      );
      assertDropped(m);
      await svc.publish('room:staff', 'note', { n: 'after' });
      await barrier(svc, m);
      assert.deepEqual(
        m.frames.filter((f) => f.type === 'note' || f.type === 'apix.stats'),
        [],
        'no staff event, no stats',
      );
      // Re-subscribing with replay is a new subscribe, checked.
      const again = await m.subscribe({ channels: ['room:staff'], replay: { last: 100 } });
      assert.equal(again.payload.denied[0]?.code, 'FORBIDDEN');
      await barrier(svc, m);
      assert.equal(m.frames.filter((f) => f.type === 'note').length, 0);
    });

    it('hole 5: a takeover of a live session with a member token drops them too', async () => {
      const admin = track(
        await RawClient.connect(a().wsUrl, {
          token: await dora(['admin']),
          sessionId: 'S-take',
          subscriptions: ['room:staff', 'org:apix-dashboard', 'agent:marker'],
        }),
      );
      const m = track(await connectRaw(a().wsUrl, await dora(['member']), 'S-take'));
      assert.equal((await admin.waitClosed()).code, 4009);
      assertDropped(m);
      await svc.publish('room:staff', 'note', { n: 'after-takeover' });
      await barrier(svc, m);
      assert.equal(m.frames.filter((f) => f.type === 'note').length, 0);
    });

    it('hole 5: re-subscribing with replay to an existing subscription runs the subscribe check', async () => {
      await setup.channels.set('acme', 'room:late', {});
      const m = track(
        await RawClient.connect(a().wsUrl, {
          token: await dora(['member']),
          subscriptions: ['room:late', 'agent:marker'],
        }),
      );
      await svc.publish('room:late', 'note', { n: 'past' });
      await m.next((f) => f.type === 'note');
      // The rule changes where this node is not told (the quiet registry).
      await setup.channels.set('acme', 'room:late', { permissions: { subscribe: { roles: ['admin'] } } });
      const from = m.frames.length;
      const r = await m.subscribe({ channels: ['room:late'], replay: { last: 100 } });
      assert.equal(r.payload.denied[0]?.code, 'FORBIDDEN', JSON.stringify(r.payload));
      await svc.publish('room:late', 'note', { n: 'live' });
      await barrier(svc, m);
      assert.equal(m.frames.slice(from).filter((f) => f.type === 'note').length, 0, 'no replay, no live');
    });

    it('hole 6: a history deny rule: replay, since and resume.lastEventIds hand out no past event', async () => {
      for (let i = 0; i < 3; i++) await svc.publish('room:board', 'note', { n: `past-${i}` });
      const member = await token({ sub: 'mia', roles: ['member'] });
      const pastOf = (c: RawClient) => c.frames.filter((f) => f.type === 'note' && /past/.test(f.payload.n));

      const r1 = track(
        await RawClient.connect(a().wsUrl, { token: member, subscriptions: ['agent:marker'] }),
      );
      const added1 = await r1.subscribe({ channels: ['room:board'], replay: { last: 100 } });
      assert.deepEqual(
        added1.payload.channels.map((c: { channel: string; recovered: boolean }) => [c.channel, c.recovered]),
        [['room:board', false]],
      );

      const r2 = track(
        await RawClient.connect(a().wsUrl, { token: member, subscriptions: ['agent:marker'] }),
      );
      const added2 = await r2.subscribe({ channels: ['room:board'], since: { 'room:board': '0-0' } });
      assert.deepEqual(
        added2.payload.channels.map((c: { channel: string; recovered: boolean }) => [c.channel, c.recovered]),
        [['room:board', false]],
      );

      const r3 = track(
        await RawClient.connect(a().wsUrl, {
          token: member,
          subscriptions: ['room:board', 'agent:marker'],
          resume: { 'room:board': '0-0' },
        }),
      );
      assert.equal(established(r3).payload.recovered['room:board'], false);
      assert.ok(established(r3).payload.subscriptions.includes('room:board'));

      await svc.publish('room:board', 'note', { n: 'live' });
      for (const c of [r1, r2, r3]) {
        await c.next((f) => f.type === 'note' && f.payload.n === 'live');
        await barrier(svc, c);
        assert.deepEqual(pastOf(c), [], 'no past event');
      }
    });

    it('hole 8: the client type comes from the credential, not from the connect frame', async () => {
      const member = await token({ sub: 'mo', roles: ['member'] });
      const claimed = track(
        await RawClient.connect(a().wsUrl, { token: member, clientType: 'INTERNAL_SERVICE' }),
      );
      const refused = await claimed.publish('agent:svc-only', 'note', { n: 1 });
      assert.equal(refused.type, 'message.failed');
      assert.equal(refused.payload.code, 'FORBIDDEN');
      // A token whose issuer says INTERNAL_SERVICE: granted, whatever the frame says.
      const vouched = track(
        await RawClient.connect(a().wsUrl, {
          token: await token({ sub: 'worker', roles: ['member'], client_type: 'INTERNAL_SERVICE' }),
          clientType: 'WEB_APP',
        }),
      );
      assert.equal((await vouched.publish('agent:svc-only', 'note', { n: 2 })).type, 'message.sent');
      // An API key vouches for INTERNAL_SERVICE.
      const key = track(await RawClient.connect(a().wsUrl, { token: 'apix_static_acmekey' }));
      assert.equal((await key.publish('agent:svc-only', 'note', { n: 3 })).type, 'message.sent');
      // A malformed claim is refused at connect.
      const bad = track(
        await connectRaw(a().wsUrl, await token({ sub: 'x', client_type: 'ROOT' }), 'bad-ct'),
      );
      const err = bad.frames.find((f) => f.type === 'connection.error');
      assert.equal(err?.payload.code, 'UNAUTHORIZED');
    });

    if (name.startsWith('redis'))
      it('hole 5: a resume on another node, restored from the snapshot, drops them', async () => {
        await adminSessionAway(a(), 'S-cross');
        await waitFor(
          async () =>
            (await b().engines.sessionStore.load(sessionKey('acme', 'dora', 'S-cross')))?.subscriptions
              .length === 3,
          5000,
          'the snapshot',
        );
        await svc.publish('room:staff', 'note', { n: 'while-away' });
        const m = track(
          await connectRaw(b().wsUrl, await dora(['member']), 'S-cross', {
            resume: { lastEventIds: { 'room:staff': '0-0' } },
          }),
        );
        assertDropped(m);
        await svc.publish('room:staff', 'note', { n: 'after' });
        await barrier(svc, m);
        assert.equal(m.frames.filter((f) => f.type === 'note').length, 0);
      });
  });
}

suite('memory', () => startNodes(1, async () => undefined), false);

let redis: FoundRedis | undefined;
let prefix = '';
suite(
  'redis, two nodes',
  async () => {
    redis = await findRedis();
    prefix = uniquePrefix();
    const url = redis.url;
    const setup = await startNodes(2, (cfg) =>
      createEngines({ ...cfg, redisUrl: url, redisPrefix: prefix }, { nodeId: cfg.nodeId! }),
    );
    return {
      ...setup,
      close: async () => {
        await setup.close();
        await deletePrefix(url, prefix);
        await redis!.release();
      },
    };
  },
  skipWithoutRedis(),
);
