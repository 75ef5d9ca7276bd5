/**
 * Applies prisma/migrations/<timestamp>_<name>/migration.sql in name order, each once. Idempotent and safe
 * to run from several nodes at once: everything happens in one transaction holding an advisory lock, and
 * applied migrations are recorded (with a checksum) in "_apix_migrations". A migration whose file changed
 * after it was applied stops the run: migrations are append-only.
 */
import type { Database, RawSqlSession } from './database.ts';
import { loadMigrations, type Migration } from './migrations.ts';

export { DEFAULT_MIGRATIONS_DIR, loadMigrations, type Migration } from './migrations.ts';

/** Arbitrary, fixed: the advisory lock every APIX migrator takes (pg_advisory_xact_lock key). */
const MIGRATION_LOCK_KEY = 7_242_031_337;

export interface MigrateResult {
  readonly applied: readonly string[];
  readonly alreadyApplied: number;
}

export interface MigrateOptions {
  readonly migrationsDir?: string;
  /** Called with one line per step (long runs show progress). */
  readonly onProgress?: (line: string) => void;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export async function migrate(db: Database, options: MigrateOptions = {}): Promise<MigrateResult> {
  const migrations = loadMigrations(options.migrationsDir);
  const progress = options.onProgress ?? (() => {});
  return db.withRawSession(async (session) => {
    await session.exec('BEGIN');
    try {
      const result = await applyPending(session, migrations, progress);
      await session.exec('COMMIT');
      return result;
    } catch (err) {
      await session.exec('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

async function applyPending(
  session: RawSqlSession,
  migrations: readonly Migration[],
  progress: (line: string) => void,
): Promise<MigrateResult> {
  // Taken before reading the ledger, so that concurrent migrators apply each migration exactly once.
  await session.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
  await session.exec(
    `CREATE TABLE IF NOT EXISTS "_apix_migrations" (
       "name" TEXT PRIMARY KEY,
       "checksum" TEXT NOT NULL,
       "appliedAt" TIMESTAMPTZ NOT NULL DEFAULT now()
     )`,
  );
  const rows = await session.query<{ name: string; checksum: string }>(
    'SELECT "name", "checksum" FROM "_apix_migrations"',
  );
  const done = new Map(rows.map((r) => [r.name, r.checksum]));
  const applied: string[] = [];
  for (const [i, m] of migrations.entries()) {
    const checksum = done.get(m.name);
    if (checksum !== undefined) {
      if (checksum !== m.checksum)
        throw new MigrationError(
          `migration ${m.name} was changed after it was applied; add a new migration instead`,
        );
      continue;
    }
    progress(`applying ${m.name} (${i + 1}/${migrations.length})`);
    await session.exec(m.sql);
    await session.query('INSERT INTO "_apix_migrations" ("name", "checksum") VALUES ($1, $2)', [
      m.name,
      m.checksum,
    ]);
    applied.push(m.name);
  }
  const known = new Set(migrations.map((m) => m.name));
  for (const name of done.keys())
    if (!known.has(name))
      progress(`warning: the database has migration ${name}, which this version does not know`);
  return { applied, alreadyApplied: done.size };
}
