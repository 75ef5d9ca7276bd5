/** src/crypto/at-rest-engines.ts: the broker and offline-queue wrappers keep stored frames sealed. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AtRestCipher, isSealedFrame, sealedFrameText } from '../../../src/crypto/at-rest.ts';
import { AtRestBroker, AtRestOfflineQueue } from '../../../src/crypto/at-rest-engines.ts';
import { MemoryBroker, MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { MemoryOfflineQueue } from '../../../src/queue/memory-queue.ts';
import type { BrokerEvent } from '../../../src/broker/broker.ts';
import type { QueuedFrame } from '../../../src/queue/queue.ts';

const cipher = new AtRestCipher({ keys: [{ version: 1, key: randomBytes(32) }], active: 1 });
const KEY = 'acme/agent:v';
const plainFrame = (id: string) => `{"type":"t","channel":"agent:v","id":"${id}","payload":{"s":"SECRET"}}`;
function sealedEncode(id: string): string {
  const f = plainFrame('\u0000');
  const at = f.indexOf('\u0000');
  return sealedFrameText(cipher.sealFrame(KEY, f.slice(0, at), f.slice(at + 1)), id);
}

describe('AtRestBroker', () => {
  it('hands over and replays opened frames, keeping the sealed text; the engine keeps only the sealed one', async () => {
    const inner = new MemoryBroker(new MemoryBrokerBus(), { size: 10, ttlMs: 0 });
    const errors: unknown[] = [];
    const broker = new AtRestBroker(inner, cipher, (err) => errors.push(err));
    const live: BrokerEvent[] = [];
    broker.onEvent((e) => live.push(e));
    await broker.subscribe(KEY);
    const ev = await broker.publish({
      key: KEY,
      type: 't',
      timestamp: Date.now(),
      encode: sealedEncode,
      publisher: undefined,
      history: { size: 10, ttlMs: 0 },
    });
    assert.equal(live[0]!.frame, plainFrame(ev.id));
    assert.ok(isSealedFrame(live[0]!.sealed!));
    const raw = await inner.history(KEY, {});
    assert.ok(!raw.events[0]!.frame.includes('SECRET'));
    const h = await broker.history(KEY, {});
    assert.equal(h.events[0]!.frame, plainFrame(ev.id));
    assert.equal(h.recovered, true);
    // Without keys: reported, not delivered, and the reader learns it missed events.
    const blind = new AtRestBroker(inner, undefined, (err) => errors.push(err));
    const h2 = await blind.history(KEY, {});
    assert.equal(h2.events.length, 0);
    assert.equal(h2.recovered, false);
    assert.equal(errors.length, 1);
  });
});

describe('AtRestOfflineQueue', () => {
  const item = (over: Partial<QueuedFrame>): QueuedFrame => ({
    key: KEY,
    id: '1-0',
    type: 't',
    timestamp: 1,
    attempts: 0,
    frame: plainFrame('1-0'),
    ack: true,
    ...over,
  });

  it('stores the sealed text it is given, seals a plain frame of an encrypted channel, and opens on drain', async () => {
    const inner = new MemoryOfflineQueue(10);
    const q = new AtRestOfflineQueue(
      inner,
      cipher,
      (k) => k === KEY,
      () => {},
    );
    await q.push('s', item({ sealed: sealedEncode('1-0') }));
    await q.push('s', item({ id: '1-1', frame: plainFrame('1-1') }));
    await q.push('s', item({ key: 'acme/agent:open', id: '1-2', frame: plainFrame('1-2') }));
    // What the engine holds.
    const drainedRaw = await inner.drain('s');
    assert.ok(isSealedFrame(drainedRaw.frames[0]!.frame) && isSealedFrame(drainedRaw.frames[1]!.frame));
    assert.ok(
      !drainedRaw.frames[0]!.frame.includes('SECRET') && !drainedRaw.frames[1]!.frame.includes('SECRET'),
    );
    assert.equal(drainedRaw.frames[2]!.frame, plainFrame('1-2'), 'plain channels stay plain');
    assert.equal(drainedRaw.frames[0]!.sealed, undefined, 'the sealed field itself is never stored');
    for (const f of drainedRaw.frames) await inner.push('s', f);
    const d = await q.drain('s');
    assert.deepEqual(
      d.frames.map((f) => f.frame),
      [plainFrame('1-0'), plainFrame('1-1'), plainFrame('1-2')],
    );
    assert.ok(isSealedFrame(d.frames[0]!.sealed!));
  });

  it('a frame that cannot be opened is dropped and counted as overflow', async () => {
    const inner = new MemoryOfflineQueue(10);
    await inner.push('s', item({ frame: sealedEncode('1-0') }));
    const errors: unknown[] = [];
    const q = new AtRestOfflineQueue(
      inner,
      undefined,
      () => true,
      (e) => errors.push(e),
    );
    const d = await q.drain('s');
    assert.equal(d.frames.length, 0);
    assert.equal(d.overflowed, 1);
    assert.equal(errors.length, 1);
  });
});
