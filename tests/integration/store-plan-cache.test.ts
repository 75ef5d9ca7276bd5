/**
 * Found by the soak: Prisma's query-plan cache kept the compiled plan of every batch shape the record
 * writers produced (a `createMany` of N rows and a transaction of N updates: a new shape for each N, a plan
 * of megabytes), and a node with records on grew by about 1 MB/s, to gigabytes. With the cache off
 * (src/store/database.ts), batches of ever-different sizes leave the heap where it was.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createDatabase } from '../../src/store/database.ts';
import type { Database } from '../../src/store/database.ts';
import { migrate } from '../../src/store/migrate.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

describe('records: batches of every size do not grow the heap (Prisma plan cache off)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-plan-'));
  let db: Database | undefined;
  after(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('24 dead-letter style transactions of 300-600 rows, each of a new size -> heap after GC grows < 20 MB (82 MB with the cache on)', async () => {
    db = await createDatabase({ dataDir: dir });
    await migrate(db, { onProgress: () => {} });
    const p = db.prisma;
    await p.organization.createMany({ data: [{ id: 'o' }], skipDuplicates: true });
    let k = 0;
    const batch = async (n: number) => {
      await p.$transaction([
        p.apiXDeadLetter.createMany({
          data: Array.from({ length: n }, () => ({
            organizationId: 'o',
            channel: 'o/agent:x',
            eventId: `${++k}-0`,
            sessionId: 's',
            attempts: 5,
            eventType: 't',
            payload: { a: 1 },
            reason: 'r',
            createdAt: new Date(),
          })),
        }),
        ...Array.from({ length: n }, (_, j) =>
          p.apiXEvent.updateMany({ where: { id: `x${j}` }, data: { retryCount: 5 } }),
        ),
      ]);
    };
    await batch(299); // warm the client up
    const before = heapAfterGc();
    for (let i = 0; i < 24; i++) await batch(300 + i * 13);
    const grown = heapAfterGc() - before;
    assert.ok(grown < 20 * 1024 * 1024, `heap grew by ${(grown / 1048576).toFixed(1)} MB`);
  });
});
