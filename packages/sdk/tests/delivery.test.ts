/** Subscriptions and delivery against the fake gateway: typed handlers, dedupe, resume, acks, denials. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ApiXClient, ApiXEvent, ApiXError } from '../src/index.ts';
import { FakeGateway } from './support/fake-gateway.ts';
import { clientFor, eventually, nextEmit, sleep } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});
async function setup(options: Parameters<typeof FakeGateway.start>[0] = {}, clientOptions = {}) {
  const gateway = await FakeGateway.start(options);
  const client = clientFor(gateway, clientOptions);
  cleanup.push(
    () => gateway.stop(),
    () => client.close(),
  );
  return { gateway, client };
}
const ids = (events: ApiXEvent[]) => events.map((e) => e.id);

describe('subscriptions and delivery', () => {
  it('connects with the protocol frame, subscribes, and delivers typed events per type and to *', async () => {
    const { gateway, client } = await setup();
    const established = await client.connect();
    assert.equal(established.sessionId, client.sessionId);
    assert.equal(client.state, 'connected');
    const connect = gateway.framesOf('connect')[0];
    assert.ok(connect);
    assert.equal(connect.payload.clientType, 'WEB_APP');
    assert.deepEqual(connect.payload.authentication, { token: 'test-token' });
    assert.equal(gateway.connections[0]?.ws.protocol, 'apix.v1.json');

    const sub = client.subscribe('tool:t1');
    assert.deepEqual(await sub.ready, { recovered: true });
    assert.equal(sub.state, 'subscribed');

    const starts: string[] = [];
    const all: string[] = [];
    const global: string[] = [];
    sub.on('tool_call_start', (e) => {
      // Typed: toolName is a string on the domain payload.
      starts.push(e.payload.toolName.toUpperCase());
    });
    sub.on('*', (e) => void all.push(e.type));
    client.on('event', (e) => void global.push(e.id));
    gateway.publish('tool:t1', 'tool_call_start', { toolCallId: 'c1', toolName: 'search' });
    gateway.publish('tool:t1', 'tool_call_result', { toolCallId: 'c1', output: 42 });
    await eventually(() => all.length === 2);
    assert.deepEqual(starts, ['SEARCH']);
    assert.deepEqual(all, ['tool_call_start', 'tool_call_result']);
    assert.equal(global.length, 2);
  });

  it('replays with since and replay.last, and reports recovered:false when the server lost events', async () => {
    const { gateway, client } = await setup({ retain: 3 });
    for (let i = 1; i <= 5; i++)
      gateway.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'running', n: i });
    await client.connect();
    const last2: ApiXEvent[] = [];
    const subLast = client.subscribe('agent:a1', { replay: { last: 2 } });
    subLast.on('*', (e) => void last2.push(e));
    await eventually(() => last2.length === 2);
    assert.deepEqual(
      last2.map((e) => (e.payload as { n: number }).n),
      [4, 5],
    );

    gateway.publish('workflow:w1', 'workflow_state_change', { workflowId: 'w1', to: 'a' });
    const oldest = gateway.history.get('workflow:w1')?.[0]?.id as string;
    for (let i = 0; i < 4; i++)
      gateway.publish('workflow:w1', 'workflow_state_change', { workflowId: 'w1', to: `s${i}` });
    const added = nextEmit(client, 'subscription.added', (e) => e.channel === 'workflow:w1');
    const sub = client.subscribe('workflow:w1', { since: oldest });
    assert.equal((await added).recovered, false);
    assert.equal(sub.recovered, false);
  });

  it('surfaces FORBIDDEN denials without closing the connection', async () => {
    const { client } = await setup({ deny: (ch) => ch.startsWith('user:') });
    await client.connect();
    const denied = nextEmit(client, 'subscription.denied');
    const sub = client.subscribe('user:someone-else');
    await assert.rejects(sub.ready, (err: ApiXError) => err.code === 'FORBIDDEN');
    assert.equal((await denied).error.code, 'FORBIDDEN');
    assert.equal(sub.state, 'denied');
    assert.equal(client.subscription('user:someone-else'), undefined);
    assert.equal(client.state, 'connected');
    assert.equal((await client.subscribe('org').ready).recovered, true);
  });

  it('rejects invalid channels and duplicate subscriptions synchronously', async () => {
    const { client } = await setup();
    assert.throws(
      () => client.subscribe('nope:x'),
      (e: ApiXError) => e.code === 'BAD_REQUEST',
    );
    assert.throws(
      () => client.subscribe('agent:a b'),
      (e: ApiXError) => e.code === 'BAD_REQUEST',
    );
    assert.throws(
      () => client.subscribe('agent:a', { since: 'x' }),
      (e: ApiXError) => e.code === 'BAD_REQUEST',
    );
    client.subscribe('agent:a');
    assert.throws(
      () => client.subscribe('agent:a'),
      (e: ApiXError) => e.code === 'CONFLICT',
    );
  });

  it('reconnects after a drop, resumes the session with lastEventIds, and shows each event once, in order', async () => {
    const { gateway, client } = await setup({ duplicateOnResume: 2 });
    await client.connect();
    const seen: ApiXEvent[] = [];
    const sub = client.subscribe('agent:a1');
    sub.on('*', (e) => void seen.push(e));
    await sub.ready;
    const e1 = gateway.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'thinking' });
    const e2 = gateway.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'running' });
    const e3 = gateway.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'waiting' });
    await eventually(() => seen.length === 3);

    const attempt = nextEmit(client, 'reconnection.attempt');
    const disconnected = nextEmit(client, 'connection.disconnected');
    gateway.dropAll();
    assert.deepEqual(await disconnected, {
      code: 1006,
      reason: '',
      serverCode: undefined,
      willReconnect: true,
    });
    assert.equal(sub.state, 'pending');
    // Published while the client is away.
    const e4 = gateway.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'completed' });
    const e5 = gateway.publish('agent:a1', 'system_like', { n: 5 });
    const reattempt = await attempt;
    assert.equal(reattempt.attempt, 1);
    assert.equal(reattempt.delayMs, 10); // 0.5 * baseMs 20

    const established = await nextEmit(client, 'connection.established');
    assert.equal(established.resumed, true);
    const connects = gateway.framesOf('connect');
    assert.equal(connects.length, 2);
    assert.equal(connects[1]?.payload.sessionId, client.sessionId);
    assert.deepEqual(connects[1]?.payload.resume, { lastEventIds: { 'agent:a1': e3.id } });
    await eventually(() => seen.length === 5);
    await sleep(50);
    // The server resent e2 and e3 (overlap); the application saw them once.
    assert.deepEqual(ids(seen), [e1.id, e2.id, e3.id, e4.id, e5.id]);
    assert.equal(sub.state, 'subscribed');
    // Restored by the server: no second subscribe frame.
    assert.equal(gateway.framesOf('subscribe').length, 1);
  });

  it('re-subscribes from the last id when the server lost the session (resumed:false)', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const seen: ApiXEvent[] = [];
    const sub = client.subscribe('tool:t9', { filters: { types: ['tool_call_start'] } });
    sub.on('*', (e) => void seen.push(e));
    await sub.ready;
    const e1 = gateway.publish('tool:t9', 'tool_call_start', { toolCallId: '1', toolName: 'a' });
    gateway.publish('tool:t9', 'tool_call_result', { toolCallId: '1', output: null }); // filtered out
    await eventually(() => seen.length === 1);
    gateway.sessions.clear();
    gateway.dropAll();
    const e3 = gateway.publish('tool:t9', 'tool_call_start', { toolCallId: '2', toolName: 'b' });
    const established = await nextEmit(client, 'connection.established');
    assert.equal(established.resumed, false);
    await eventually(() => seen.length === 2);
    assert.deepEqual(ids(seen), [e1.id, e3.id]);
    const resubscribe = gateway.framesOf('subscribe')[1];
    assert.deepEqual(resubscribe?.payload, {
      channels: ['tool:t9'],
      acknowledgment: false,
      filters: { types: ['tool_call_start'] },
      since: { 'tool:t9': e1.id },
    });
  });

  it('acks automatically after sync and async handlers, not after a failing one, and manually on request', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const errors: ApiXError[] = [];
    client.on('error', (e) => void errors.push(e));

    const auto = client.subscribe('agent:auto', { ack: true });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    auto.on('agent_status_update', () => undefined);
    auto.on('slow', () => gate);
    auto.on('boom', () => {
      throw new Error('handler bug');
    });
    await auto.ready;
    assert.equal(gateway.framesOf('subscribe')[0]?.payload.acknowledgment, true);
    const a1 = gateway.publish('agent:auto', 'agent_status_update', { agentId: 'x', status: 'idle' });
    const a2 = gateway.publish('agent:auto', 'slow', {});
    const a3 = gateway.publish('agent:auto', 'boom', {});
    await eventually(() => gateway.framesOf('ack').length === 1 && errors.length === 1);
    assert.deepEqual(gateway.framesOf('ack')[0]?.payload, { channel: 'agent:auto', ids: [a1.id] });
    assert.equal(errors[0]?.code, 'INTERNAL');
    release();
    await eventually(() => gateway.framesOf('ack').length === 2);
    assert.deepEqual(gateway.framesOf('ack')[1]?.payload.ids, [a2.id]);

    // The failed event comes back (server redelivery with retryCount): it reaches the handler again.
    let redelivered: ApiXEvent | undefined;
    auto.on('boom', (e) => void (redelivered = e));
    const conn = gateway.open[0];
    assert.ok(conn);
    gateway.send(conn, { ...a3, metadata: { timestamp: Date.now(), version: '1', retryCount: 1 } });
    await eventually(() => redelivered !== undefined);
    assert.equal(redelivered?.retryCount, 1);

    const manual = client.subscribe('agent:manual', { ack: 'manual' });
    const held: ApiXEvent[] = [];
    manual.on('*', (e) => void held.push(e));
    await manual.ready;
    const m1 = gateway.publish('agent:manual', 'agent_status_update', { agentId: 'y', status: 'idle' });
    await eventually(() => held.length === 1);
    await sleep(30);
    assert.equal(gateway.framesOf('ack').filter((f) => f.payload.channel === 'agent:manual').length, 0);
    // A redelivery of an event the application still holds is not shown again.
    gateway.send(conn, { ...m1, metadata: { timestamp: Date.now(), version: '1', retryCount: 1 } });
    await sleep(30);
    assert.equal(held.length, 1);
    held[0]?.ack();
    held[0]?.ack();
    await eventually(() => gateway.framesOf('ack').some((f) => f.payload.channel === 'agent:manual'));
    await sleep(30);
    assert.equal(gateway.framesOf('ack').filter((f) => f.payload.channel === 'agent:manual').length, 1);
    // After the ack, a redelivery (the ack was lost) is re-acked for you, and still not shown.
    gateway.send(conn, { ...m1, metadata: { timestamp: Date.now(), version: '1', retryCount: 2 } });
    await eventually(
      () => gateway.framesOf('ack').filter((f) => f.payload.channel === 'agent:manual').length === 2,
    );
    assert.equal(held.length, 1);
  });

  it('unsubscribes: the frame goes out, the promise settles on subscription.removed, events stop', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const sub = client.subscribe('org');
    const seen: string[] = [];
    sub.on('*', (e) => void seen.push(e.id));
    await sub.ready;
    await sub.unsubscribe();
    assert.deepEqual(gateway.framesOf('unsubscribe')[0]?.payload, { channels: ['org'] });
    assert.equal(sub.state, 'unsubscribed');
    gateway.publish('org', 'system_notification', { level: 'info', message: 'hi' });
    await sleep(30);
    assert.deepEqual(seen, []);
    // The channel can be subscribed again.
    await client.subscribe('org').ready;
  });

  it('reports a subscription the server revoked', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const sub = client.subscribe('room:r1');
    await sub.ready;
    const removed = nextEmit(client, 'subscription.removed');
    const conn = gateway.open[0] as NonNullable<(typeof gateway.open)[0]>;
    gateway.send(conn, {
      type: 'subscription.removed',
      payload: { channels: ['room:r1'], reason: 'permissions changed' },
    });
    assert.deepEqual(await removed, { channel: 'room:r1', reason: 'permissions changed' });
    assert.equal(sub.state, 'unsubscribed');
  });

  it('dedupes by channel and id: two channels carrying the same id both deliver it, a repeat on one does not', async () => {
    // Ids are per channel (`<ms>-<seq>`): two channels published in the same millisecond give the same id.
    const { gateway, client } = await setup();
    await client.connect();
    const a = client.subscribe('agent:a1');
    const b = client.subscribe('tool:t1');
    await Promise.all([a.ready, b.ready]);
    const seen: string[] = [];
    const global: string[] = [];
    a.on('*', (e) => void seen.push(`${e.channel} ${e.id}`));
    b.on('*', (e) => void seen.push(`${e.channel} ${e.id}`));
    client.on('event', (e) => void global.push(`${e.channel} ${e.id}`));
    const conn = gateway.open[0] as NonNullable<(typeof gateway.open)[0]>;
    const frame = (channel: string, id: string, n: number) => ({
      type: 'agent_status_update',
      channel,
      id,
      payload: { agentId: 'a1', status: 'running', n },
    });
    gateway.send(conn, frame('agent:a1', '1700000000000-0', 1));
    gateway.send(conn, frame('tool:t1', '1700000000000-0', 2));
    gateway.send(conn, frame('tool:t1', '1700000000000-0', 3)); // a redelivery on tool:t1
    gateway.send(conn, frame('tool:t1', '1700000000000-1', 4));
    gateway.send(conn, frame('agent:a1', '1700000000000-1', 5));
    await eventually(() => seen.length === 4);
    await sleep(50);
    const expected = [
      'agent:a1 1700000000000-0',
      'tool:t1 1700000000000-0',
      'tool:t1 1700000000000-1',
      'agent:a1 1700000000000-1',
    ];
    assert.deepEqual(seen, expected);
    assert.deepEqual(global, expected);
    assert.equal(a.lastEventId, '1700000000000-1');
    assert.equal(b.lastEventId, '1700000000000-1');
  });
});

export type { ApiXClient };
