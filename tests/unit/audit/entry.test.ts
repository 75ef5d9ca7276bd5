/** The audit entry's fields are defined once (src/audit/entry.ts): the chain and the table derive from them. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { AUDIT_ENTRY_FIELDS, CHAINED_FIELDS } from '../../../src/audit/entry.ts';
import { GENESIS_HASH, canonicalJson, chainHash } from '../../../src/audit/hash-chain.ts';
import { createHash } from 'node:crypto';

it('the hash covers every stored field but id and the chain fields, in sorted order', () => {
  assert.deepEqual(
    [...CHAINED_FIELDS],
    ['action', 'actor', 'createdAt', 'detail', 'orgId', 'remoteAddress', 'seq', 'target', 'userAgent'],
  );
  assert.deepEqual([...AUDIT_ENTRY_FIELDS].sort(), [...CHAINED_FIELDS, 'hash', 'id', 'prevHash'].sort());
});

it('chainHash ignores fields it does not cover (a whole stored entry can be passed)', () => {
  const content = {
    orgId: 'acme',
    seq: 3,
    actor: 'alice',
    action: 'auth.failed',
    target: null,
    detail: { z: 1, a: [2] },
    remoteAddress: '127.0.0.1',
    userAgent: null,
    createdAt: 1_700_000_000_000,
  };
  const expected = createHash('sha256')
    .update(GENESIS_HASH)
    .update('\n')
    .update(canonicalJson(content))
    .digest('hex');
  assert.equal(chainHash(GENESIS_HASH, content), expected);
  assert.equal(
    chainHash(GENESIS_HASH, { ...content, id: 'x', prevHash: 'p', hash: 'h' } as typeof content),
    expected,
  );
});
