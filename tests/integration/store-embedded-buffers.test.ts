/**
 * The embedded PGlite's shared_buffers follow APIX_EMBEDDED_DB_BUFFERS_MB: its pages live in the
 * gateway's own heap, so they are what the records cost in memory per connection.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, type Database } from '../../src/store/database.ts';
import { migrate } from '../../src/store/migrate.ts';

const buffersMb = async (db: Database) =>
  db.withRawSession(
    async (s) =>
      (
        await s.query<{ mb: number }>(
          `SELECT (setting::bigint * 8 / 1024)::int AS mb FROM pg_settings WHERE name = 'shared_buffers'`,
        )
      )[0]!.mb,
  );

describe('embedded database: shared_buffers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-buffers-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('applied at every open, changed when the setting changes, PostgreSQL default when unset; data intact', async () => {
    let db = await createDatabase({ dataDir: dir, embeddedBuffersMb: 8 });
    await migrate(db, { onProgress: () => {} });
    assert.equal(await buffersMb(db), 8);
    await db.prisma.organization.create({ data: { id: 'buffers-org', name: 'b' } });
    await db.close();

    db = await createDatabase({ dataDir: dir });
    assert.equal(await buffersMb(db), 128);
    await db.close();

    db = await createDatabase({ dataDir: dir, embeddedBuffersMb: 24 });
    assert.equal(await buffersMb(db), 24);
    assert.equal((await db.prisma.organization.findUnique({ where: { id: 'buffers-org' } }))?.name, 'b');
    await db.close();
  });
});
