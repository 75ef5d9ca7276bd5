/**
 * `message.queued` (docs/protocol.md §3, 4) when the target of a `user:` channel is away on another node: the
 * publisher's node learns it from the session store shared through Redis. Three gateway nodes on one real
 * Redis; the memory engine (one node) answers the same for a session away on that node.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, sleep, startNode, token } from '../../support/gateway.ts';
import { findRedis, uniquePrefix, skipWithoutRedis } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';

const note = (n: number) => ({ n });

/** Connects, then leaves: the session waits for a resume on `node`. */
async function leaveAway(node: ApiXNode, user: string, sessionId: string): Promise<void> {
  const c = await RawClient.connect(node.wsUrl, {
    token: await token({ sub: user }),
    sessionId,
    subscriptions: [`user:${user}`],
  });
  c.close();
  await c.waitClosed();
  await sleep(100); // the snapshot marking it away is written in the background
}

describe(
  'message.queued for a user: channel whose sessions are away on another node (redis, three nodes)',
  { skip: skipWithoutRedis() },
  () => {
    let found: FoundRedis;
    let prefix: string;
    let nodes: ApiXNode[];
    let svc: RawClient;
    before(async () => {
      found = await findRedis();
      prefix = uniquePrefix();
      nodes = [];
      for (let i = 0; i < 3; i++) {
        const cfg = config({ nodeId: `q${i}`, redisUrl: found.url, redisPrefix: prefix });
        const node = createNode({
          config: cfg,
          logger: createLogger('silent', cfg.nodeId!),
          engines: await createEngines(cfg, { nodeId: cfg.nodeId! }),
        });
        await node.listen();
        nodes.push(node);
      }
      svc = await RawClient.connect(nodes[0]!.wsUrl, {
        token: await token({ sub: 'svc', roles: ['service'] }),
      });
    });
    after(async () => {
      svc?.close();
      await Promise.all(nodes.map((n) => n.close()));
      await deletePrefix(found.url, prefix);
      await found.release();
    });

    it('away on node B: a publish on node A answers message.queued; the event waits and arrives on resume on node C', async () => {
      await leaveAway(nodes[1]!, 'bob', 'bob-tab');
      const r = await svc.publish('user:bob', 'note', note(1));
      assert.equal(r.type, 'message.queued', JSON.stringify(r.payload));
      const back = await RawClient.connect(nodes[2]!.wsUrl, {
        token: await token({ sub: 'bob' }),
        sessionId: 'bob-tab',
      });
      const [ev] = await back.waitForEvents(1, 'user:bob');
      assert.equal(ev!.id, r.payload.id);
      // Live again (on node C): message.sent.
      await sleep(100);
      const live = await svc.publish('user:bob', 'note', note(2));
      assert.equal(live.type, 'message.sent', JSON.stringify(live.payload));
      await back.waitForEvents(2, 'user:bob');
      back.close();
    });

    it('one session away on node B and another live on node C: message.sent (the target is online)', async () => {
      await leaveAway(nodes[1]!, 'carol', 'carol-phone');
      const laptop = await RawClient.connect(nodes[2]!.wsUrl, {
        token: await token({ sub: 'carol' }),
        sessionId: 'carol-laptop',
        subscriptions: ['user:carol'],
      });
      await sleep(100);
      assert.equal((await svc.publish('user:carol', 'note', note(1))).type, 'message.sent');
      laptop.close();
      await laptop.waitClosed();
      await sleep(100);
      assert.equal(
        (await svc.publish('user:carol', 'note', note(2))).type,
        'message.queued',
        'both away now',
      );
    });

    it('a user with no session, or whose session ended: message.sent', async () => {
      assert.equal((await svc.publish('user:nobody', 'note', note(1))).type, 'message.sent');
    });
  },
);

describe('message.queued for a user: channel whose session is away (memory engine, one node)', () => {
  it('away on this node: message.queued; live: message.sent', async () => {
    const node = await startNode();
    try {
      const svc = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'svc', roles: ['service'] }),
      });
      await leaveAway(node, 'dave', 'dave-tab');
      assert.equal((await svc.publish('user:dave', 'note', note(1))).type, 'message.queued');
      const back = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'dave' }),
        sessionId: 'dave-tab',
      });
      await back.waitForEvents(1, 'user:dave');
      assert.equal((await svc.publish('user:dave', 'note', note(2))).type, 'message.sent');
      back.close();
      svc.close();
    } finally {
      await node.close();
    }
  });
});
