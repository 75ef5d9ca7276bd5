import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SpillFile } from '../../../src/audit/spill-file.ts';

test('appends under its bound, reads back in order, skips a torn line, and survives a reopen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-spill-'));
  try {
    const path = join(dir, 'sub', 'spill.jsonl');
    const file = new SpillFile<{ n: number }>(path, 39);
    assert.deepEqual(await file.append([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]), {
      written: 4,
      refused: 1,
    });
    assert.equal(file.size, 32);
    appendFileSync(path, '{"n":');
    const reopened = new SpillFile<{ n: number }>(path, 1000);
    assert.deepEqual(await reopened.readAll(), {
      entries: [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }],
      corrupt: 1,
    });
    await reopened.replace([{ n: 4 }]);
    assert.deepEqual((await reopened.readAll()).entries, [{ n: 4 }]);
    await reopened.replace([]);
    assert.equal(reopened.size, 0);
    assert.deepEqual(await reopened.readAll(), { entries: [], corrupt: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
