/**
 * Attack suite, connection caps (APIX_MAX_CONNECTIONS_PER_ADDRESS / _USER / _ORG): a flood of open
 * sockets from one address, one user (or organization) holding more connections than its cap, and churn
 * over every way a connection can end, after which the counts are back to the control connection's alone.
 * Raw sockets (handshake and frames by hand); each case names the expected answer; the control connection
 * (127.0.0.1, user `control`) publishes and receives its own event after each one.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { Control, Op, portOf, until, watchProcess, WireClient } from './helpers.ts';

const watch = watchProcess();
after(() => watch.assertNone());

const CLOSE_1000 = Buffer.from([0x03, 0xe8]);

/** Opens a raw socket from `from` and sends `connect`; resolves with the first answer to it. */
async function connectAs(
  node: ApiXNode,
  from: string,
  claims: { sub: string; org?: string },
  sessionId = `s-${randomBytes(4).toString('hex')}`,
): Promise<{ c: WireClient; answer: { type: string; payload?: any } }> {
  // The token first: the node's connect timeout is 300 ms, and signing can take that long on a busy machine.
  const jwt = await token(claims);
  const c = await WireClient.open(portOf(node), undefined, 3000, from);
  assert.equal(c.status, 101, c.responseHead);
  c.sendJson({
    type: 'connect',
    payload: {
      sessionId,
      clientType: 'API_CLIENT',
      authentication: { token: jwt },
      subscriptions: [],
    },
  });
  const answer = await c.waitJson(
    (f) => f.type === 'connection.established' || f.type === 'connection.error',
  );
  return { c, answer };
}

function assertCapped(
  r: { c: WireClient; answer: { type: string; payload?: any } },
  what: RegExp,
): Promise<void> {
  assert.equal(r.answer.type, 'connection.error', JSON.stringify(r.answer));
  assert.equal(r.answer.payload.code, 'RATE_LIMITED');
  assert.equal(r.answer.payload.fatal, true);
  assert.match(r.answer.payload.message, what);
  return r.c.waitClosed().then((code) => {
    assert.equal(code, 4008);
    r.c.destroy();
  });
}

/** The counts of the caps' maps, without the control connection's own entries. */
function counts(node: ApiXNode) {
  const g = node.gateway;
  return {
    addresses: [...g.perAddress].filter(([k]) => !k.endsWith('127.0.0.1')),
    users: [...g.perUser].filter(([k]) => k !== 'acme/control'),
    orgs: [...g.perOrg].filter(([k]) => k !== 'acme'),
  };
}

