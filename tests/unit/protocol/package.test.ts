/**
 * packages/protocol (`@apix/protocol`): one clock for the gateway and the SDK, and no relative import
 * across packages (eslint's apix/no-cross-package-imports).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import * as shared from '@apix/protocol/clock';
import * as gateway from '../../../src/clock.ts';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

/** Runs `code` (an ES module, from the repo root) with tsx and returns what it printed. */
function run(code: string): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe('@apix/protocol clock', () => {
  it('is the one the gateway uses: src/clock.ts re-exports it, no copy', () => {
    assert.equal(gateway.systemClock, shared.backgroundClock);
    assert.equal(gateway.ManualClock, shared.ManualClock);
  });

  it("backgroundClock's timers do not hold the process; systemClock's (the SDK's default) do", () => {
    const arm = (name: string) =>
      `import { ${name} } from '@apix/protocol/clock'; ${name}.setTimeout(() => console.log('fired'), 200);`;
    assert.equal(run(arm('backgroundClock')), '');
    assert.equal(run(arm('systemClock')), 'fired');
  });
});

describe('lint: no relative import across packages', () => {
  const eslint = new ESLint({ cwd: ROOT });
  const problems = async (file: string, code: string) => {
    const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) });
    return result!.messages.filter((m) => m.ruleId === 'apix/no-cross-package-imports').length;
  };

  it('rejects a package reaching into the gateway or another package, and the gateway into a package', async () => {
    assert.equal(await problems('packages/sdk/src/x.ts', "export { x } from '../../../src/log.ts';\n"), 1);
    assert.equal(await problems('packages/sdk/src/x.ts', "import '../../protocol/src/errors.ts';\n"), 1);
    assert.equal(await problems('src/x.ts', "import '../packages/protocol/src/errors.ts';\n"), 1);
    assert.equal(await problems('src/gateway/x.ts', "export * from '../../packages/sdk/src/index.ts';\n"), 1);
  });

  it('accepts imports within a package and by package name', async () => {
    assert.equal(
      await problems('packages/sdk/src/x.ts', "import './backoff.ts';\nimport '@apix/protocol';\n"),
      0,
    );
    assert.equal(
      await problems('src/gateway/x.ts', "import '../log.ts';\nimport '@apix/protocol/errors';\n"),
      0,
    );
  });
});
