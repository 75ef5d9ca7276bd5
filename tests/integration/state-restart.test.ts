/**
 * The default node (`apix serve`: memory engine, embedded store, no Redis) survives its own restart (issue
 * 13 item 2): the retained history and the sessions within their TTL are kept in the data dir's state log,
 * so that after SIGTERM and a start on the same data dir a subscriber with `since` gets every event once
 * and in order, a session resumes, and after a crash (SIGKILL) what was written before it is still there.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway } from '../support/process.ts';
import type { GatewayProcess } from '../support/process.ts';
import { RawClient, token, TEST_SECRET } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { pgliteTemplate } from '../support/databases.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A data dir as `apix serve` leaves it after its first start: the embedded database is a copy of the
 * migrated template (its initdb takes tens of seconds on a busy machine; what is tested here is the state log).
 */
async function env(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'apix-state-'));
  dirs.push(dir);
  cpSync(join(await pgliteTemplate(), 'pgdata'), join(dir, 'pgdata'), { recursive: true });
  return { APIX_DATA_DIR: dir, APIX_JWT_SECRET: TEST_SECRET, ...extra };
}

async function publishN(gw: GatewayProcess, channel: string, from: number, n: number): Promise<string[]> {
  const pub = await RawClient.connect(gw.wsUrl, { token: await token({ sub: 'svc', roles: ['admin'] }) });
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const r = await pub.publish(channel, 'note', { i });
    assert.equal(r.type, 'message.sent', JSON.stringify(r.payload));
    ids.push(r.payload.id as string);
  }
  pub.close();
  return ids;
}

