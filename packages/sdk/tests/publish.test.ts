/** Publishing: promise settlement by correlation id, the offline buffer, resends after a drop. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ApiXError } from '../src/index.ts';
import { FakeGateway } from './support/fake-gateway.ts';
import { clientFor, eventually, nextEmit } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});
async function setup(clientOptions = {}) {
  const gateway = await FakeGateway.start();
  const client = clientFor(gateway, clientOptions);
  cleanup.push(
    () => gateway.stop(),
    () => client.close(),
  );
  return { gateway, client };
}

describe('publish', () => {
  it('settles with message.sent, message.queued and message.failed, matched by correlation_id', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    gateway.publishReplies.push(
      { kind: 'sent' },
      { kind: 'queued' },
      { kind: 'failed', code: 'FORBIDDEN', message: 'no' },
    );
    const sent = client.publish('tool:t1', 'tool_call_start', { toolCallId: 'c1', toolName: 'search' });
    const queued = client.publish('user:u2', 'note', { text: 'hi' });
    const failed = client.publish('system:ops', 'system_notification', { level: 'info', message: 'x' });
    const r1 = await sent;
    assert.equal(r1.status, 'sent');
    assert.match(r1.id, /^\d+-\d+$/);
    assert.equal((await queued).status, 'queued');
    await assert.rejects(failed, (e: ApiXError) => e.code === 'FORBIDDEN' && e.message === 'no');
    const frames = gateway.received.map((r) => r.frame).filter((f) => f.channel !== undefined);
    assert.equal(frames.length, 3);
    for (const f of frames) {
      assert.equal(typeof f.metadata.correlation_id, 'string');
      assert.equal(f.metadata.idempotency_key, f.metadata.correlation_id);
    }
    assert.equal(new Set(frames.map((f) => f.metadata.correlation_id)).size, 3);
  });

  it('rejects bad channels, control types and malformed types before sending', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    await assert.rejects(client.publish('bogus:x', 'note', {}), (e: ApiXError) => e.code === 'BAD_REQUEST');
    await assert.rejects(client.publish('org', 'Bad Type', {}), (e: ApiXError) => e.code === 'BAD_REQUEST');
    // A control type is a compile error too; cast to show the runtime check.
    await assert.rejects(
      client.publish('org', 'message.sent' as string, {}),
      (e: ApiXError) => e.code === 'BAD_REQUEST',
    );
    assert.equal(gateway.received.filter((r) => r.frame.channel !== undefined).length, 0);
  });

  it('buffers publishes while offline and flushes them in order on connect; a full buffer rejects', async () => {
    const { gateway, client } = await setup({ offlineBufferSize: 2 });
    const p1 = client.publish('org', 'note', { n: 1 });
    const p2 = client.publish('org', 'note', { n: 2 });
    await assert.rejects(client.publish('org', 'note', { n: 3 }), (e: ApiXError) => e.code === 'UNAVAILABLE');
    assert.equal(client.bufferedPublishes, 2);
    await client.connect();
    assert.equal((await p1).status, 'sent');
    assert.equal((await p2).status, 'sent');
    assert.deepEqual(
      gateway.received.filter((r) => r.frame.type === 'note').map((r) => r.frame.payload.n),
      [1, 2],
    );
    assert.equal(client.bufferedPublishes, 0);
  });

  it('resends a publish that was in flight when the connection dropped, with the same idempotency key', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    gateway.publishReplies.push({ kind: 'ignore' });
    const pending = client.publish('org', 'note', { n: 1 }, { idempotencyKey: 'order-42' });
    await gateway.until(() => gateway.received.some((r) => r.frame.type === 'note'));
    // The server accepted it (stored under the key) but the reply is lost with the connection.
    gateway.idempotency.set('order-42', gateway.publish('org', 'note', { n: 1 }).id);
    gateway.dropAll();
    const result = await pending;
    assert.equal(result.status, 'sent');
    assert.equal(result.id, gateway.idempotency.get('order-42'));
    const notes = gateway.received.filter((r) => r.frame.type === 'note');
    assert.equal(notes.length, 2);
    assert.notEqual(notes[0]?.connection, notes[1]?.connection);
    assert.equal(notes[1]?.frame.metadata.idempotency_key, 'order-42');
    assert.equal(gateway.history.get('org')?.length, 1);
  });

  it('rejects a publish without a reply after publishTimeoutMs', async () => {
    const { gateway, client } = await setup({ publishTimeoutMs: 50 });
    await client.connect();
    gateway.publishReplies.push({ kind: 'ignore' });
    await assert.rejects(client.publish('org', 'note', {}), (e: ApiXError) => e.code === 'UNAVAILABLE');
  });

  it('close() rejects buffered and in-flight publishes and stops reconnecting', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    gateway.publishReplies.push({ kind: 'ignore' });
    const inFlight = client.publish('org', 'note', { n: 1 });
    await gateway.until(() => gateway.received.some((r) => r.frame.type === 'note'));
    const rejected = assert.rejects(inFlight, (e: ApiXError) => e.code === 'UNAVAILABLE');
    await client.close();
    await rejected;
    await assert.rejects(client.publish('org', 'note', {}), (e: ApiXError) => e.code === 'UNAVAILABLE');
    assert.equal(client.state, 'closed');
    await eventually(() => gateway.open.length === 0);
  });

  it('emits message.failed for a failure that answers no pending publish (e.g. dead-lettered)', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const failed = nextEmit(client, 'message.failed');
    const conn = gateway.open[0] as NonNullable<(typeof gateway.open)[0]>;
    gateway.send(conn, {
      type: 'message.failed',
      payload: { code: 'UNAVAILABLE', message: 'dead-lettered', id: '1-1', channel: 'org' },
    });
    assert.equal((await failed).message, 'dead-lettered');
  });
});
