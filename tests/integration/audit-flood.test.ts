/**
 * Issue 13 item 5: one client cannot erase the audit trail. A member floods 40 subscribe frames of 1,000
 * forbidden channels each while an operator revokes 4 users: every revocation is in the trail, the
 * denials are aggregated into a few entries with counts, nothing is dropped, and `seq` follows
 * `createdAt`. A node with real records (PGlite, a copy of the migrated template).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.ts';
import { systemClock } from '../../src/clock.ts';
import { openRecords } from '../../src/records.ts';
import type { Records } from '../../src/records.ts';
import type { ApiXNode } from '../../src/node.ts';
import { config, RawClient, startNode, token } from '../support/gateway.ts';
import { pgliteTemplate } from '../support/databases.ts';
import { waitFor } from '../support/wait.ts';

interface Entry {
  seq: number;
  action: string;
  target: string | null;
  createdAt: string;
  detail: Record<string, unknown>;
}

describe('audit under a denial flood', () => {
  let dataDir: string;
  let records: Records;
  let node: ApiXNode;
  let admin: string;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'apix-audit-flood-'));
    cpSync(join(await pgliteTemplate(), 'pgdata'), join(dataDir, 'pgdata'), { recursive: true });
    const base = config();
    const c = {
      ...base,
      dataDir,
      audit: { ...base.audit, flushIntervalMs: 100, maxQueue: 1_000, denialWindowMs: 1_000 },
    };
    records = await openRecords(c, {
      clock: systemClock,
      random: Math.random,
      log: createLogger('silent', 'test'),
    });
    node = await startNode(c, {
      apiKeys: records.apiKeys,
      channels: records.channels,
      deadLetters: records.deadLetters,
      hooks: records.hooks,
    });
    records.attach(node);
    admin = await token({ sub: 'ops', roles: ['admin'] });
  });
  after(async () => {
    await node?.close();
    await records?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function audit(query: string): Promise<Entry[]> {
    const res = await fetch(`${node.httpUrl}/v1/audit?${query}&limit=1000`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { entries: Entry[] }).entries;
  }

  it('40 x 1,000 forbidden subscribes with 4 revocations: all 4 kept, denials aggregated, none dropped', async () => {
    const member = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'mallory' }) });
    const revoke = (userId: string) =>
      fetch(`${node.httpUrl}/v1/admin/revocations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ userId, reason: 'flood test' }),
      }).then((r) => r.status);
    const revocations: Array<Promise<number>> = [];
    for (let f = 0; f < 40; f++) {
      const channels = Array.from({ length: 1000 }, (_, i) => `user:victim${f}x${i}`);
      member.send({ type: 'subscribe', payload: { channels }, metadata: { correlation_id: `f${f}` } });
      if (f % 10 === 5) revocations.push(revoke(`revoked-${f}`));
    }
    assert.deepEqual(await Promise.all(revocations), [200, 200, 200, 200]);
    await member.next((f) => f.metadata?.correlation_id === 'f39', 60_000);

    await waitFor(async () => (await audit('type=admin')).length >= 4, 30_000, 'the 4 revocations');
    const admins = await audit('type=admin');
    assert.deepEqual(admins.map((e) => e.target).sort(), [
      'revoked-15',
      'revoked-25',
      'revoked-35',
      'revoked-5',
    ]);
    // The window ends, its summary is written: the first denial as it came, the other 39,999 counted.
    let denied: Entry[] = [];
    await waitFor(
      async () => {
        denied = await audit('type=subscription.denied');
        return denied.reduce((n, e) => n + ((e.detail.count as number | undefined) ?? 1), 0) === 40_000;
      },
      30_000,
      'every denial counted',
    );
    assert.ok(denied.length <= 200, `${denied.length} entries for 40,000 denials`);
    const summaries = denied.filter((e) => e.detail.aggregated === true);
    assert.ok(summaries.length >= 1);
    for (const s of summaries) {
      assert.ok((s.detail.targets as string[]).length <= 10);
      assert.ok((s.detail.firstAt as number) <= (s.detail.lastAt as number));
    }
    assert.equal(records.audit.counters.dropped, 0);

    // The chain's order is the order of the events: createdAt never goes back as seq goes up.
    const all = await audit('');
    const bySeq = [...all].sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < bySeq.length; i++)
      assert.ok(
        Date.parse(bySeq[i]!.createdAt) >= Date.parse(bySeq[i - 1]!.createdAt),
        `seq ${bySeq[i]!.seq} (${bySeq[i]!.createdAt}) before seq ${bySeq[i - 1]!.seq} (${bySeq[i - 1]!.createdAt})`,
      );
    member.close();
  });
});
