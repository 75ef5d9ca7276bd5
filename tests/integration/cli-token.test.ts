/**
 * `apix token` says which secret it signs with, and warns when it had to create a development secret:
 * a token minted without the server's APIX_DATA_DIR is signed with another dir's secret, which the server
 * refuses ("token signature is invalid"). The `apix serve` banner names the exact command.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli, spawnGateway } from '../support/process.ts';
import { RawClient } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { tokenCommand } from '../../src/cli/dev-secret.ts';

describe('apix token', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'apix-token-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const args = ['token', '--sub', 'alice', '--org', 'acme'];

  it('names the secret file, and warns when it creates a new development secret', () => {
    const dir = tmp();
    const secretFile = resolve(dir, 'dev-jwt-secret');
    const first = runCli(args, { APIX_DATA_DIR: dir });
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'stdout is the token alone');
    assert.ok(first.stderr.includes(`created a new one in ${secretFile}`), first.stderr);
    assert.match(first.stderr, /another APIX_DATA_DIR will refuse this token/);

    const second = runCli(args, { APIX_DATA_DIR: dir });
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stderr, `apix token: signed with the development secret in ${secretFile}\n`);
  });

  it('says so when it signs with APIX_JWT_SECRET', () => {
    const r = runCli(args, { APIX_DATA_DIR: tmp(), APIX_JWT_SECRET: 'x'.repeat(40) });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, 'apix token: signed with APIX_JWT_SECRET\n');
  });

  it('the serve banner prints a token command that works against that server', async () => {
    const dir = tmp();
    const gw = await spawnGateway({ APIX_DATA_DIR: dir, APIX_RECORDS: 'off' });
    try {
      const expected = tokenCommand(dir, '--sub alice --org acme --roles member');
      // The banner and /readyz's answer come through different pipes: wait for the banner.
      await waitFor(() => gw.output().includes('Connect:'), 30_000, 'the start banner');
      assert.ok(gw.output().includes(`Mint a token:  ${expected}\n`), gw.output());
      const minted = runCli(['token', '--sub', 'alice', '--org', 'acme'], { APIX_DATA_DIR: dir });
      assert.equal(minted.status, 0, minted.stderr);
      assert.doesNotMatch(minted.stderr, /created/, "signs with the server's secret");
      const c = await RawClient.connect(gw.wsUrl, { token: minted.stdout.trim() });
      c.close();
    } finally {
      await gw.kill('SIGKILL');
    }
  });

  it("the serve banner's command carries a data dir that is not the default", () => {
    assert.equal(tokenCommand('./.apix', '--sub a'), 'npx apix token --sub a');
    assert.equal(tokenCommand('/srv/apix', '--sub a'), 'APIX_DATA_DIR=/srv/apix npx apix token --sub a');
    assert.equal(
      tokenCommand("/a b/it's", '--sub a'),
      `APIX_DATA_DIR='/a b/it'\\''s' npx apix token --sub a`,
    );
  });
});
