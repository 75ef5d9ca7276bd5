/** The MessagePack codec shared by the gateway and the SDK: binary values to and from their JSON form. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encode, ExtData } from '@msgpack/msgpack';
import {
  binaryToJson,
  decodeMsgpack,
  msgpackFromJson,
  reviveBinary,
} from '../../../packages/protocol/src/msgpack.ts';

const BYTES = Uint8Array.from([0, 1, 254, 255]);

describe('MessagePack codec', () => {
  it('binary values become {"$binary": base64} and come back as bytes', () => {
    const json = binaryToJson({ a: BYTES, list: [1, { b: BYTES }], s: 'x' });
    assert.deepEqual(json, { a: { $binary: 'AAH+/w==' }, list: [1, { b: { $binary: 'AAH+/w==' } }], s: 'x' });
    const back = decodeMsgpack(msgpackFromJson(JSON.stringify(json))) as {
      a: Uint8Array;
      list: [1, { b: Uint8Array }];
    };
    assert.deepEqual([...back.a], [...BYTES]);
    assert.deepEqual([...back.list[1].b], [...BYTES]);
  });

  it('only an object whose sole member is a base64 $binary is revived', () => {
    const text = '{"x":{"$binary":"AAH+/w==","other":1},"y":{"$binary":5}}';
    assert.deepEqual(JSON.parse(text, reviveBinary), JSON.parse(text));
  });

  it('refuses extension types and too deep nesting', () => {
    assert.throws(() => binaryToJson(decodeMsgpack(encode(new ExtData(7, BYTES)))), /extension type 7/);
    let deep: unknown = 1;
    for (let i = 0; i < 300; i++) deep = [deep];
    assert.throws(() => binaryToJson(deep), /nested deeper/);
  });

  it('throws on bytes that are not MessagePack', () => {
    assert.throws(() => decodeMsgpack(Uint8Array.from([0xc1])));
  });
});
