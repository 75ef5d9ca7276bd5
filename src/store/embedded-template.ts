/**
 * A migrated, empty embedded database made once at build time (`npm ci` runs the build), which a node's
 * first start copies instead of creating its database: PGlite's initdb takes seconds (a separate
 * WebAssembly instance; 2-3 s on an idle 2-core machine, ten times that on a busy one), copying its result
 * (about 40 MB, a thousand files) tens of milliseconds. Keyed by PGlite's version and the migrations, so a
 * template made for other migrations or another engine is never used; without one, the node creates its
 * database as before.
 */
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMigrations } from './migrations.ts';

/** Files copied at once: enough to keep libuv's four threads busy. */
const COPY_CONCURRENCY = 8;

/** Beside the compiled gateway (dist/), so that the Docker image, which copies dist/, carries it too. */
const TEMPLATES_DIR = fileURLToPath(new URL('../../dist/pglite-template/', import.meta.url));
const PGLITE_PACKAGE = fileURLToPath(
  new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url),
);

/**
 * Run on the template after its migrations: APIX never creates databases, and without initdb's template0
 * and template1 the template has 370 files instead of 970, which is what a first start pays for (file
 * creation, not bytes, is the cost of the copy).
 */
export const TEMPLATE_SLIMMING_SQL = [
  // Idempotent (the catalog update and IF EXISTS): a template may be made from a copy of an earlier one.
  `UPDATE pg_database SET datistemplate = false WHERE datname IN ('template0', 'template1')`,
  'DROP DATABASE IF EXISTS template0',
  'DROP DATABASE IF EXISTS template1',
  'CHECKPOINT',
];

/** The PGlite version and the migrations' names and checksums, hashed. */
export function embeddedTemplateKey(migrationsDir?: string): string {
  const pgliteVersion = (JSON.parse(readFileSync(PGLITE_PACKAGE, 'utf8')) as { version: string }).version;
  return createHash('sha256')
    .update(pgliteVersion)
    .update(
      loadMigrations(migrationsDir)
        .map((m) => `${m.name}:${m.checksum}`)
        .join(','),
    )
    .digest('hex')
    .slice(0, 16);
}

/** The template's data directory for the current PGlite and migrations (it may not exist). */
export function embeddedTemplatePath(templatesDir: string = TEMPLATES_DIR): string {
  return join(templatesDir, embeddedTemplateKey(), 'pgdata');
}

/**
 * Fills an empty `pgdata` directory from the template, when there is one. Resolves whether it did. A directory
 * that holds anything is left to PGlite (an existing database, or the remains of an interrupted start).
 * Asynchronous and several files at a time (libuv's thread pool): creating files is the cost here, and the
 * calling thread goes on loading the gateway meanwhile.
 */
export async function seedFromTemplate(pgdata: string, templatesDir?: string): Promise<boolean> {
  if (readdirSync(pgdata).length > 0) return false;
  let template: string;
  try {
    template = embeddedTemplatePath(templatesDir);
  } catch {
    return false; // no migrations or no PGlite package to key by: create the database as before
  }
  if (!existsSync(join(template, 'PG_VERSION'))) return false;
  // Copied beside it and renamed when whole: a start killed mid-copy leaves no half database behind.
  const seeding = `${pgdata}.seeding`;
  rmSync(seeding, { recursive: true, force: true });
  mkdirSync(seeding);
  const files: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(template, rel), { withFileTypes: true })) {
      const path = join(rel, entry.name);
      if (entry.isDirectory()) {
        mkdirSync(join(seeding, path), { recursive: true });
        walk(path);
      } else files.push(path);
    }
  };
  walk('');
  let next = 0;
  const copyNext = async (): Promise<void> => {
    while (next < files.length) {
      const path = files[next++]!;
      await copyFile(join(template, path), join(seeding, path));
    }
  };
  await Promise.all(Array.from({ length: COPY_CONCURRENCY }, copyNext));
  rmSync(pgdata, { recursive: true, force: true }); // empty, checked above
  renameSync(seeding, pgdata);
  return true;
}

/**
 * Makes the template for the current migrations if it is missing (the build's last step). `create` opens
 * and migrates a database in the directory it is given, then closes it.
 */
export async function buildEmbeddedTemplate(
  create: (dataDir: string) => Promise<void>,
  templatesDir: string = TEMPLATES_DIR,
): Promise<{ readonly path: string; readonly built: boolean }> {
  const key = embeddedTemplateKey();
  const target = join(templatesDir, key);
  if (existsSync(join(target, 'pgdata', 'PG_VERSION'))) return { path: join(target, 'pgdata'), built: false };
  // Older templates (other migrations) are of no use any more.
  if (existsSync(templatesDir))
    for (const old of readdirSync(templatesDir))
      rmSync(join(templatesDir, old), { recursive: true, force: true });
  mkdirSync(templatesDir, { recursive: true });
  const work = mkdtempSync(join(templatesDir, '.build-'));
  try {
    await create(work);
    rmSync(join(work, 'pgdata.lock'), { force: true });
    writeFileSync(join(work, 'key'), `${key}\n`);
    renameSync(work, target); // whole or not at all
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
  return { path: join(target, 'pgdata'), built: true };
}
