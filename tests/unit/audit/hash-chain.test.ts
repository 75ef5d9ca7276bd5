import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  GENESIS_HASH,
  canonicalJson,
  chainHash,
  type ChainedContent,
} from '../../../src/audit/hash-chain.ts';

const content: ChainedContent = {
  orgId: 'acme',
  seq: 1,
  actor: 'alice',
  action: 'auth.failed',
  target: null,
  detail: { b: [1, { z: 1, a: 2 }], a: 'x' },
  remoteAddress: '::1',
  userAgent: null,
  createdAt: 1_700_000_000_123,
};

test('canonical JSON sorts keys at every depth and drops undefined members', () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: undefined } }),
    '{"a":{"d":[3,{"x":2,"y":1}]},"b":1}',
  );
  assert.equal(canonicalJson([undefined, null, 'é']), '[null,null,"é"]');
  assert.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }));
});

test('the hash depends on every field and on the previous hash, not on key order', () => {
  const h = chainHash(GENESIS_HASH, content);
  assert.match(h, /^[0-9a-f]{64}$/);
  assert.equal(chainHash(GENESIS_HASH, { ...content, detail: { a: 'x', b: [1, { a: 2, z: 1 }] } }), h);
  assert.notEqual(chainHash('1'.repeat(64), content), h);
  const changes: Partial<ChainedContent>[] = [
    { orgId: 'globex' },
    { seq: 2 },
    { actor: 'mallory' },
    { action: 'auth.ok' },
    { target: 'x' },
    { detail: { a: 'y', b: [1, { z: 1, a: 2 }] } },
    { remoteAddress: '::2' },
    { userAgent: 'curl' },
    { createdAt: content.createdAt + 1 },
  ];
  for (const change of changes)
    assert.notEqual(chainHash(GENESIS_HASH, { ...content, ...change }), h, JSON.stringify(change));
});

test('the hash is sha256(prevHash, "\\n", canonicalJson of the entry): pinned, so stored chains stay verifiable', () => {
  assert.equal(
    chainHash(GENESIS_HASH, content),
    '66fe0ac0b7b645e0e40d5c3989cbf33b9fc957b08dc2ec99feec77b4b059662f',
  );
  const samples: ChainedContent[] = [
    content,
    { ...content, target: 'agent:bot', userAgent: 'Mozilla/5.0 "quoted" \u2028', detail: {} },
    { ...content, remoteAddress: null, detail: [1, 'two', null, { b: true, a: -0.5 }], seq: 2 ** 31 - 1 },
    { ...content, actor: 'é\u0000', action: 'x'.repeat(1024), detail: 'a string detail' },
    { ...content, detail: undefined, target: undefined as unknown as null },
    { ...content, seq: Number.NaN, createdAt: Number.POSITIVE_INFINITY },
  ];
  for (const c of samples) {
    const reference = createHash('sha256')
      .update(GENESIS_HASH)
      .update('\n')
      .update(canonicalJson({ ...c }))
      .digest('hex');
    assert.equal(chainHash(GENESIS_HASH, c), reference, JSON.stringify(c));
  }
});