async function history(gw: GatewayProcess, channel: string, query: string) {
  const res = await fetch(`${gw.httpUrl}/v1/channels/${channel}/history${query}`, {
    headers: { authorization: `Bearer ${await token()}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()) as { events: Array<{ id: string; payload: { i: number } }>; recovered: boolean };
}

describe('apix serve on embedded defaults: restart', { timeout: 240_000 }, () => {
  it('SIGTERM and start again on the same data dir: history and sessions kept; since gets every event once, in order', async () => {
    const e = await env();
    let gw = await spawnGateway(e);
    // A page subscribed with a session it will resume after the restart.
    const page = await RawClient.connect(gw.wsUrl, { sessionId: 'page-1', subscriptions: ['agent:r'] });
    const before = await publishN(gw, 'agent:r', 0, 12);
    await page.waitForEvents(12, 'agent:r');
    assert.equal(await gw.kill('SIGTERM'), 0, 'drains and exits 0');

    gw = await spawnGateway(e);
    try {
      const afterIds = await publishN(gw, 'agent:r', 12, 8);
      const all = [...before, ...afterIds];
      // WebSocket subscribe with `since` from before the restart: every later event, once, in order.
      const sub = await RawClient.connect(gw.wsUrl);
      const added = await sub.subscribe({ channels: ['agent:r'], since: { 'agent:r': before[3] } });
      assert.deepEqual(added.payload.channels, [{ channel: 'agent:r', recovered: true }]);
      const got = await sub.waitForEvents(all.length - 4, 'agent:r', 10_000);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(
        sub.events('agent:r').map((f) => f.id),
        all.slice(4),
      );
      assert.deepEqual(
        got.map((f) => f.payload.i),
        Array.from({ length: all.length - 4 }, (_, k) => k + 4),
      );
      // HTTP history with the same `since`.
      const h = await history(gw, 'agent:r', `?since=${before[3]}`);
      assert.equal(h.recovered, true);
      assert.deepEqual(
        h.events.map((x) => x.id),
        all.slice(4),
      );
      // The session waited through the restart: resumed, caught up with what was published meanwhile.
      const back = await RawClient.connect(gw.wsUrl, { sessionId: 'page-1' });
      const est = back.frames[0]!;
      assert.equal(est.payload.resumed, true);
      assert.deepEqual(est.payload.subscriptions, ['agent:r']);
      assert.equal(est.payload.recovered['agent:r'], true);
      const caught = await back.waitForEvents(8, 'agent:r', 10_000);
      assert.deepEqual(
        caught.map((f) => f.id),
        afterIds,
      );
      sub.close();
      back.close();
    } finally {
      await gw.kill('SIGTERM');
    }
  });

  it('a crash (SIGKILL) keeps what was written before it', async () => {
    const e = await env({ APIX_STATE_FLUSH_MS: '50' });
    let gw = await spawnGateway(e);
    let ids: string[];
    try {
      ids = await publishN(gw, 'agent:k', 0, 5);
      // Written within one flush interval: wait until the log holds the last id, then crash.
      await waitFor(
        () => {
          try {
            return readFileSync(join(e.APIX_DATA_DIR!, 'state.log'), 'utf8').includes(ids[4]!);
          } catch {
            return false;
          }
        },
        10_000,
        'the state log to hold the last event',
      );
    } finally {
      await gw.kill('SIGKILL');
    }
    gw = await spawnGateway(e);
    try {
      const more = await publishN(gw, 'agent:k', 5, 2);
      const h = await history(gw, 'agent:k', `?since=${ids[0]}`);
      assert.equal(h.recovered, true);
      assert.deepEqual(
        h.events.map((x) => x.id),
        [...ids.slice(1), ...more],
      );
    } finally {
      await gw.kill('SIGTERM');
    }
  });

  it('a second apix serve on the same data dir is refused and leaves the running one its state log', async () => {
    const e = await env({ APIX_STATE_FLUSH_MS: '50' });
    const log = join(e.APIX_DATA_DIR!, 'state.log');
    const logHolds = (id: string) => () => {
      try {
        return readFileSync(log, 'utf8').includes(id);
      } catch {
        return false;
      }
    };
    let gw = await spawnGateway(e);
    let ids: string[];
    try {
      ids = await publishN(gw, 'agent:two', 0, 2);
      await waitFor(logHolds(ids[1]!), 10_000, 'the state log to hold the first events');
      const inode = statSync(log).ino;
      await assert.rejects(spawnGateway(e), /in use by process/);
      assert.equal(statSync(log).ino, inode, 'the refused start did not rewrite the state log');
      // The running node's later changes still reach the log that a restart reads.
      ids.push(...(await publishN(gw, 'agent:two', 2, 2)));
      await waitFor(logHolds(ids[3]!), 10_000, 'the state log to hold the later events');
    } finally {
      await gw.kill('SIGKILL');
    }
    gw = await spawnGateway(e);
    try {
      const h = await history(gw, 'agent:two', '');
      assert.deepEqual(
        h.events.map((x) => x.id),
        ids,
      );
    } finally {
      await gw.kill('SIGTERM');
    }
  });

  it('APIX_STATE_FLUSH_MS=0 keeps nothing: a since from before the restart gets what is retained, recovered false', async () => {
    const e = await env({ APIX_STATE_FLUSH_MS: '0' });
    let gw = await spawnGateway(e);
    const ids = await publishN(gw, 'agent:n', 0, 3);
    assert.equal(await gw.kill('SIGTERM'), 0);
    gw = await spawnGateway(e);
    try {
      const more = await publishN(gw, 'agent:n', 3, 2);
      const h = await history(gw, 'agent:n', `?since=${ids[1]}`);
      assert.equal(h.recovered, false, 'the gap is said');
      assert.deepEqual(
        h.events.map((x) => x.id),
        more,
        'and nothing still retained is lost',
      );
      const sub = await RawClient.connect(gw.wsUrl);
      const added = await sub.subscribe({ channels: ['agent:n'], since: { 'agent:n': ids[1] } });
      assert.deepEqual(added.payload.channels, [{ channel: 'agent:n', recovered: false }]);
      const got = await sub.waitForEvents(2, 'agent:n', 10_000);
      assert.deepEqual(
        got.map((f) => f.id),
        more,
      );
      sub.close();
    } finally {
      await gw.kill('SIGTERM');
    }
  });
});
