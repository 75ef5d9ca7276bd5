/** `apix migrate`: applies pending migrations to DATABASE_URL, or to the embedded store in APIX_DATA_DIR. */
import { parseArgs } from '../args.ts';
import { note, openCliDatabase } from '../database.ts';
import { loadMigrations, migrate } from '../../store/migrate.ts';

const USAGE = 'usage: apix migrate [--list]';

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  if (args.options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.options.list) {
    for (const m of loadMigrations()) process.stdout.write(`${m.name}  ${m.checksum.slice(0, 12)}\n`);
    return 0;
  }
  const started = Date.now();
  const cli = await openCliDatabase(env, { migrate: false });
  try {
    note(`migrating ${cli.db.kind} database at ${cli.db.location}`);
    const r = await migrate(cli.db, { onProgress: note });
    process.stdout.write(
      r.applied.length
        ? `applied ${r.applied.length} migration(s): ${r.applied.join(', ')} (${Date.now() - started} ms)\n`
        : `up to date (${r.alreadyApplied} migration(s) applied)\n`,
    );
    return 0;
  } finally {
    await cli.db.close();
  }
}
