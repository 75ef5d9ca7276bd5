/**
 * Dead letters for operators, over the admin API of a real node: events a subscriber never acknowledged
 * are listed and inspected per organization, replayed (they reach the channel's subscribers again, with
 * `metadata.replay_of`) and purged; each replay and purge is audited (`onAdminAction`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { HookEvents } from '../../../src/hooks.ts';
import { waitFor } from '../../support/wait.ts';

describe('dead letters: list, inspect, replay, purge', () => {
  let node: ApiXNode;
  let admin: string;
  const actions: Array<HookEvents['onAdminAction']> = [];

  before(async () => {
    node = await startNode(
      { ackTimeoutMs: 100, retry: { baseMs: 20, maxMs: 50, maxAttempts: 2 } },
      { hooks: [{ onAdminAction: (e) => void actions.push(e) }] },
    );
    admin = await token({ sub: 'ops', roles: ['admin'] });
  });
  after(() => node.close());

  const api = async (method: string, path: string, body?: unknown, jwt = admin) => {
    const res = await fetch(`${node.httpUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${jwt}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  /** Publishes `n` events on `channel` that a worker never acks, and waits until they are dead letters. */
  async function deadLetters(channel: string, n: number): Promise<string[]> {
    const worker = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'worker' }) });
    await worker.subscribe({ channels: [channel], acknowledgment: true });
    const pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'boss', roles: ['service'] }),
    });
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await pub.publish(channel, 'job', { n: i })).payload.id as string);
    for (const _ of ids) await pub.nextOfType('message.failed', 10_000);
    worker.close();
    pub.close();
    return ids;
  }

  it("lists and inspects the organization's dead letters, and only its own", async () => {
    const ids = await deadLetters('tool:jobs', 2);
    const list = await api('GET', '/v1/admin/dead-letters?channel=tool:jobs');
    assert.equal(list.status, 200);
    // Newest failure first; two events' retries may end in either order.
    assert.deepEqual(list.body.deadLetters.map((d: { eventId: string }) => d.eventId).sort(), ids);
    assert.equal(list.body.deadLetters[0].attempts, 2);
    const one = await api('GET', `/v1/admin/dead-letters/${ids[0]}`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.event.payload, { n: 0 });
    assert.equal(one.body.failures.length, 1);
    // Another organization's admin sees none of them.
    const other = await token({ sub: 'ops', org: 'globex', roles: ['admin'] });
    assert.deepEqual((await api('GET', '/v1/admin/dead-letters', undefined, other)).body.deadLetters, []);
    assert.equal((await api('GET', `/v1/admin/dead-letters/${ids[0]}`, undefined, other)).status, 404);
    // Not an admin: refused.
    const member = await token({ sub: 'alice' });
    assert.equal((await api('GET', '/v1/admin/dead-letters', undefined, member)).status, 403);
  });

  it('replays: the events reach the subscribers of the channel again, and leave the queue', async () => {
    const ids = await deadLetters('tool:replayed', 1);
    const reader = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'reader' }) });
    await reader.subscribe({ channels: ['tool:replayed'] });
    const r = await api('POST', '/v1/admin/dead-letters/replay', { eventIds: ids });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.replayed.length, 1);
    assert.deepEqual(r.body.failed, []);
    const again: Frame = await reader.next((f) => f.id === r.body.replayed[0].id);
    assert.equal(again.type, 'job');
    assert.deepEqual(again.payload, { n: 0 });
    assert.equal(again.metadata.replay_of, ids[0]);
    reader.close();
    const left = await api('GET', '/v1/admin/dead-letters?channel=tool:replayed');
    assert.deepEqual(left.body.deadLetters, []);
    const audited = actions.find((a) => a.action === 'dead-letters-replay');
    assert.equal(audited?.principal.userId, 'ops');
    assert.equal(audited?.target, ids[0]);
  });

  it('purges by channel; a purge must name what it takes', async () => {
    await deadLetters('tool:purged', 2);
    assert.equal((await api('POST', '/v1/admin/dead-letters/purge', {})).status, 400);
    const r = await api('POST', '/v1/admin/dead-letters/purge', { channel: 'tool:purged' });
    assert.deepEqual(r.body, { purged: 2 });
    await waitFor(() => actions.some((a) => a.action === 'dead-letters-purge'), 5000, 'the audit');
    const left = await api('GET', '/v1/admin/dead-letters?channel=tool:purged');
    assert.deepEqual(left.body.deadLetters, []);
    assert.equal((await api('GET', '/v1/admin/dead-letters?limit=0')).status, 400);
  });

  it('apix admin dead-letters: list, inspect, replay and purge from the command line', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', 'src/cli/main.ts', 'admin', 'dead-letters', ...args, '--url', node.httpUrl],
          { encoding: 'utf8', env: { ...process.env, APIX_ADMIN_TOKEN: admin }, timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ status: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const ids = await deadLetters('tool:cli', 2);
    const list = await cli('list', '--channel', 'tool:cli');
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(
      JSON.parse(list.stdout)
        .deadLetters.map((d: { eventId: string }) => d.eventId)
        .sort(),
      ids,
    );
    const inspect = await cli('inspect', ids[0]!);
    assert.deepEqual(JSON.parse(inspect.stdout).event.payload, { n: 0 }, inspect.stderr);
    const replay = await cli('replay', ids[0]!);
    assert.equal(JSON.parse(replay.stdout).replayed[0].eventId, ids[0], replay.stderr);
    assert.equal((await cli('purge')).status, 2, 'a purge names what it takes');
    const queued = JSON.parse((await cli('list')).stdout).deadLetters.length; // this test's and earlier ones'
    assert.ok(queued >= 1);
    const purge = await cli('purge', '--all');
    assert.deepEqual(JSON.parse(purge.stdout), { purged: queued }, purge.stderr);
    assert.deepEqual(JSON.parse((await cli('list')).stdout).deadLetters, []);
  });
});