describe('attack: connection caps', () => {
  let node: ApiXNode;
  let control: Control;
  before(async () => {
    node = await startNode({ connectionCaps: { perAddress: 10, perUser: 4, perOrg: 0 } });
    control = await Control.start(node);
  });
  after(async () => {
    await control.check();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  it('40 sockets at once from 127.0.0.2 against APIX_MAX_CONNECTIONS_PER_ADDRESS=10 -> exactly 10 upgraded (101), the 30 others HTTP 429 RATE_LIMITED "too many open connections from this address", none reset; 127.0.0.3 and the control unaffected; each slot freed (abrupt close, clean close) is given back exactly once', async () => {
    const port = portOf(node);
    const flood = await Promise.all(
      Array.from({ length: 40 }, () => WireClient.open(port, undefined, 5000, '127.0.0.2')),
    );
    const upgraded = flood.filter((c) => c.status === 101);
    const refused = flood.filter((c) => c.status === 429);
    assert.equal(upgraded.length, 10);
    assert.equal(refused.length, 30, 'every other attempt answered 429');
    for (const c of refused) {
      await c.waitEnded();
      assert.equal(JSON.parse(c.body).code, 'RATE_LIMITED');
      assert.match(JSON.parse(c.body).message, /too many open connections from this address \(limit 10\)/);
    }
    assert.equal(node.gateway.perAddress.get('127.0.0.2'), 10);
    // Another address is not affected, nor is the control connection.
    const other = await connectAs(node, '127.0.0.3', { sub: 'other' });
    assert.equal(other.answer.type, 'connection.established');
    await control.check();

    // Authenticate the 10 (distinct users, under the per-user cap), then free two slots: one abrupt, one clean.
    for (const [i, c] of upgraded.entries()) await c.connect(await token({ sub: `flood-${i}` }));
    upgraded[0]!.destroy();
    upgraded[1]!.sendFrame({ opcode: Op.CLOSE, payload: CLOSE_1000 });
    assert.equal(await upgraded[1]!.waitClosed(), 1000);
    await until(() => node.gateway.perAddress.get('127.0.0.2') === 8, 3000, 'two slots given back');
    // 3 at once for 2 free slots: 2 upgraded, 1 refused.
    const again = await Promise.all(
      Array.from({ length: 3 }, () => WireClient.open(port, undefined, 5000, '127.0.0.2')),
    );
    assert.deepEqual(again.map((c) => c.status).sort(), [101, 101, 429]);
    await control.check();
    for (const c of [...flood, ...again, other.c]) c.destroy();
    await until(() => counts(node).addresses.length === 0, 3000, 'the flood address forgotten');
    await until(() => counts(node).users.length === 0, 3000, 'the flood users forgotten');
    await control.check();
  });

  it('one user opening 6 connections from 3 addresses against APIX_MAX_CONNECTIONS_PER_USER=4 -> 4 established; the 5th and 6th connection.error RATE_LIMITED (fatal) "too many connections for this user", close 4008; another user unaffected; taking over one of its own sessions still works (resumed, the old socket 4009); a freed slot is given back', async () => {
    const held = [];
    for (let i = 0; i < 4; i++) {
      const r = await connectAs(node, `127.0.0.${10 + (i % 3)}`, { sub: 'mallory' }, `m-${i}`);
      assert.equal(r.answer.type, 'connection.established', JSON.stringify(r.answer));
      held.push(r.c);
    }
    for (let i = 4; i < 6; i++)
      await assertCapped(
        await connectAs(node, `127.0.0.${10 + (i % 3)}`, { sub: 'mallory' }, `m-${i}`),
        /too many connections for this user \(limit 4/,
      );
    assert.equal(node.gateway.perUser.get('acme/mallory'), 4);
    // The same organization's other users are not affected.
    const bob = await connectAs(node, '127.0.0.10', { sub: 'bob' });
    assert.equal(bob.answer.type, 'connection.established');
    await control.check();

    // A takeover of session m-0 (its socket still open) replaces it: not refused.
    const takeover = await connectAs(node, '127.0.0.12', { sub: 'mallory' }, 'm-0');
    assert.equal(takeover.answer.type, 'connection.established', JSON.stringify(takeover.answer));
    assert.equal(takeover.answer.payload.resumed, true);
    assert.equal(await held[0]!.waitClosed(), 4009);
    held[0]!.destroy();
    await until(() => node.gateway.perUser.get('acme/mallory') === 4, 3000, 'the replaced socket released');

    // One leaves abruptly: exactly one slot comes back.
    held[1]!.destroy();
    await until(() => node.gateway.perUser.get('acme/mallory') === 3, 3000, 'the abrupt close counted');
    const back = await connectAs(node, '127.0.0.11', { sub: 'mallory' });
    assert.equal(back.answer.type, 'connection.established');
    await assertCapped(await connectAs(node, '127.0.0.11', { sub: 'mallory' }), /for this user/);
    await control.check();
    for (const c of [...held, takeover.c, back.c, bob.c]) c.destroy();
    await until(() => counts(node).users.length === 0, 3000, 'mallory and bob forgotten');
    await until(() => counts(node).addresses.length === 0, 3000, 'their addresses forgotten');
    await control.check();
  });
});

describe('attack: connection caps per organization, and churn', () => {
  let node: ApiXNode;
  let control: Control;
  before(async () => {
    node = await startNode({
      connectionCaps: { perAddress: 6, perUser: 2, perOrg: 5 },
      connectTimeoutMs: 300,
      sessionTtlMs: 200,
    });
    // The control is in its own organization, so that org "tiny"'s cap is tiny's alone.
    control = await Control.start(node, await token({ sub: 'control', org: 'acme' }));
  });
  after(async () => {
    await control.check();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  it('organization "tiny" opening 7 connections (distinct users and addresses) against APIX_MAX_CONNECTIONS_PER_ORG=5 -> 5 established, the 6th and 7th RATE_LIMITED "too many connections for this organization", close 4008; organization acme unaffected', async () => {
    const held = [];
    for (let i = 0; i < 5; i++) {
      const r = await connectAs(node, `127.0.1.${i + 1}`, { sub: `t${i}`, org: 'tiny' });
      assert.equal(r.answer.type, 'connection.established');
      held.push(r.c);
    }
    for (let i = 5; i < 7; i++)
      await assertCapped(
        await connectAs(node, `127.0.1.${i + 1}`, { sub: `t${i}`, org: 'tiny' }),
        /too many connections for this organization \(limit 5/,
      );
    const acme = await connectAs(node, '127.0.1.20', { sub: 'someone', org: 'acme' });
    assert.equal(acme.answer.type, 'connection.established');
    await control.check();
    for (const c of [...held, acme.c]) c.destroy();
    await until(() => counts(node).orgs.length === 0, 3000, 'tiny forgotten');
    await control.check();
  });

  it('5 rounds of churn from one address over every way out (abrupt reset, clean close, no connect in time 4004, bad token 4001, refused by the user cap 4008, session takeover 4009, refused by the address cap 429) -> the address, user and organization counts back to the control connection alone', async () => {
    const from = '127.0.2.1';
    for (let round = 0; round < 5; round++) {
      const sub = `churn-${round}`;
      const a = await connectAs(node, from, { sub, org: 'tiny' }, 'a');
      const b = await connectAs(node, from, { sub, org: 'tiny' }, 'b');
      assert.equal(a.answer.type, 'connection.established');
      assert.equal(b.answer.type, 'connection.established');
      // The user's third: refused by the user cap.
      await assertCapped(await connectAs(node, from, { sub, org: 'tiny' }, 'c'), /for this user/);
      // A takeover of "a": the old socket closed 4009.
      const a2 = await connectAs(node, from, { sub, org: 'tiny' }, 'a');
      assert.equal(a2.answer.type, 'connection.established');
      assert.equal(await a.c.waitClosed(), 4009);
      a.c.destroy();
      // A bad token: 4001, never counted against a user.
      const bad = await WireClient.open(portOf(node), undefined, 3000, from);
      bad.sendJson({
        type: 'connect',
        payload: {
          sessionId: 'x',
          clientType: 'API_CLIENT',
          authentication: { token: 'nope' },
          subscriptions: [],
        },
      });
      assert.equal(await bad.waitClosed(), 4001);
      bad.destroy();
      // Never sends connect: 4004 after 300 ms.
      const idle = await WireClient.open(portOf(node), undefined, 3000, from);
      // Fill the address (6): the next upgrade is refused with 429.
      await until(() => (node.gateway.perAddress.get(from) ?? 0) <= 4, 3000, 'refused sockets released');
      const fill = [];
      while ((node.gateway.perAddress.get(from) ?? 0) < 6)
        fill.push(await WireClient.open(portOf(node), undefined, 3000, from));
      const over = await WireClient.open(portOf(node), undefined, 3000, from);
      assert.equal(over.status, 429);
      assert.equal(await idle.waitClosed(), 4004);
      idle.destroy();
      // Leave: a2 cleanly, b abruptly, the rest by the connect timeout or a reset.
      a2.c.sendFrame({ opcode: Op.CLOSE, payload: CLOSE_1000 });
      b.c.destroy();
      // The fill sockets: reset at once on even rounds, cut by the connect timeout (4004) on odd ones.
      for (const c of fill) {
        if (round % 2 === 1) assert.equal(await c.waitClosed(), 4004);
        c.destroy();
      }
      over.destroy();
      await control.check();
    }
    await until(
      () => {
        const c = counts(node);
        return c.addresses.length === 0 && c.users.length === 0 && c.orgs.length === 0;
      },
      5000,
      `every count back to the control's alone: ${JSON.stringify(counts(node))}`,
    );
    assert.equal(node.gateway.connections.size, 1);
    await until(() => node.gateway.sessions.size === 1, 3000, 'only the control session left');
    await control.check();
  });
});
