/**
 * The MessagePack subprotocol (PROTOCOL 1.1 §14) over raw `ws`: negotiation by the client's order, binary
 * payload values end to end (a MessagePack subscriber gets bytes, a JSON one `{"$binary": base64}`), acks,
 * `since` and resume, and a malformed binary frame answered with BAD_REQUEST without closing anything.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { WS_SUBPROTOCOL, WS_SUBPROTOCOL_MSGPACK } from '../../../packages/protocol/src/constants.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import { MsgpackClient } from '../../support/msgpack-client.ts';
import { waitFor } from '../../support/wait.ts';

const service = () => token({ sub: 'svc', roles: ['service'] });
const BYTES = Uint8Array.from([0, 1, 2, 250, 255, 10, 13]);

async function negotiated(url: string, offers: string[]): Promise<string> {
  const ws = new WebSocket(url, offers);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const selected = ws.protocol;
  ws.close();
  return selected;
}

describe('MessagePack subprotocol over WebSocket', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode({ sessionTtlMs: 10_000, ackTimeoutMs: 300 });
  });
  after(() => node.close());

  it('negotiation: the first of the client offers the gateway speaks', async () => {
    assert.equal(
      await negotiated(node.wsUrl, [WS_SUBPROTOCOL_MSGPACK, WS_SUBPROTOCOL]),
      WS_SUBPROTOCOL_MSGPACK,
    );
    assert.equal(await negotiated(node.wsUrl, [WS_SUBPROTOCOL, WS_SUBPROTOCOL_MSGPACK]), WS_SUBPROTOCOL);
    assert.equal(await negotiated(node.wsUrl, ['x.other', WS_SUBPROTOCOL_MSGPACK]), WS_SUBPROTOCOL_MSGPACK);
    await assert.rejects(negotiated(node.wsUrl, ['x.other']), /400/);
  });

  it('connect, subscribe, publish a binary payload: bytes to MessagePack, $binary to JSON', async () => {
    const sub = await MsgpackClient.connect(node.wsUrl, { subscriptions: ['agent:mp'] });
    const jsonSub = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:mp'] });
    const pub = await MsgpackClient.connect(node.wsUrl, { token: await service() });
    const sent = await pub.publish('agent:mp', 'blob', { data: BYTES, n: 1, nested: [{ b: BYTES }] });
    assert.equal(sent.type, 'message.sent', JSON.stringify(sent.payload));
    const [event] = await sub.waitForEvents(1, 'agent:mp');
    assert.equal(event!.id, sent.payload.id);
    assert.ok(event!.payload.data instanceof Uint8Array, 'a binary value arrives as binary');
    assert.deepEqual([...event!.payload.data], [...BYTES]);
    assert.deepEqual([...event!.payload.nested[0].b], [...BYTES]);
    assert.equal(event!.payload.n, 1);
    assert.equal(event!.metadata.version, '1');
    assert.ok(!sub.frames.some((f) => f.type === 'TEXT_FRAME'), 'every server frame is binary');
    const [jsonEvent] = await jsonSub.waitForEvents(1, 'agent:mp');
    assert.deepEqual(jsonEvent!.payload.data, { $binary: Buffer.from(BYTES).toString('base64') });
    for (const c of [sub, jsonSub, pub]) c.close();
  });

  it('acks: an acked event is not redelivered, an un-acked one is, with retryCount', async () => {
    const sub = await MsgpackClient.connect(node.wsUrl, { token: await token({ sub: 'worker' }) });
    await sub.subscribe({ channels: ['tool:mpjobs'], acknowledgment: true });
    const pub = await RawClient.connect(node.wsUrl, { token: await service() });
    const a = await pub.publish('tool:mpjobs', 'job', { n: 1 });
    const b = await pub.publish('tool:mpjobs', 'job', { n: 2 });
    const firstA = await sub.next((f) => f.id === a.payload.id);
    sub.send({ type: 'ack', payload: { channel: 'tool:mpjobs', ids: [firstA.id] } });
    const retried = await sub.next((f) => f.id === b.payload.id && f.metadata.retryCount === 1, 10_000);
    assert.equal(retried.payload.n, 2);
    assert.equal(sub.events('tool:mpjobs').filter((e) => e.id === a.payload.id).length, 1);
    sub.close();
    pub.close();
  });

  it('since and resume over MessagePack', async () => {
    const pub = await RawClient.connect(node.wsUrl, { token: await service() });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await pub.publish('agent:mpsince', 'tick', { i })).payload.id);
    const c = await MsgpackClient.connect(node.wsUrl);
    const added = await c.subscribe({ channels: ['agent:mpsince'], since: { 'agent:mpsince': ids[1] } });
    assert.deepEqual(added.payload.channels, [{ channel: 'agent:mpsince', recovered: true }]);
    const events = await c.waitForEvents(3, 'agent:mpsince');
    assert.deepEqual(
      events.map((e) => e.payload.i),
      [2, 3, 4],
    );
    c.close();

    const tok = await token({ sub: 'dave' });
    const sessionId = `mp-resume-${Math.random().toString(36).slice(2)}`;
    const c1 = await MsgpackClient.connect(node.wsUrl, {
      token: tok,
      sessionId,
      subscriptions: ['agent:mpres'],
    });
    await pub.publish('agent:mpres', 'tick', { i: 0 });
    await c1.waitForEvents(1, 'agent:mpres');
    c1.terminate();
    await waitFor(() => node.gateway.sessions.get(`acme/dave/${sessionId}`)?.isLive === false, 5000, 'away');
    // A JSON publisher sends a binary value in its JSON form; a MessagePack subscriber gets the bytes.
    const bin = { $binary: Buffer.from(BYTES).toString('base64') };
    await pub.publish('agent:mpres', 'tick', { i: 1, bin });
    const c2 = await MsgpackClient.connect(node.wsUrl, { token: tok, sessionId });
    assert.equal(c2.frames.find((f) => f.type === 'connection.established')!.payload.resumed, true);
    const missed = await c2.waitForEvents(1, 'agent:mpres');
    assert.equal(missed[0]!.payload.i, 1);
    assert.ok(missed[0]!.payload.bin instanceof Uint8Array, 'binary survives the session buffer');
    assert.deepEqual([...missed[0]!.payload.bin], [...BYTES]);
    c2.close();
    pub.close();
  });

  it('a malformed binary frame, a text frame, a non-map: BAD_REQUEST, the connection stays', async () => {
    const c = await MsgpackClient.connect(node.wsUrl);
    c.send(Uint8Array.from([0xc1])); // 0xc1: never used in MessagePack
    const bad = await c.nextOfType('connection.error');
    assert.equal(bad.payload.code, 'BAD_REQUEST');
    assert.match(bad.payload.message, /not valid MessagePack/);
    c.send('{"type":"subscribe","payload":{"channels":["agent:x"]}}');
    assert.match((await c.nextOfType('connection.error')).payload.message, /speaks MessagePack/);
    c.send(Uint8Array.from([0x93, 1, 2, 3])); // an array
    assert.match((await c.nextOfType('connection.error')).payload.message, /MessagePack map/);
    const ok = await c.subscribe({ channels: ['agent:still'] });
    assert.equal(ok.type, 'subscription.added');
    assert.equal(c.closed, undefined);
    c.close();
  });
});
