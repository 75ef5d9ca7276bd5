/**
 * The Python SDK (packages/python) checked by its own pytest suite against a real node: this file starts
 * `apix serve` as a process (what `npm start` runs; tests/support/process.ts), configured only by the
 * environment variables of docs/configuration.md, and runs `python3 -m pytest packages/python/tests` with the node's URL and the JWT secret (to
 * mint tokens) in the environment. It needs a python3 >= 3.11 with `websockets` and `pytest` (Debian:
 * python3-websockets, python3-pytest; .ci/run installs them). Without one the test skips loudly, except
 * under CI=true, where that is a failure.
 */
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnGateway } from '../support/process.ts';
import type { GatewayProcess } from '../support/process.ts';

const SECRET = 'python-sdk-suite-secret-0123456789';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHECK = 'import sys, websockets, pytest; assert sys.version_info >= (3, 11)';

/** The first interpreter that has what the suite needs (pyenv's python3 may lack Debian's packages). */
function findPython(): string | undefined {
  return ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', CHECK]).status === 0);
}

const python = findPython();

function skipWithoutPython(): string | false {
  if (python) return false;
  const msg = 'no python3 >= 3.11 with websockets and pytest: the Python SDK suite cannot run';
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true requires it`);
  console.warn(
    `\n!!!!!!!! ${msg}; SKIPPING it. apt-get install -y python3-websockets python3-pytest !!!!!!!!\n`,
  );
  return 'python3-websockets or python3-pytest not installed';
}

describe('the Python SDK against a real node (pytest)', { skip: skipWithoutPython() }, () => {
  let node: GatewayProcess;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'apix-python-sdk-'));
    node = await spawnGateway({
      APIX_DATA_DIR: dataDir,
      APIX_JWT_SECRET: SECRET,
      // Short ack timeout and retries so the suite can see a redelivery and a dead letter quickly.
      APIX_ACK_TIMEOUT_MS: '300',
      APIX_RETRY_BASE_MS: '20',
      APIX_RETRY_MAX_MS: '100',
      APIX_RETRY_MAX_ATTEMPTS: '3',
    });
  });
  after(async () => {
    const code = await node?.kill('SIGTERM');
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    assert.equal(code, 0, node?.output());
  });

  it('every pytest test passes, none skipped', async () => {
    const env = {
      ...process.env,
      APIX_URL: node.httpUrl,
      APIX_JWT_SECRET: SECRET,
      CI: 'true',
    };
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        python as string,
        ['-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', 'packages/python/tests'],
        { cwd: ROOT, env, timeout: 240_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    console.log(out.stdout.trimEnd().split('\n').slice(-3).join('\n'));
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /\d+ passed/, out.stdout);
    assert.doesNotMatch(out.stdout, /skipped|failed|error/i, out.stdout);
  });
});
