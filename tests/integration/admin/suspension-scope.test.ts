/**
 * What an operator's suspension covers (issue 12): a session, a user (every session, a new session id
 * included) or an API key (every connection made with it), on every node, kept in the suspension store
 * (memory, or Redis shared by the nodes: a node started after the suspension refuses it too), until lifted.
 */
import { describe, it, before, after } from 'node:test';
import { execFile } from 'node:child_process';
import assert from 'node:assert/strict';
import { RawClient, config, token } from '../../support/gateway.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';

type Engines = (cfg: Config) => Promise<ApiXNode['engines'] | undefined>;

async function startNode(engines: Engines): Promise<ApiXNode> {
  const cfg = config({ nodeId: `su-${Math.random().toString(36).slice(2, 8)}` });
  const e = await engines(cfg);
  const node = createNode({
    config: cfg,
    logger: createLogger('silent', cfg.nodeId!),
    ...(e ? { engines: e } : {}),
  });
  await node.listen();
  return node;
}

async function admin(node: ApiXNode, path: string, body: unknown = {}) {
  const res = await fetch(node.httpUrl + path, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${await token({ sub: 'ops', roles: ['admin'] })}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** A connect that must be refused as suspended: `connection.disconnected` FORBIDDEN, close 4011. */
async function refused(url: string, tok: string, sessionId: string): Promise<string> {
  const c = await RawClient.open(url);
  c.send({
    type: 'connect',
    payload: { sessionId, clientType: 'WEB_APP', authentication: { token: tok }, subscriptions: [] },
  });
  assert.equal((await c.waitClosed()).code, 4011, JSON.stringify(c.frames));
  const bye = c.frames.find((f) => f.type === 'connection.disconnected');
  assert.equal(bye?.payload.code, 'FORBIDDEN');
  return bye.payload.reason as string;
}

function suite(
  name: string,
  nodesOf: () => Promise<{ engines: Engines; close(): Promise<void> }>,
  n: number,
  skip: string | false,
  shared = n > 1,
) {
  describe(`suspension scope (${name})`, { skip }, () => {
    const nodes: ApiXNode[] = [];
    let engines: Engines;
    let close: () => Promise<void>;
    const clients: RawClient[] = [];
    const track = (c: RawClient) => (clients.push(c), c);
    before(async () => {
      ({ engines, close } = await nodesOf());
      for (let i = 0; i < n; i++) nodes.push(await startNode(engines));
    });
    after(async () => {
      for (const c of clients) c.terminate();
      await Promise.all(nodes.map((x) => x.close()));
      await close?.();
    });
    const last = () => nodes[nodes.length - 1]!;

    it('a suspended user is cut on every node and cannot come back under a new sessionId until resumed', async () => {
      const alice = await token({ sub: 'alice' });
      const bob = track(
        await RawClient.connect(last().wsUrl, { token: await token({ sub: 'bob' }), sessionId: 'b1' }),
      );
      const live = await Promise.all(
        nodes.map((x, i) => RawClient.connect(x.wsUrl, { token: alice, sessionId: `a${i}` }).then(track)),
      );
      const r = await admin(nodes[0]!, '/v1/admin/users/alice/suspend', { reason: 'fraud' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { userId: 'alice', scope: 'user', suspended: true, disconnectedHere: 1 });
      for (const c of live) assert.equal((await c.waitClosed()).code, 4011);
      for (const x of nodes) {
        assert.match(await refused(x.wsUrl, alice, `fresh-${Math.random()}`), /user is suspended/);
        assert.match(await refused(x.wsUrl, alice, 'a0'), /user is suspended/);
      }
      if (shared) {
        // A node that was not there when the suspension was made reads it from the store.
        const late = await startNode(engines);
        nodes.push(late);
        await refused(late.wsUrl, alice, 'from-a-new-node');
      }
      // Other users are not affected.
      assert.equal(bob.closed, undefined);
      assert.equal((await bob.publish('room:x', 'note', {})).type, 'message.sent');

      const lifted = await admin(last(), '/v1/admin/users/alice/resume');
      assert.deepEqual(lifted.body, { userId: 'alice', scope: 'user', suspended: false });
      for (const x of nodes) track(await RawClient.connect(x.wsUrl, { token: alice, sessionId: 'back' }));
    });

    it('a suspended API key: every connection made with it, on every node, whatever its session', async () => {
      const keys = await Promise.all(
        nodes.map((x) => RawClient.connect(x.wsUrl, { token: 'apix_static_acmekey' }).then(track)),
      );
      const r = await admin(last(), '/v1/admin/keys/static-1/suspend', { ttlMs: 60_000 });
      assert.equal(r.body.scope, 'key');
      for (const c of keys) assert.equal((await c.waitClosed()).code, 4011);
      for (const x of nodes) await refused(x.wsUrl, 'apix_static_acmekey', `k-${Math.random()}`);
      await admin(nodes[0]!, '/v1/admin/keys/static-1/resume');
      track(await RawClient.connect(last().wsUrl, { token: 'apix_static_acmekey' }));
    });

    it("a session suspension stays the session's: another session id of the user connects", async () => {
      const carl = await token({ sub: 'carl' });
      const c = track(await RawClient.connect(nodes[0]!.wsUrl, { token: carl, sessionId: 'c1' }));
      await admin(nodes[0]!, '/v1/admin/sessions/c1/suspend', { userId: 'carl' });
      assert.equal((await c.waitClosed()).code, 4011);
      for (const x of nodes) await refused(x.wsUrl, carl, 'c1');
      track(await RawClient.connect(last().wsUrl, { token: carl, sessionId: 'c2' }));
      await admin(nodes[0]!, '/v1/admin/sessions/c1/resume', { userId: 'carl' });
    });
  });
}

describe('apix admin suspend --scope', () => {
  it('suspends and resumes a user and a key from the command line', async () => {
    const node = await startNode(async () => undefined);
    const adminToken = await token({ sub: 'ops', roles: ['admin'] });
    const cli = (...args: string[]) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', 'src/cli/main.ts', 'admin', ...args, '--url', node.httpUrl],
          { encoding: 'utf8', env: { ...process.env, APIX_ADMIN_TOKEN: adminToken }, timeout: 30_000 },
          (err, stdout, stderr) =>
            resolve({ status: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    try {
      const dave = await token({ sub: 'dave' });
      const c = await RawClient.connect(node.wsUrl, { token: dave, sessionId: 'd1' });
      const s = await cli('suspend', 'dave', '--scope', 'user', '--ttl', '1h', '--reason', 'cli');
      assert.equal(s.status, 0, s.stderr);
      assert.deepEqual(JSON.parse(s.stdout), {
        userId: 'dave',
        scope: 'user',
        suspended: true,
        disconnectedHere: 1,
      });
      assert.equal((await c.waitClosed()).code, 4011);
      await refused(node.wsUrl, dave, 'd2');
      assert.equal((await cli('resume', 'dave', '--scope', 'user')).status, 0);
      (await RawClient.connect(node.wsUrl, { token: dave, sessionId: 'd3' })).close();
      const k = await cli('suspend', 'static-1', '--scope', 'key');
      assert.equal(JSON.parse(k.stdout).scope, 'key', k.stderr);
      await refused(node.wsUrl, 'apix_static_acmekey', 'k1');
      assert.equal((await cli('resume', 'static-1', '--scope', 'key')).status, 0);
      assert.equal((await cli('suspend', 'x', '--scope', 'org')).status, 2);
    } finally {
      await node.close();
    }
  });
});

suite('memory', async () => ({ engines: async () => undefined, close: async () => {} }), 1, false);

let redis: FoundRedis | undefined;
suite(
  'redis, two nodes',
  async () => {
    redis = await findRedis();
    const prefix = uniquePrefix();
    const url = redis.url;
    return {
      engines: (cfg) =>
        createEngines({ ...cfg, redisUrl: url, redisPrefix: prefix }, { nodeId: cfg.nodeId! }),
      close: async () => {
        await deletePrefix(url, prefix);
        await redis!.release();
      },
    };
  },
  2,
  skipWithoutRedis(),
);
