import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SpillFile } from '../../../src/audit/spill-file.ts';

test('appends under its bound, reads back in order, skips a torn line, and survives a reopen', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-spill-'));
  try {
    const path = join(dir, 'sub', 'spill.jsonl');
    const file = new SpillFile<{ n: number }>(path, 39);
    assert.deepEqual(file.append([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]), {
      written: 4,
      refused: 1,
    });
    assert.equal(file.size, 32);
    appendFileSync(path, '{"n":');
    const reopened = new SpillFile<{ n: number }>(path, 1000);
    // The torn line was ended at the reopen: the next append starts a line of its own.
    reopened.append([{ n: 9 }]);
    assert.deepEqual(reopened.readAll(), {
      entries: [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 9 }],
      corrupt: 1,
      bytes: reopened.size,
    });
    reopened.replace([{ n: 4 }]);
    assert.deepEqual(reopened.readAll().entries, [{ n: 4 }]);
    reopened.replace([]);
    assert.equal(reopened.size, 0);
    assert.deepEqual(reopened.readAll(), { entries: [], corrupt: 0, bytes: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replace keeps what was appended after the read it follows; prepend goes first', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-spill-'));
  try {
    const path = join(dir, 'spill.jsonl');
    const file = new SpillFile<{ n: number }>(path, 1000);
    file.append([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const snap = file.readAll();
    // While the snapshot's entries are written to the database, a full queue spills behind them.
    file.append([{ n: 4 }, { n: 5 }]);
    file.replace(snap.entries.slice(2), snap.bytes); // 1 and 2 were written, 3 was not
    assert.deepEqual(file.readAll().entries, [{ n: 3 }, { n: 4 }, { n: 5 }]);
    assert.equal(file.size, readFileSync(path).length);
    file.prepend([{ n: 0 }]);
    assert.deepEqual(file.readAll().entries, [{ n: 0 }, { n: 3 }, { n: 4 }, { n: 5 }]);
    assert.equal(file.size, readFileSync(path).length);
    const all = file.readAll();
    file.replace([], all.bytes);
    assert.equal(file.size, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
