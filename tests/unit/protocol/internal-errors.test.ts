/**
 * Internal errors carry codes from one registry (packages/protocol/src/internal-errors.ts), listed in
 * docs/errors.md; src/ throws no Error without one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { INTERNAL_ERRORS, InternalError, isInternalError } from '@apix/protocol/internal-errors';

const root = new URL('../../../', import.meta.url).pathname;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('internal errors', () => {
  it('have codes APIX_ERR_*, each documented in docs/errors.md, and no other', () => {
    const page = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    const section = page.slice(page.indexOf('## Internal error codes'), page.indexOf('## Close codes'));
    const documented = [...section.matchAll(/^\| `(APIX_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    const codes = Object.keys(INTERNAL_ERRORS);
    for (const code of codes) assert.match(code, /^APIX_ERR_[A-Z_]+$/);
    assert.deepEqual([...documented].sort(), [...codes].sort());
  });

  it('are Errors with a code and a cause', () => {
    const cause = new Error('low level');
    const err = new InternalError('APIX_ERR_CLOSED', 'broker closed', { cause });
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'APIX_ERR_CLOSED');
    assert.equal(err.message, 'broker closed');
    assert.equal(err.cause, cause);
    assert.ok(isInternalError(err));
    assert.ok(isInternalError(err, 'APIX_ERR_CLOSED'));
    assert.ok(!isInternalError(err, 'APIX_ERR_TIMEOUT'));
    assert.ok(!isInternalError(cause));
  });

  it('src/ and packages/protocol/src throw no Error without a code', () => {
    const files = [...sourceFiles(join(root, 'src')), ...sourceFiles(join(root, 'packages/protocol/src'))];
    const bare = files.flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (/\bnew Error\(/.test(line) ? [`${file.slice(root.length)}:${i + 1}`] : [])),
    );
    assert.deepEqual(bare, []);
  });
});
