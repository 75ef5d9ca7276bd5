/** Shared by the CLI commands that use the database: open it from the environment, migrated. */
import { userInfo } from 'node:os';
import { AuditLogger, type AuditEntryInput } from '../audit/audit-logger.ts';
import { loadConfig, type Config } from '../config.ts';
import { createDatabase, type Database } from '../store/database.ts';
import { migrate } from '../store/migrate.ts';

export interface CliDatabase {
  readonly config: Config;
  readonly db: Database;
}

/** Progress and notices go to stderr, so that stdout carries only the command's output. */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Opens DATABASE_URL (or the embedded store in APIX_DATA_DIR) and applies pending migrations. */
export async function openCliDatabase(
  env: NodeJS.ProcessEnv,
  options: { migrate?: boolean } = {},
): Promise<CliDatabase> {
  const config = loadConfig(env);
  const db = await createDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    embeddedBuffersMb: config.embeddedDbBuffersMb,
  });
  try {
    if (options.migrate !== false) {
      const r = await migrate(db, { onProgress: note });
      if (r.applied.length) note(`applied ${r.applied.length} migration(s)`);
    }
  } catch (err) {
    await db.close();
    throw err;
  }
  return { config, db };
}

/** Who runs the CLI, for the audit trail. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

/** Records an operator's action in the audit trail and waits for it to be written (or spilled). */
export async function auditCliAction(cli: CliDatabase, entry: Omit<AuditEntryInput, 'actor'>): Promise<void> {
  const audit = new AuditLogger({ db: cli.db, dataDir: cli.config.dataDir });
  audit.record({ ...entry, actor: cliActor(), detail: { ...entry.detail, via: 'cli' } });
  if (!(await audit.close()))
    note('warning: the audit entry could not be written yet; it is kept in the spill file');
}

export async function withCliDatabase<T>(
  env: NodeJS.ProcessEnv,
  fn: (cli: CliDatabase) => Promise<T>,
): Promise<T> {
  const cli = await openCliDatabase(env);
  try {
    return await fn(cli);
  } finally {
    await cli.db.close();
  }
}
