/**
 * docs/asyncapi.json is generated from the Zod contracts (scripts/gen-asyncapi.ts). This test regenerates it
 * in memory: a schema change without `node --import tsx scripts/gen-asyncapi.ts` fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ASYNCAPI_PATH, buildAsyncApi, FRAMES, renderAsyncApi } from '../../../scripts/gen-asyncapi.ts';
import { CLIENT_CONTROL_SCHEMAS, ServerControlFrameSchema } from '@apix/protocol/schemas';

describe('AsyncAPI document', () => {
  it('is identical to what the generator produces from the Zod contracts', () => {
    const committed = readFileSync(ASYNCAPI_PATH, 'utf8');
    assert.ok(
      committed === renderAsyncApi(),
      'docs/asyncapi.json is stale: run `node --import tsx scripts/gen-asyncapi.ts` and commit it',
    );
  });

  it('has an example for every message, valid against the frame schema', () => {
    for (const frame of FRAMES) {
      const r = frame.schema.safeParse(frame.example);
      assert.ok(r.success, `${frame.key}: ${r.success ? '' : r.error.message}`);
    }
  });

  it('covers every client control frame and every server control frame', () => {
    const wireTypes = (direction: 'client' | 'server') =>
      new Set(
        FRAMES.filter((f) => f.direction === direction).map((f) => (f.example as { type: string }).type),
      );
    for (const type of Object.keys(CLIENT_CONTROL_SCHEMAS)) assert.ok(wireTypes('client').has(type), type);
    for (const option of ServerControlFrameSchema.options) {
      const type = option.shape.type.value;
      assert.ok(wireTypes('server').has(type), type);
    }
  });

  it('is AsyncAPI 3.0 with every $ref resolving inside the document', () => {
    const doc = buildAsyncApi();
    assert.equal(doc.asyncapi, '3.0.0');
    const resolve = (ref: string): unknown =>
      ref
        .slice(2)
        .split('/')
        .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], doc);
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (node === null || typeof node !== 'object') return;
      for (const [key, value] of Object.entries(node)) {
        if (key === '$ref' && typeof value === 'string') assert.notEqual(resolve(value), undefined, value);
        else walk(value);
      }
    };
    walk(doc);
    const operations = doc.operations as Record<string, { action: string }>;
    assert.ok(Object.values(operations).every((o) => o.action === 'send' || o.action === 'receive'));
  });
});
