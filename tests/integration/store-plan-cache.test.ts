/**
 * Found by the soak: Prisma's query-plan cache kept the compiled plan of every batch shape the record
 * writers produced (a `createMany` of N rows and a transaction of N updates: a new shape for each N, a plan
 * of megabytes), and a node with records on grew by about 1 MB/s, to gigabytes. With the cache off
 * (src/store/database.ts), batches of ever-different sizes leave the heap where it was.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { databaseTargets } from '../support/databases.ts';
import type { OpenedDatabase } from '../support/databases.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

describe('records: batches of every size do not grow the heap (Prisma plan cache off)', () => {
  let opened: OpenedDatabase | undefined;
  after(async () => {
    await opened?.cleanup();
  });

  it('12 dead-letter style transactions of 100-353 rows, each of a new size -> heap after GC grows < 8 MB (about 20 MB with the cache on)', async () => {
    // A copy of the migrated template data dir: no initdb, no migrations (seconds on a busy machine).
    opened = await databaseTargets.find((t) => t.kind === 'pglite')!.open();
    const p = opened.db.prisma;
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
    await batch(99); // warm the client up
    const before = heapAfterGc();
    for (let i = 0; i < 12; i++) await batch(100 + i * 23);
    const grown = heapAfterGc() - before;
    assert.ok(grown < 8 * 1024 * 1024, `heap grew by ${(grown / 1048576).toFixed(1)} MB`);
  });
});
