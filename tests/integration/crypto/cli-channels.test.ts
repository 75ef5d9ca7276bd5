/**
 * `apix channels set <channel> --encrypted true|false --durable true|false`: stored in the channel's
 * settings beside its permissions; marking a channel encrypted is refused without APIX_ENCRYPTION_KEYS;
 * `--coalesce-key <field>|none` sets or clears the channel's coalesceKey.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../../../src/cli/commands/channels.ts';

describe('apix channels set', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'apix-cli-enc-'));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const apix = async (env: Record<string, string>, ...args: string[]) => {
    let stdout = '';
    let stderr = '';
    const out = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof out;
    process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof err;
    try {
      const code = await run(args, { APIX_DATA_DIR: dataDir, APIX_LOG_LEVEL: 'silent', ...env });
      return { code, stdout, stderr };
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
    }
  };

  test('refuses --encrypted true without keys; stores it with keys, keeping the permissions; --coalesce-key', async () => {
    const refused = await apix({}, 'set', 'agent:vault', '--org', 'acme', '--encrypted', 'true');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /APIX_ENCRYPTION_KEYS/);

    const keys = { APIX_ENCRYPTION_KEYS: `1:${randomBytes(32).toString('base64')}` };
    const perms = await apix(
      keys,
      'set-permissions',
      'agent:vault',
      '--org',
      'acme',
      '--json',
      '{"publish":{"roles":["ops"]}}',
    );
    assert.equal(perms.code, 0, perms.stderr);
    const set = await apix(
      keys,
      'set',
      'agent:vault',
      '--org',
      'acme',
      '--encrypted',
      'true',
      '--durable',
      'true',
    );
    assert.equal(set.code, 0, set.stderr);
    const got = await apix(keys, 'get', 'agent:vault', '--org', 'acme');
    assert.deepEqual(JSON.parse(got.stdout), { publish: { roles: ['ops'] }, durable: true, encrypted: true });
    const bad = await apix(keys, 'set', 'agent:vault', '--org', 'acme', '--encrypted', 'maybe');
    assert.equal(bad.code, 2);

    // --coalesce-key sets and clears the channel's coalesceKey, keeping its other settings. (In one test:
    // apix() captures stdout, which would swallow the runner's report of a test before it.)
    const coalesce = await apix(
      {},
      'set',
      'agent:fleet',
      '--org',
      'acme',
      '--durable',
      'true',
      '--coalesce-key',
      'agentId',
    );
    assert.equal(coalesce.code, 0, coalesce.stderr);
    const withKey = await apix({}, 'get', 'agent:fleet', '--org', 'acme');
    assert.deepEqual(JSON.parse(withKey.stdout), { durable: true, coalesceKey: 'agentId' });
    assert.equal((await apix({}, 'set', 'agent:fleet', '--org', 'acme', '--coalesce-key', 'a-b')).code, 2);
    const cleared = await apix({}, 'set', 'agent:fleet', '--org', 'acme', '--coalesce-key', 'none');
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.deepEqual(JSON.parse((await apix({}, 'get', 'agent:fleet', '--org', 'acme')).stdout), {
      durable: true,
    });
  });
});
