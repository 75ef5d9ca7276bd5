/**
 * src/audit/chain-batch.mjs is plain JavaScript (the embedded engine's thread loads it as is) and keeps its
 * own copy of the entry's field lists: they must be those of src/audit/entry.ts, and its COPY rows must
 * carry every field in column order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COLUMN_FIELDS, HASHED_FIELDS, csvLine } from '../../../src/audit/chain-batch.mjs';
import { AUDIT_ENTRY_FIELDS, CHAINED_FIELDS } from '../../../src/audit/entry.ts';

test('the field lists are the ones of entry.ts (columns in order, hashed fields sorted)', () => {
  assert.deepEqual([...COLUMN_FIELDS], [...AUDIT_ENTRY_FIELDS]);
  assert.deepEqual([...HASHED_FIELDS], [...CHAINED_FIELDS]);
});

test('a COPY row holds every column in order, NULL unquoted, text quoted with quotes doubled', () => {
  const entry = {
    id: 'id-1',
    orgId: 'org',
    actor: 'al"ice',
    action: 'event.published',
    target: null,
    detail: { a: 1 },
    remoteAddress: '::1',
    userAgent: null,
    createdAt: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
  };
  const byField: Record<string, string> = {
    id: '"id-1"',
    orgId: '"org"',
    seq: '7',
    prevHash: '"p"',
    hash: '"h"',
    actor: '"al""ice"',
    action: '"event.published"',
    target: '',
    detail: '"{""a"":1}"',
    remoteAddress: '"::1"',
    userAgent: '',
    createdAt: '2026-01-02T03:04:05.006Z',
  };
  assert.equal(
    csvLine(entry, 7, 'p', 'h', '{"a":1}'),
    `${AUDIT_ENTRY_FIELDS.map((f) => byField[f]).join(',')}\n`,
  );
});
