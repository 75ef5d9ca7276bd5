/**
 * The database CLI commands as an operator runs them (in process, and once as a real process; a fresh
 * PostgreSQL database):
 * migrate, keys create/list/revoke, channels set-permissions, audit tail and verify (exit 1 on tampering).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createTestPostgres, postgresSkipReason, type TestPostgres } from '../support/postgres.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

const skip = await postgresSkipReason();
describe('apix migrate / keys / channels / audit', { skip }, () => {
  let postgres: TestPostgres;
  let dataDir: string;
  before(async () => {
    postgres = await createTestPostgres();
    dataDir = mkdtempSync(join(tmpdir(), 'apix-cli-'));
  });
  after(async () => {
    await postgres?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Runs a command in this process (its `run(argv, env)`), capturing what it prints. */
  const apix = async (name: string, ...args: string[]) => {
    const mod = (await import(`../../src/cli/commands/${name}.ts`)) as {
      run: (argv: string[], env: NodeJS.ProcessEnv) => Promise<number>;
    };
    let stdout = '';
    let stderr = '';
    const out = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof out;
    process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof err;
    try {
      const code = await mod.run(args, {
        ...process.env,
        DATABASE_URL: postgres.url,
        APIX_DATA_DIR: dataDir,
      });
      return { code, stdout, stderr };
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
    }
  };

  /** The real executable, for the exit-code path through src/cli/main.ts. */
  const apixProcess = (...args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
        env: { ...process.env, DATABASE_URL: postgres.url, APIX_DATA_DIR: dataDir },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout }));
    });

  test('an operator session, end to end', async () => {
    const migrated = await apix('migrate');
    assert.equal(migrated.code, 0, migrated.stderr);
    // Every migration under prisma/migrations/ is applied to a new database, in order.
    const migrations = readdirSync(new URL('../../prisma/migrations/', import.meta.url), {
      withFileTypes: true,
    })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
    assert.match(
      migrated.stdout,
      new RegExp(`applied ${migrations.length} migration\\(s\\): ${migrations.join(', ')}`),
    );

    const perms = '{"subscribe":{"roles":["ops"]}}';
    const created = await apix('keys', 'create', '--org', 'acme', '--scopes', 'publish,subscribe');
    const again = await apix('migrate');
    const setPerms = await apix('channels', 'set-permissions', 'room:r1', '--org', 'acme', '--json', perms);
    const badPerms = await apix('channels', 'set-permissions', 'room:r1', '--org', 'acme', '--json', '[1]');
    const badSub = await apix('keys', 'frobnicate', '--org', 'acme');
    assert.equal(created.code, 0, created.stderr);
    assert.match(again.stdout, /up to date/);
    assert.equal(setPerms.code, 0, setPerms.stderr);
    assert.deepEqual([badPerms.code, badSub.code], [2, 2]);
    const key = created.stdout.trim();
    assert.match(key, /^apix_[a-z0-9]+_[A-Za-z0-9_-]+$/);
    const keyId = key.split('_')[1]!;

    const revoked = await apix('keys', 'revoke', keyId, '--org', 'acme');
    assert.equal((await apix('keys', 'revoke', keyId, '--org', 'acme')).code, 1, 'already revoked');
    const listed = await apix('keys', 'list', '--org', 'acme', '--all', '--json');
    const got = await apix('channels', 'get', 'room:r1', '--org', 'acme');
    assert.equal(revoked.code, 0, revoked.stderr);
    const rows = JSON.parse(listed.stdout) as Array<{ id: string; scopes: string[]; hash?: string }>;
    assert.deepEqual(
      rows.map((r) => [r.id, r.scopes, r.hash]),
      [[keyId, ['publish', 'subscribe'], undefined]],
    );
    assert.equal(got.stdout.trim(), perms);

    const tail = await apix('audit', 'tail', '--org', 'acme', '--json');
    const ok = await apix('audit', 'verify', '--org', 'acme');
    assert.deepEqual(
      tail.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { action: string }).action),
      ['admin.keys.create', 'admin.channels.set_permissions', 'admin.keys.revoke'],
    );
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /^OK: 3 entries/m);

    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    await client.query(`UPDATE "AuditLog" SET "actor" = 'someone-else' WHERE "orgId" = 'acme' AND "seq" = 2`);
    await client.end();
    const bad = await apixProcess('audit', 'verify', '--org', 'acme');
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /altered +seq 2/);
    assert.match(bad.stdout, /TAMPERED/);
  });
});
