/**
 * The Broker contract (src/broker/broker.ts), run against every engine by tests/contracts/broker.test.ts.
 * An engine is a backend shared by several nodes: `node(id)` gives the broker of one more node.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import type {
  Broker,
  BrokerEvent,
  ControlMessage,
  HistoryOptions,
  PublishInput,
} from '../../src/broker/broker.ts';
import { compareEventIds, isEventId } from '@apix/protocol';
import { sleep, waitFor } from '../support/wait.ts';

export interface BrokerTestEngine {
  /** The broker of a new node sharing this engine's backend; `history` is its read defaults. */
  node(nodeId: string, history: HistoryOptions): Promise<Broker>;
  /** Closes every node and removes whatever the engine stored. */
  close(): Promise<void>;
}

export interface BrokerContractOptions {
  /** Skip the suite (a reason), e.g. when redis-server is missing. */
  readonly skip?: string | false;
}

const HISTORY: HistoryOptions = { size: 5, ttlMs: 0 };
/** How long an event may take to reach the other nodes (polled): generous for a Redis Cluster on a busy machine. */
const DELIVERY_WAIT_MS = 15_000;

export function describeBrokerContract(
  name: string,
  factory: () => Promise<BrokerTestEngine>,
  options: BrokerContractOptions = {},
): void {
  describe(`Broker contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: BrokerTestEngine;
    const open: Broker[] = [];
    const node = async (id: string, history: HistoryOptions = HISTORY): Promise<Broker> => {
      const b = await engine.node(id, history);
      open.push(b);
      return b;
    };

    before(async () => {
      engine = await factory();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((b) => b.close()));
    });
    after(async () => {
      await engine?.close();
    });

    test('publish gives increasing ids, puts the id in the frame, and keeps the event', async () => {
      const a = await node('a');
      const key = channel();
      const e1 = await a.publish(input(key, 'one', { publisher: { nodeId: 'a', connectionId: 'c1' } }));
      const e2 = await a.publish(input(key, 'two'));
      assert.ok(isEventId(e1.id) && isEventId(e2.id));
      assert.equal(compareEventIds(e1.id, e2.id), -1);
      assert.deepEqual(JSON.parse(e1.frame), { type: 'test.event', channel: key, payload: 'one', id: e1.id });
      assert.deepEqual(e1.publisher, { nodeId: 'a', connectionId: 'c1' });
      const h = await a.history(key, {});
      assert.equal(h.recovered, true);
      assert.equal(h.top, e2.id);
      assert.deepEqual(h.events.map(strip), [strip(e1), strip(e2)]);
      assert.deepEqual(h.events[0]!.publisher, { nodeId: 'a', connectionId: 'c1' });
      assert.equal(h.events[1]!.publisher, undefined);
    });

    test('publishes called one after the other, not awaited, get ids in call order (publisher order)', async () => {
      const a = await node('a', { size: 500, ttlMs: 0 });
      const key = channel();
      const events = await Promise.all(
        Array.from({ length: 200 }, (_, i) => a.publish(input(key, i, { history: { size: 500, ttlMs: 0 } }))),
      );
      for (let i = 1; i < events.length; i++)
        assert.equal(compareEventIds(events[i - 1]!.id, events[i]!.id), -1, `call ${i}`);
      const h = await a.history(key, { limit: 500 });
      assert.deepEqual(
        h.events.map((e) => (JSON.parse(e.frame) as { payload: number }).payload),
        events.map((_, i) => i),
      );
    });

    test('two nodes publishing concurrently: every subscribed node gets each event once, in id order', async () => {
      const nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => node(id, { size: 100, ttlMs: 0 })));
      const key = channel();
      const other = channel();
      const got = nodes.map(() => [] as BrokerEvent[]);
      nodes.forEach((b, i) => b.onEvent((e) => got[i]!.push(e)));
      await Promise.all(nodes.map((b) => b.subscribe(key)));
      const perNode = 40;
      const published = (
        await Promise.all(
          nodes
            .slice(0, 2)
            .map((b, n) =>
              Promise.all(
                Array.from({ length: perNode }, (_, i) =>
                  b.publish(input(key, `${n}:${i}`, { history: { size: 100, ttlMs: 0 } })),
                ),
              ),
            ),
        )
      ).flat();
      await nodes[0]!.publish(input(other, 'elsewhere'));
      const ids = published.map((e) => e.id).sort(compareEventIds);
      assert.equal(new Set(ids).size, 2 * perNode, 'ids are unique');
      for (const [i, g] of got.entries()) {
        await waitFor(() => g.length >= ids.length, DELIVERY_WAIT_MS, `node ${i} to receive every event`);
        await sleep(20); // nothing more (no duplicate, no other channel) may follow
        assert.deepEqual(
          g.map((e) => e.id),
          ids,
          `node ${i} receives in id order, once`,
        );
        assert.ok(g.every((e) => e.key === key));
      }
      const byId = new Map(published.map((e) => [e.id, e]));
      for (const e of got[2]!) {
        const p = byId.get(e.id)!;
        assert.equal(e.frame, p.frame);
        assert.equal(e.type, p.type);
        assert.equal(e.timestamp, p.timestamp);
      }
      const h = await nodes[2]!.history(key, { last: 100 });
      assert.deepEqual(
        h.events.map((e) => e.id),
        ids,
      );
    });

    test('node-level subscribe and unsubscribe', async () => {
      const [a, b] = [await node('a'), await node('b')];
      const key = channel();
      const got: string[] = [];
      // Ids are per channel: two channels can give the same id, so record both.
      b.onEvent((e) => got.push(`${e.key} ${e.id}`));
      const e0 = await a.publish(input(key, 'before subscribe'));
      await b.subscribe(key);
      await b.subscribe(key); // idempotent: still one delivery per event
      const e1 = await a.publish(input(key, 'while subscribed'));
      await waitFor(() => got.includes(`${key} ${e1.id}`), DELIVERY_WAIT_MS);
      await b.unsubscribe(key);
      await a.publish(input(key, 'after unsubscribe'));
      await b.unsubscribe(key); // unsubscribing twice is harmless
      const marker = channel();
      await b.subscribe(marker);
      const e3 = await a.publish(input(marker, 'marker'));
      await waitFor(() => got.includes(`${marker} ${e3.id}`), DELIVERY_WAIT_MS);
      // An event published just before subscribe() resolved may arrive (classic pub/sub on a cluster relays
      // it over the cluster bus, later); the gateway drops live events at or below its replay position.
      assert.deepEqual(
        got.filter((k) => k !== `${key} ${e0.id}`),
        [`${key} ${e1.id}`, `${marker} ${e3.id}`],
      );
    });

    test('publishLive: every subscribed node gets it (live, no id); history and ids are untouched', async () => {
      const [a, b] = [await node('a', { size: 3, ttlMs: 0 }), await node('b', { size: 3, ttlMs: 0 })];
      const key = channel();
      const got: BrokerEvent[] = [];
      b.onEvent((e) => got.push(e));
      await b.subscribe(key);
      const kept = [];
      for (let i = 0; i < 3; i++)
        kept.push(await a.publish(input(key, i, { history: { size: 3, ttlMs: 0 } })));
      for (let i = 0; i < 10; i++)
        await a.publishLive({ key, type: 'presence.join', timestamp: Date.now(), frame: `{"n":${i}}` });
      const next = await a.publish(input(key, 'after', { history: { size: 3, ttlMs: 0 } }));
      await waitFor(() => got.some((e) => e.id === next.id), 5000);
      const live = got.filter((e) => e.live);
      assert.deepEqual(
        live.map((e) => [e.id, e.type, e.frame]),
        Array.from({ length: 10 }, (_, i) => ['', 'presence.join', `{"n":${i}}`]),
      );
      // The history holds the last 3 real events, and the live ones took no id of the channel.
      const h = await a.history(key, {});
      assert.deepEqual(
        h.events.map((e) => e.id),
        [kept[1]!.id, kept[2]!.id, next.id],
      );
      assert.equal((await a.history(key, { since: kept[2]!.id })).recovered, true);
    });

    test('control messages reach the other nodes, not the sender', async () => {
      const [a, b, c] = [await node('a'), await node('b'), await node('c')];
      const got: Record<string, ControlMessage[]> = { a: [], b: [], c: [] };
      a.onControl((m) => got.a!.push(m));
      b.onControl((m) => got.b!.push(m));
      c.onControl((m) => got.c!.push(m));
      await a.publishControl({ kind: 'session.kick', from: 'a', sessionId: 's1' });
      await waitFor(() => got.b!.length === 1 && got.c!.length === 1, DELIVERY_WAIT_MS);
      await b.publishControl({ kind: 'marker', from: 'b' });
      await waitFor(() => got.a!.length === 1, DELIVERY_WAIT_MS);
      assert.deepEqual(got.b![0], { kind: 'session.kick', from: 'a', sessionId: 's1' });
      assert.deepEqual(
        got.a!.map((m) => m.kind),
        ['marker'],
      );
      assert.deepEqual(
        got.b!.map((m) => m.kind),
        ['session.kick'],
      );
    });

    describe('history', () => {
      test('last n and limit', async () => {
        const a = await node('a');
        const key = channel();
        const evs = await publishMany(a, key, 4);
        assert.deepEqual(ids((await a.history(key, { last: 2 })).events), ids(evs.slice(2)));
        assert.deepEqual(ids((await a.history(key, { last: 10 })).events), ids(evs));
        assert.deepEqual(ids((await a.history(key, { last: 0 })).events), []);
        assert.deepEqual(ids((await a.history(key, { limit: 3 })).events), ids(evs.slice(1)));
        const empty = await a.history(channel(), {});
        assert.deepEqual(empty, { events: [], recovered: true, top: undefined });
      });

      test('since a retained id: the events after it, recovered', async () => {
        const a = await node('a');
        const key = channel();
        const evs = await publishMany(a, key, 4);
        const h = await a.history(key, { since: evs[1]!.id });
        assert.equal(h.recovered, true);
        assert.deepEqual(ids(h.events), ids(evs.slice(2)));
        assert.equal(h.top, evs[3]!.id);
        const atTop = await a.history(key, { since: evs[3]!.id });
        assert.deepEqual(atTop, { events: [], recovered: true, top: evs[3]!.id });
        // More than the limit after `since`: the page is complete but the client must ask again.
        const page = await a.history(key, { since: evs[0]!.id, limit: 2 });
        assert.deepEqual(ids(page.events), ids(evs.slice(1, 3)));
        assert.equal(page.recovered, false);
      });

      test('maxBytes: a non-empty prefix of the answer, recovered and top as without it', async () => {
        const a = await node('a');
        const key = channel();
        const evs = await publishMany(a, key, 4);
        for (const q of [{}, { last: 3 }, { since: evs[0]!.id }, { since: evs[0]!.id, limit: 2 }]) {
          const all = await a.history(key, q);
          const one = await a.history(key, { ...q, maxBytes: 1 });
          assert.deepEqual(ids(one.events), ids(all.events.slice(0, 1)), JSON.stringify(q));
          assert.equal(one.recovered, all.recovered);
          assert.equal(one.top, all.top);
          const some = await a.history(key, { ...q, maxBytes: evs[0]!.frame.length * 2 });
          assert.ok(some.events.length >= 1 && some.events.length <= all.events.length);
          assert.deepEqual(ids(some.events), ids(all.events.slice(0, some.events.length)));
          assert.deepEqual(ids((await a.history(key, { ...q, maxBytes: 1 << 20 })).events), ids(all.events));
        }
      });

      test('since a trimmed id: every retained event, not recovered; since the floor (last trimmed id): recovered', async () => {
        const a = await node('a', { size: 3, ttlMs: 0 });
        const key = channel();
        const evs = await publishMany(a, key, 6, { size: 3, ttlMs: 0 });
        // Older than what is retained: the client learns of the gap and loses nothing still there.
        for (const old of [evs[0]!.id, evs[1]!.id, '0-1']) {
          const trimmed = await a.history(key, { since: old });
          assert.equal(trimmed.recovered, false, old);
          assert.equal(trimmed.top, evs[5]!.id, old);
          assert.deepEqual(ids(trimmed.events), ids(evs.slice(3)), old);
        }
        const floor = await a.history(key, { since: evs[2]!.id });
        assert.equal(floor.recovered, true);
        assert.deepEqual(ids(floor.events), ids(evs.slice(3)));
      });

      test('since above the top, garbage, another channel id or a gap id: not recovered, no events', async () => {
        const a = await node('a');
        const key = channel();
        const other = channel();
        // Another channel's id that falls between two of this channel's ids (ids are per channel, so an id of
        // another channel published in the same millisecond could equal one of ours: keep them apart).
        const evs = await publishMany(a, key, 1);
        await sleep(3);
        const foreign = await a.publish(input(other, 'x'));
        await sleep(3);
        evs.push(...(await publishMany(a, key, 2)));
        assert.ok(!ids(evs).includes(foreign.id));
        const top = evs[2]!.id;
        const [ms, seq] = top.split('-').map(Number) as [number, number];
        const cases = {
          aboveTop: `${ms}-${seq + 1}`,
          farAbove: `${ms + 60_000}-0`,
          garbage: 'not-an-id',
          empty: '',
          injection: '+',
        };
        for (const [what, since] of Object.entries(cases)) {
          const h = await a.history(key, { since });
          assert.deepEqual(h.events, [], what);
          assert.equal(h.recovered, false, what);
          assert.equal(h.top, top, what);
        }
        // Not an id of this channel, inside its retained range: not a position in it (ids are per channel),
        // so nothing, never a replay from a place the client was never at.
        const between = {
          foreign: foreign.id,
          gap: `${Number(evs[0]!.id.split('-')[0])}-${Number(evs[0]!.id.split('-')[1]) + 100000}`,
        };
        for (const [what, since] of Object.entries(between)) {
          const h = await a.history(key, { since });
          assert.deepEqual(h.events, [], what);
          assert.equal(h.recovered, false, what);
          assert.equal(h.top, top, what);
        }
        const unknown = await a.history(channel(), { since: evs[0]!.id });
        assert.equal(unknown.recovered, false);
        assert.deepEqual(unknown.events, []);
      });

      test('without history (size 0): ids still increase, and only the newest id recovers', async () => {
        const a = await node('a');
        const key = channel();
        const e1 = await a.publish(input(key, 'x', { history: { size: 0, ttlMs: 0 } }));
        const e2 = await a.publish(input(key, 'y', { history: { size: 0, ttlMs: 0 } }));
        assert.equal(compareEventIds(e1.id, e2.id), -1);
        assert.deepEqual(await a.history(key, {}), { events: [], recovered: true, top: e2.id });
        assert.equal((await a.history(key, { since: e2.id })).recovered, true);
        assert.equal((await a.history(key, { since: e1.id })).recovered, false);
      });

      test('events older than the ttl are dropped and no longer recoverable', async () => {
        // Redis ages events by its own clock (TIME): the ttl is long enough for a publish and its reads to
        // fit in it on a busy machine, and the end of each wait is polled for.
        const ttlMs = 1000;
        const opts = { size: 10, ttlMs };
        const a = await node('a', opts);
        const key = channel();
        const old = await publishMany(a, key, 2, opts);
        await sleep(ttlMs + 100);
        const freshAt = Date.now();
        const fresh = await a.publish(input(key, 'fresh', { history: opts }));
        const h = await a.history(key, {});
        assert.deepEqual(ids(h.events), [fresh.id]);
        assert.equal((await a.history(key, { since: old[0]!.id })).recovered, false);
        const fromFloor = await a.history(key, { since: old[1]!.id });
        assert.equal(fromFloor.recovered, true);
        assert.deepEqual(ids(fromFloor.events), [fresh.id]);
        // Expired on read too, without a new publish (and not before the ttl).
        await waitFor(async () => (await a.history(key, {})).events.length === 0, ttlMs + 15_000, 'expiry');
        assert.ok(Date.now() - freshAt >= ttlMs - 50, 'not before the ttl');
        assert.equal((await a.history(key, { since: old[1]!.id })).recovered, false);
      });
    });

    describe('idempotency keys', () => {
      const idem = (key: string, windowMs = 60_000) => ({ idempotency: { key, windowMs } });

      test('the same key on two nodes within the window: one event, the same id, delivered once', async () => {
        const [a, b, sub] = await Promise.all(['ia', 'ib', 'is'].map((id) => node(id)));
        const key = channel();
        const got: BrokerEvent[] = [];
        sub!.onEvent((e) => got.push(e));
        await sub!.subscribe(key);
        const first = await a!.publish(input(key, 'first', idem('k1')));
        const again = await b!.publish(input(key, 'again', idem('k1')));
        assert.equal(first.duplicate, undefined);
        assert.equal(again.duplicate, true);
        assert.equal(again.id, first.id);
        const other = await b!.publish(input(key, 'other key', idem('k2')));
        assert.notEqual(other.id, first.id);
        await waitFor(() => got.length >= 2, DELIVERY_WAIT_MS);
        await sleep(50);
        assert.deepEqual(ids(got), [first.id, other.id]);
        assert.deepEqual(ids((await a!.history(key, {})).events), [first.id, other.id]);
      });

      test('racing duplicates from two nodes give one event', async () => {
        const [a, b] = await Promise.all(['ra', 'rb'].map((id) => node(id)));
        const key = channel();
        const all = await Promise.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 ? a! : b!).publish(input(key, i, idem('race')))),
        );
        assert.equal(new Set(all.map((e) => e.id)).size, 1);
        assert.equal(all.filter((e) => !e.duplicate).length, 1);
        assert.equal((await a!.history(key, {})).events.length, 1);
      });

      test('a key is per channel, and lapses after the window', async () => {
        // Redis keeps the window by its own clock (PX): long enough for the first three publishes on a busy
        // machine; its end is polled for, and must not come early.
        const windowMs = 1500;
        const a = await node('wa');
        const [k1, k2] = [channel(), channel()];
        const started = Date.now();
        const e1 = await a.publish(input(k1, 1, idem('same', windowMs)));
        const e2 = await a.publish(input(k2, 2, idem('same', windowMs)));
        assert.equal(e2.duplicate, undefined);
        assert.equal((await a.publish(input(k1, 1, idem('same', windowMs)))).id, e1.id);
        let later = e1;
        await waitFor(
          async () => {
            later = await a.publish(input(k1, 3, idem('same', windowMs)));
            if (!later.duplicate) return true;
            assert.equal(later.id, e1.id);
            await sleep(50);
            return false;
          },
          windowMs + 15_000,
          'the window to lapse',
        );
        assert.ok(Date.now() - started >= windowMs - 50, 'not before the window');
        assert.notEqual(later.id, e1.id);
      });

      test('a window of 0 turns the key off', async () => {
        const a = await node('za');
        const key = channel();
        const e1 = await a.publish(input(key, 1, idem('off', 0)));
        const e2 = await a.publish(input(key, 2, idem('off', 0)));
        assert.notEqual(e1.id, e2.id);
      });
    });

    test('a closed broker refuses to publish', async () => {
      const a = await engine.node('closing', HISTORY);
      await a.ping();
      await a.close();
      await assert.rejects(a.publish(input(channel(), 'x')));
    });
  });
}

function channel(): string {
  return `org${randomBytes(3).toString('hex')}/agent:${randomBytes(4).toString('hex')}`;
}

function input(key: string, payload: unknown, over: Partial<PublishInput> = {}): PublishInput {
  return {
    key,
    type: 'test.event',
    timestamp: Date.now(),
    encode: (id) => JSON.stringify({ type: 'test.event', channel: key, payload, id }),
    publisher: undefined,
    history: HISTORY,
    ...over,
  };
}

async function publishMany(
  b: Broker,
  key: string,
  n: number,
  history: HistoryOptions = HISTORY,
): Promise<BrokerEvent[]> {
  const out: BrokerEvent[] = [];
  for (let i = 0; i < n; i++) out.push(await b.publish(input(key, i, { history })));
  return out;
}

function ids(events: readonly BrokerEvent[]): string[] {
  return events.map((e) => e.id);
}

function strip(e: BrokerEvent): Omit<BrokerEvent, 'publisher'> {
  return { key: e.key, id: e.id, type: e.type, timestamp: e.timestamp, frame: e.frame };
}
