import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

describe('native addons', () => {
  it('bufferutil loads its native build (ws uses it to mask and unmask frames)', () => {
    const bufferutil = require('bufferutil') as { mask: (...a: unknown[]) => void };
    assert.match(String(bufferutil.mask), /\[native code\]/, 'bufferutil fell back to JavaScript');
    const path = require.resolve('bufferutil');
    assert.ok(path.includes('node_modules/bufferutil'));
  });
});
