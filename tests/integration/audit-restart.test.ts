/**
 * The audit trail of a real `apix serve` on its defaults (embedded PGlite, every publish audited, the
 * batches chained and stored on the engine's thread): a burst of publishes and connects, then SIGTERM right
 * away, before any timer tick could write a partial batch. The drain writes what is still queued: after the
 * restart every entry is there, once, and each organization's chain verifies.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway } from '../support/process.ts';
import { RawClient, token, TEST_SECRET } from '../support/gateway.ts';
import { pgliteTemplate } from '../support/databases.ts';
import { createDatabase } from '../../src/store/database.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const PUBLISHES = 2_500;
const SUBSCRIBERS = 20;

describe('apix serve: the audit trail across SIGTERM', { timeout: 300_000 }, () => {
  it('a burst, then SIGTERM before the next tick: every entry stored once after the restart, chains intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apix-audit-restart-'));
    dirs.push(dir);
    cpSync(join(await pgliteTemplate(), 'pgdata'), join(dir, 'pgdata'), { recursive: true });
    const env: Record<string, string> = {
      APIX_DATA_DIR: dir,
      APIX_JWT_SECRET: TEST_SECRET,
      // No tick during the test: only full batches (1,000) are written before the drain.
      APIX_AUDIT_FLUSH_INTERVAL_MS: '600000',
      APIX_RATE_CONNECTION_PER_SEC: '0',
      APIX_RATE_PUBLISH_PER_SEC: '0',
      APIX_RATE_CHANNEL_PER_SEC: '0',
      APIX_RATE_ORG_PUBLISH_PER_SEC: '0',
    };
    let gw = await spawnGateway(env);
    const subs: RawClient[] = [];
    for (let i = 0; i < SUBSCRIBERS; i++)
      subs.push(
        await RawClient.connect(gw.wsUrl, {
          token: await token({ sub: `u-${i}`, org: `org-${i % 3}` }),
          sessionId: `s-${i}`,
          subscriptions: ['agent:burst'],
        }),
      );
    const pub = await RawClient.connect(gw.wsUrl, { token: await token({ sub: 'svc', roles: ['admin'] }) });
    const ids: string[] = [];
    for (let from = 0; from < PUBLISHES; from += 250) {
      const replies = await Promise.all(
        Array.from({ length: 250 }, (_, k) => pub.publish('agent:burst', 'note', { i: from + k })),
      );
      for (const r of replies) {
        assert.equal(r.type, 'message.sent', JSON.stringify(r.payload));
        ids.push(r.payload.id as string);
      }
    }
    assert.equal(await gw.kill('SIGTERM'), 0, 'drains and exits 0');

    // Started again and stopped: the data dir is then free for the test to read.
    gw = await spawnGateway(env);
    assert.equal(await gw.kill('SIGTERM'), 0);
    const db = await createDatabase({ dataDir: dir });
    try {
      const published = await db.prisma.auditLog.findMany({
        where: { action: 'event.published' },
        select: { detail: true },
      });
      const stored = published.map((e) => (e.detail as { id: string }).id).sort();
      assert.equal(stored.length, PUBLISHES, 'one entry per publish');
      assert.deepEqual(stored, [...ids].sort());
      const accepted = await db.prisma.auditLog.count({ where: { action: 'connection.accepted' } });
      assert.equal(accepted, SUBSCRIBERS + 1, 'one entry per connection');
      const orgs = await db.prisma.auditLog.findMany({ distinct: ['orgId'], select: { orgId: true } });
      for (const { orgId } of orgs) {
        const v = await verifyAuditChain(db.prisma, orgId);
        assert.deepEqual(v.problems, [], `chain of ${orgId}`);
      }
    } finally {
      await db.close();
    }
  });
});
