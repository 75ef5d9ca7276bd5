/**
 * `GET /v1/channels/<channel>/history` in pages (issue 13 item 7): an answer holds the stored frames as
 * they are (no JSON.parse of a stored event, no re-stringify) up to APIX_HISTORY_PAGE_BYTES, and following
 * `next` while `hasMore` yields every event once, in order. On the memory and the Redis engine.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import { startNode } from '../../support/gateway.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';

const KEY = 'apix_static_acmekey';
const BUDGET = 64 * 1024;
/** The page's own JSON around the frames: `{"events":[`, `],"recovered":...,"hasMore":...,"next":"<id>"}`. */
const ENVELOPE = 120;

interface Page {
  readonly events: { id: string; type: string; payload: { i: number; d: string } }[];
  readonly recovered: boolean;
  readonly hasMore: boolean;
  readonly next?: string;
}

async function publish(node: ApiXNode, channel: string, i: number, size: number): Promise<string> {
  const res = await fetch(`${node.httpUrl}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, type: 'big.step', payload: { i, d: 'x'.repeat(size) } }),
  });
  const body = (await res.json()) as { id?: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.id!;
}

/** One page, as raw text and parsed, counting the JSON.parse calls made on stored frames meanwhile. */
async function read(
  node: ApiXNode,
  channel: string,
  query: string,
): Promise<{ text: string; page: Page; parses: number }> {
  const parse = JSON.parse;
  let parses = 0;
  JSON.parse = function (this: unknown, text: string, reviver?: Parameters<typeof parse>[1]) {
    if (typeof text === 'string' && text.startsWith('{"type":"big.step"')) parses++;
    return parse.call(JSON, text, reviver) as unknown;
  } as typeof JSON.parse;
  let text: string;
  let status: number;
  try {
    const res = await fetch(`${node.httpUrl}/v1/channels/${channel}/history?${query}`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    status = res.status;
    text = await res.text();
  } finally {
    JSON.parse = parse;
  }
  assert.equal(status, 200, text.slice(0, 300));
  return { text, page: JSON.parse(text) as Page, parses };
}

/** Follows `next` from the first page of `query`; every page is within the budget. */
async function readAll(node: ApiXNode, channel: string, query: string) {
  const pages: Page[] = [];
  let parses = 0;
  let q = query;
  for (let n = 0; n < 1000; n++) {
    const r = await read(node, channel, q);
    parses += r.parses;
    assert.ok(
      r.page.events.length === 1 || Buffer.byteLength(r.text) <= BUDGET + ENVELOPE,
      `page of ${Buffer.byteLength(r.text)} bytes and ${r.page.events.length} events`,
    );
    pages.push(r.page);
    if (!r.page.hasMore) break;
    assert.equal(r.page.next, r.page.events.at(-1)!.id);
    q = `since=${r.page.next}&limit=1000`;
  }
  return { pages, ids: pages.flatMap((p) => p.events.map((e) => e.id)), parses };
}

const engines: [string, string | false, () => Promise<Partial<Config>>][] = [
  ['memory', false, async () => ({})],
  [
    'redis',
    skipWithoutRedis(),
    async () => ({ redisUrl: (await findRedis()).url, redisPrefix: uniquePrefix() }),
  ],
];

for (const [engine, skip, overrides] of engines) {
  describe(`HTTP history in pages within APIX_HISTORY_PAGE_BYTES (${engine})`, { skip }, () => {
    let node: ApiXNode;
    const ids: string[] = [];
    const sizes = [5_000, 20_000, 40_000, 9_000, 30_000];
    before(async () => {
      node = await startNode({ ...(await overrides()), historyPageBytes: BUDGET });
      for (let i = 0; i < 40; i++) ids.push(await publish(node, 'agent:big', i, sizes[i % sizes.length]!));
    });
    after(() => node?.close());

    it('limit=1000 answers pages within the budget; following next yields every event once, in order', async () => {
      const { pages, ids: seen, parses } = await readAll(node, 'agent:big', 'limit=1000');
      assert.ok(pages.length >= 8, `${pages.length} pages`);
      assert.deepEqual(seen, ids);
      assert.deepEqual(
        pages.flatMap((p) => p.events.map((e) => e.payload.i)),
        ids.map((_, i) => i),
      );
      assert.ok(pages.slice(0, -1).every((p) => p.hasMore && p.recovered));
      assert.equal(pages.at(-1)!.hasMore, false);
      assert.equal(pages.at(-1)!.next, undefined);
      // Served from the stored frames: not one of them was parsed.
      assert.equal(parses, 0);
    });

    it('the latest n (no since) start a cursor too: the last 10 events, then nothing more', async () => {
      const { ids: seen } = await readAll(node, 'agent:big', 'limit=10');
      assert.deepEqual(seen, ids.slice(-10));
    });

    it('since and limit: a page never holds more than limit, and hasMore says the channel holds more', async () => {
      const r = await read(node, 'agent:big', `since=${ids[0]}&limit=1`);
      assert.deepEqual(
        r.page.events.map((e) => e.id),
        [ids[1]],
      );
      assert.equal(r.page.hasMore, true);
      assert.equal(r.page.next, ids[1]);
      const end = await read(node, 'agent:big', `since=${ids.at(-1)}`);
      assert.deepEqual(end.page, { events: [], recovered: true, hasMore: false });
    });

    it('an event larger than the budget is answered alone (every page moves the cursor)', async () => {
      const a = await publish(node, 'agent:huge', 0, BUDGET * 2);
      const b = await publish(node, 'agent:huge', 1, 10);
      const first = await read(node, 'agent:huge', 'limit=100');
      assert.deepEqual(
        first.page.events.map((e) => e.id),
        [a],
      );
      assert.equal(first.page.hasMore, true);
      const second = await read(node, 'agent:huge', `since=${first.page.next}`);
      assert.deepEqual(
        second.page.events.map((e) => e.id),
        [b],
      );
      assert.equal(second.page.hasMore, false);
    });
  });
}
