import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

test('the committed Prisma client was generated from prisma/schema.prisma (run scripts/prisma-generate.sh)', () => {
  const schema = readFileSync(new URL('../../../prisma/schema.prisma', import.meta.url), 'utf8');
  const generated = readFileSync(
    new URL('../../../src/generated/prisma/internal/class.ts', import.meta.url),
    'utf8',
  );
  const m = /"inlineSchema": ("(?:[^"\\]|\\.)*")/.exec(generated);
  assert.ok(m, 'inlineSchema not found in the generated client');
  assert.equal(JSON.parse(m[1]!) as string, schema);
});
