/**
 * The build's embedded-database template: a first start copies a migrated database instead of running
 * initdb. The copy must be a database the node can use as its own (every migration recorded, writable,
 * reopened intact), and it must never overwrite a directory that already holds something.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase } from '../../src/store/database.ts';
import { loadMigrations, migrate } from '../../src/store/migrate.ts';
import {
  buildEmbeddedTemplate,
  embeddedTemplatePath,
  seedFromTemplate,
  TEMPLATE_SLIMMING_SQL,
} from '../../src/store/embedded-template.ts';

describe('embedded database template', () => {
  const root = mkdtempSync(join(tmpdir(), 'apix-template-'));
  const templates = join(root, 'templates');
  after(() => rmSync(root, { recursive: true, force: true }));

  it('is built once, then seeds an empty data dir with a migrated database the node opens and writes', async () => {
    let creates = 0;
    const create = async (dataDir: string) => {
      creates++;
      const db = await createDatabase({ dataDir, embeddedFromTemplate: false });
      try {
        await migrate(db, { onProgress: () => {} });
        await db.withRawSession(async (s) => {
          for (const sql of TEMPLATE_SLIMMING_SQL) await s.exec(sql);
        });
      } finally {
        await db.close();
      }
    };
    const first = await buildEmbeddedTemplate(create, templates);
    assert.equal(first.built, true);
    assert.equal(first.path, embeddedTemplatePath(templates));
    assert.equal((await buildEmbeddedTemplate(create, templates)).built, false, 'kept, not made again');
    assert.equal(creates, 1);

    const dataDir = join(root, 'node');
    const pgdata = join(dataDir, 'pgdata');
    mkdirSync(pgdata, { recursive: true });
    assert.equal(await seedFromTemplate(pgdata, templates), true);
    assert.ok(existsSync(join(pgdata, 'PG_VERSION')));

    let db = await createDatabase({ dataDir });
    const result = await migrate(db, { onProgress: () => {} });
    assert.deepEqual(result.applied, [], 'every migration is already in the template');
    assert.equal(result.alreadyApplied, loadMigrations().length);
    await db.prisma.organization.create({ data: { id: 'template-org', name: 't' } });
    await db.close();
    db = await createDatabase({ dataDir });
    assert.equal((await db.prisma.organization.findUnique({ where: { id: 'template-org' } }))?.name, 't');
    await db.close();
  });

  it('leaves a data dir that holds anything alone, and does nothing without a template', async () => {
    const occupied = join(root, 'occupied');
    mkdirSync(occupied);
    writeFileSync(join(occupied, 'something'), 'x');
    assert.equal(await seedFromTemplate(occupied, templates), false);
    assert.deepEqual(readdirSync(occupied), ['something']);

    const empty = join(root, 'empty');
    mkdirSync(empty);
    assert.equal(await seedFromTemplate(empty, join(root, 'no-templates')), false);
    assert.deepEqual(readdirSync(empty), []);
  });
});
