/**
 * End-to-end encryption through a real gateway node: two SDK clients sharing a key round-trip plaintext
 * while the gateway's history holds only the envelope; a client with the wrong key gets an `error` event,
 * never garbage; key rotation by key id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import type { ApiXNode } from '../../../src/node.ts';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { ApiXClient, type ApiXError, type ApiXEvent, type E2eKeyMap } from '../src/index.ts';

const CH = 'agent:e2e';
const SECRET = `e2e-secret-${randomBytes(4).toString('hex')}`;
const k1 = new Uint8Array(randomBytes(32));
const k2 = new Uint8Array(randomBytes(32));

function client(url: string, e2eKeys: E2eKeyMap, sub = 'alice'): ApiXClient {
  return new ApiXClient({
    url,
    // Agent events are published by services (members only read agent channels).
    tokenProvider: () => token({ sub, roles: ['service'] }),
    clientType: 'WEB_APP',
    WebSocket: WebSocket as never,
    e2eKeys,
    heartbeat: false,
  });
}

function waitFor<T>(list: T[], n: number, ms = 3000): Promise<T[]> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (list.length >= n) resolve(list);
      else if (Date.now() - start > ms) reject(new Error(`expected ${n}, got ${list.length}`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

describe('SDK end-to-end encryption through a real gateway', () => {
  let node: ApiXNode;
  const clients: ApiXClient[] = [];
  before(async () => {
    node = await startNode();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await node.close();
  });

  it('round-trips plaintext between two clients; the gateway only has the envelope; a wrong key is an error', async () => {
    const url = node.httpUrl;
    const keys: E2eKeyMap = { [CH]: { active: 'k1', keys: { k1 } } };
    const pub = client(url, keys);
    const recv = client(url, keys, 'bob');
    const wrong = client(
      url,
      { [CH]: { active: 'k1', keys: { k1: new Uint8Array(randomBytes(32)) } } },
      'carol',
    );
    clients.push(pub, recv, wrong);
    await Promise.all([pub.connect(), recv.connect(), wrong.connect()]);
    const got: ApiXEvent[] = [];
    recv.subscribe(CH).on('*', (e) => void got.push(e));
    const wrongGot: ApiXEvent[] = [];
    const errors: ApiXError[] = [];
    wrong.on('error', (e) => void errors.push(e));
    const ws = wrong.subscribe(CH);
    ws.on('*', (e) => void wrongGot.push(e));
    await Promise.all([recv.subscription(CH)!.ready, ws.ready]);

    // A domain type: its payload schema is not checked (the gateway cannot read it).
    await pub.publish(CH, 'agent_status_update', { agentId: 'a1', status: 'running', message: SECRET });
    await pub.publish(CH, 'agent_status_update', { agentId: 'a1', status: 'completed', message: 'two' });
    await waitFor(got, 2);
    assert.deepEqual(
      got.map((e) => e.payload),
      [
        { agentId: 'a1', status: 'running', message: SECRET },
        { agentId: 'a1', status: 'completed', message: 'two' },
      ],
    );
    assert.equal(got[0]!.metadata.e2e, 1);

    // The gateway's history: the envelope only.
    const h = await node.engines.broker.history(`acme/${CH}`, {});
    assert.equal(h.events.length, 2);
    for (const ev of h.events) {
      assert.ok(!ev.frame.includes(SECRET) && !ev.frame.includes('running'), ev.frame);
      assert.match(ev.frame, /"payload":\{"e2e":\{"v":1,"alg":"A256GCM","kid":"k1"/);
    }

    await waitFor(errors, 2);
    assert.equal(wrongGot.length, 0, 'nothing undecryptable reaches handlers');
    assert.equal(errors[0]!.code, 'BAD_REQUEST');
    assert.match(errors[0]!.message, /failed to decrypt/);
  });

  it('rotation: a receiver holding both key ids reads events of either', async () => {
    const ch = 'agent:e2e-rot';
    const old = client(node.httpUrl, { [ch]: { active: 'k1', keys: { k1 } } });
    const fresh = client(node.httpUrl, { [ch]: { active: 'k2', keys: { k2 } } });
    const recv = client(node.httpUrl, { [ch]: { active: 'k2', keys: { k1, k2 } } }, 'bob');
    clients.push(old, fresh, recv);
    await Promise.all([old.connect(), fresh.connect(), recv.connect()]);
    const got: unknown[] = [];
    const sub = recv.subscribe(ch);
    sub.on('*', (e) => void got.push(e.payload));
    await sub.ready;
    await old.publish(ch, 'note', { n: 1 });
    await fresh.publish(ch, 'note', { n: 2 });
    await waitFor(got, 2);
    assert.deepEqual(got, [{ n: 1 }, { n: 2 }]);
  });

  it('the gateway refuses a marked publish whose payload is not an envelope', async () => {
    const c = client(node.httpUrl, {});
    clients.push(c);
    await c.connect();
    await assert.rejects(c.publish(CH, 'note', { plain: true }, { metadata: { e2e: 1 } }), /e2e envelope/);
  });
});
