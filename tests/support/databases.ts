/**
 * Runs one suite against both engines the store supports: PostgreSQL (a fresh database per suite, see
 * postgres.ts) and embedded PGlite (a fresh temp data dir). Each target opens a migrated Database.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDatabase, type Database } from '../../src/store/database.ts';
import { loadMigrations, migrate } from '../../src/store/migrate.ts';
import { createTestPostgres, postgresSkipReason, type TestPostgres } from './postgres.ts';

export interface DatabaseTarget {
  readonly kind: 'postgres' | 'pglite';
  /** Skip reason (PostgreSQL unreachable outside CI), checked in the suite's `before`. */
  skipReason(): Promise<string | undefined>;
  /** Creates the empty database (or data dir) and returns a migrated Database on it. */
  open(): Promise<OpenedDatabase>;
}

export interface OpenedDatabase {
  readonly db: Database;
  /** APIX_DATA_DIR for this test (the PGlite data lives there too). */
  readonly dataDir: string;
  /** Set for PostgreSQL. */
  readonly postgres: TestPostgres | undefined;
  /** Opens another Database on the same data (for PGlite only after `db` is closed). */
  reopen(overrides?: { databaseUrl?: string }): Promise<Database>;
  cleanup(): Promise<void>;
}

export const databaseTargets: readonly DatabaseTarget[] = [
  {
    kind: 'postgres',
    skipReason: postgresSkipReason,
    async open() {
      const postgres = await createTestPostgres();
      const dataDir = mkdtempSync(join(tmpdir(), 'apix-pg-'));
      const db = await createDatabase({ databaseUrl: postgres.url, dataDir });
      await migrate(db);
      return {
        db,
        dataDir,
        postgres,
        reopen: (o) => createDatabase({ databaseUrl: o?.databaseUrl ?? postgres.url, dataDir }),
        async cleanup() {
          await db.close();
          await postgres.drop();
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    kind: 'pglite',
    skipReason: async () => undefined,
    async open() {
      const dataDir = mkdtempSync(join(tmpdir(), 'apix-pglite-'));
      cpSync(join(await pgliteTemplate(), 'pgdata'), join(dataDir, 'pgdata'), { recursive: true });
      const db = await createDatabase({ dataDir });
      await migrate(db);
      return {
        db,
        dataDir,
        postgres: undefined,
        reopen: () => createDatabase({ dataDir }),
        async cleanup() {
          await db.close();
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
];

/**
 * A migrated PGlite data dir, built once per machine for the current migrations and PGlite version and
 * copied per test (initialising PGlite takes seconds; copying it, milliseconds). Built by the same
 * `migrate` from an empty database, so a broken migration still fails the suite.
 */
export async function pgliteTemplate(): Promise<string> {
  const pkg = fileURLToPath(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url));
  const pgliteVersion = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  const key = createHash('sha256')
    .update(pgliteVersion)
    .update(
      loadMigrations()
        .map((m) => `${m.name}:${m.checksum}`)
        .join(','),
    )
    .digest('hex')
    .slice(0, 16);
  const dir = join(tmpdir(), `apix-pglite-template-${key}`);
  if (existsSync(join(dir, 'ready'))) return dir;
  const build = mkdtempSync(join(tmpdir(), 'apix-pglite-build-'));
  const db = await createDatabase({ dataDir: build, embeddedFromTemplate: false });
  await migrate(db);
  await db.close();
  writeFileSync(join(build, 'ready'), '');
  try {
    renameSync(build, dir); // atomic: concurrent test files race harmlessly
  } catch {
    rmSync(build, { recursive: true, force: true });
  }
  return dir;
}
