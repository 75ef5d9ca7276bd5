/** The StreamStore contract (src/streams/stream-store.ts), run against every engine by stream-store.test.ts. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { NewStream, StreamStore } from '../../src/streams/stream-store.ts';

export interface StreamStoreTestEngine {
  /** Two stores over the same data (two nodes on Redis; the same store on memory). */
  stores(): Promise<[StreamStore, StreamStore]>;
  close(): Promise<void>;
}

const owner1 = { nodeId: 'n1', connectionId: 'c1' };
const owner2 = { nodeId: 'n2', connectionId: 'c2' };

function newStream(key: string, over: Partial<NewStream> = {}): NewStream {
  return {
    key,
    streamId: `s${randomBytes(4).toString('hex')}`,
    id: 's-1-0',
    eventType: 'agent_message',
    dataJson: '{"agentId":"a1"}',
    owner: owner1,
    userId: 'u1',
    now: 1000,
    ...over,
  };
}

function append(text: string, count = 1, over: object = {}) {
  return { owner: owner1, text, count, bytes: Buffer.byteLength(text), maxBytes: 100, now: 2000, ...over };
}

export function describeStreamStoreContract(
  name: string,
  factory: () => Promise<StreamStoreTestEngine>,
  options: { skip?: string | false } = {},
): void {
  describe(`StreamStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: StreamStoreTestEngine;
    let a: StreamStore;
    let b: StreamStore;
    const key = `o${randomBytes(3).toString('hex')}/agent:a1`;
    before(async () => {
      engine = await factory();
      [a, b] = await engine.stores();
    });
    after(async () => {
      await engine?.close();
    });

    test('start, appends with seq from 1, and every store reads the same state', async () => {
      const s = newStream(key);
      const started = await a.start(s);
      assert.equal(started.outcome, 'created');
      assert.equal(started.state.seq, 0);
      assert.deepEqual(await a.append(key, s.streamId, append('Hel')), { ok: true, fromSeq: 1, seq: 1 });
      assert.deepEqual(await b.append(key, s.streamId, append('lo wo', 2)), { ok: true, fromSeq: 2, seq: 3 });
      const got = await b.get(key, s.streamId);
      assert.equal(got?.text, 'Hello wo');
      assert.equal(got?.seq, 3);
      assert.equal(got?.bytes, 8);
      assert.equal(got?.status, 'streaming');
      assert.equal(got?.dataJson, '{"agentId":"a1"}');
      assert.deepEqual(
        (await a.listOpen(key)).map((x) => x.streamId),
        [s.streamId],
      );
    });

    test('only the owner appends; the byte limit refuses the whole append', async () => {
      const s = newStream(key);
      await a.start(s);
      assert.deepEqual(await a.append(key, s.streamId, append('x', 1, { owner: owner2 })), {
        ok: false,
        reason: 'not_owner',
      });
      assert.deepEqual(await a.append(key, s.streamId, append('x'.repeat(101))), {
        ok: false,
        reason: 'too_large',
      });
      assert.deepEqual(await a.append(key, s.streamId, append('x'.repeat(100))), {
        ok: true,
        fromSeq: 1,
        seq: 1,
      });
      assert.deepEqual(await a.append(key, s.streamId, append('y')), { ok: false, reason: 'too_large' });
      assert.equal((await b.get(key, s.streamId))?.text, 'x'.repeat(100));
    });

    test('a second start by the same user resumes the open stream on another node', async () => {
      const s = newStream(key);
      await a.start(s);
      await a.append(key, s.streamId, append('ab', 2));
      const again = await b.start({ ...s, owner: owner2, id: 'other', now: 3000 });
      assert.equal(again.outcome, 'resumed');
      assert.equal(again.state.seq, 2);
      assert.equal(again.state.id, 's-1-0', 'the stream keeps its id');
      assert.deepEqual(again.state.owner, owner2);
      assert.deepEqual(await a.append(key, s.streamId, append('c')), { ok: false, reason: 'not_owner' });
      assert.deepEqual(await b.append(key, s.streamId, append('c', 1, { owner: owner2 })), {
        ok: true,
        fromSeq: 3,
        seq: 3,
      });
      const other = await a.start({ ...s, userId: 'u2', owner: owner2 });
      assert.equal(other.outcome, 'taken', 'another user cannot take it');
    });

    test('end happens once; later appends, ends and starts are refused', async () => {
      const s = newStream(key);
      await a.start(s);
      await a.append(key, s.streamId, append('done'));
      assert.deepEqual(await a.end(key, s.streamId, { status: 'complete', now: 3000, owner: owner2 }), {
        ok: false,
        reason: 'not_owner',
      });
      const ended = await a.end(key, s.streamId, {
        status: 'complete',
        now: 3000,
        owner: owner1,
        endDataJson: '{"tokens":1}',
      });
      assert.ok(ended.ok);
      assert.equal(ended.state.text, 'done');
      assert.equal(ended.state.seq, 1);
      assert.equal(ended.state.status, 'complete');
      assert.equal(ended.state.endDataJson, '{"tokens":1}');
      assert.deepEqual(await b.end(key, s.streamId, { status: 'error', now: 3001 }), {
        ok: false,
        reason: 'not_open',
      });
      assert.deepEqual(await b.append(key, s.streamId, append('more')), { ok: false, reason: 'not_open' });
      assert.equal((await b.start(s)).outcome, 'taken');
      // Ended but not compacted: still listed (whoever ends it writes the compacted event next).
      assert.ok((await b.listOpen(key)).some((x) => x.streamId === s.streamId));
      await b.compacted(key, s.streamId, '3000-0');
      assert.ok(!(await a.listOpen(key)).some((x) => x.streamId === s.streamId));
      assert.equal((await a.get(key, s.streamId))?.compactedId, '3000-0');
    });

    test('the idle sweep ends a stream only when its last append is older, once', async () => {
      const s = newStream(key);
      await a.start(s);
      await a.append(key, s.streamId, append('x', 1, { now: 5000 }));
      assert.deepEqual(await a.end(key, s.streamId, { status: 'error', now: 6000, idleBefore: 5000 }), {
        ok: false,
        reason: 'not_idle',
      });
      const [r1, r2] = await Promise.all([
        a.end(key, s.streamId, { status: 'error', now: 9000, idleBefore: 5001, errorJson: '{"code":"X"}' }),
        b.end(key, s.streamId, { status: 'error', now: 9000, idleBefore: 5001 }),
      ]);
      assert.equal([r1, r2].filter((r) => r.ok).length, 1, 'exactly one sweeper ends it');
      assert.equal((await a.get(key, s.streamId))?.status, 'error');
    });

    test('unknown streams', async () => {
      assert.equal(await a.get(key, 'nope'), undefined);
      assert.deepEqual(await a.append(key, 'nope', append('x')), { ok: false, reason: 'not_open' });
      assert.deepEqual(await a.end(key, 'nope', { status: 'complete', now: 1 }), {
        ok: false,
        reason: 'not_open',
      });
      assert.deepEqual(await a.listOpen(`${key}-empty`), []);
    });
  });
}
