import { it } from 'node:test';
import assert from 'node:assert/strict';
import { pgSafeText, toJsonValue } from '../../../src/store/json.ts';

/** What toJsonValue promises: JSON's own copy, with strings made safe for PostgreSQL. */
function viaJson(value: unknown): unknown {
  const text = JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === 'string' ? pgSafeText(v) : v));
  return JSON.parse(text ?? 'null');
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

const samples: Array<[string, unknown]> = [
  ['a plain detail', { connectionId: 'c-1', resumed: false, roles: ['member'], origin: null, openedAt: 17 }],
  ['undefined members and holes', { a: undefined, b: [undefined, () => 1, Symbol('s')], c: () => 1 }],
  ['numbers JSON cannot write', { nan: NaN, inf: -Infinity, negZero: -0, big: 1e300 }],
  ['NUL and lone surrogates', { s: 'a\u0000b', t: '\ud800x', nested: [{ u: '\u0000' }] }],
  ['integer keys first', { b: 1, 2: 'two', a: 3, 1: 'one' }],
  ['a Date (toJSON)', { at: new Date(0) }],
  ['a class instance', { p: new Point(1, 2) }],
  ['a null-prototype object', Object.assign(Object.create(null) as object, { k: 'v' })],
  ['an own __proto__ key', JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as unknown],
  ['top-level undefined', undefined],
  ['top-level function', () => 1],
  ['top-level string', 'x\u0000'],
  ['deep nesting', JSON.parse(`${'['.repeat(100)}1${']'.repeat(100)}`) as unknown],
];

for (const [name, value] of samples)
  it(`toJsonValue copies ${name} as JSON does`, () => {
    const copy = toJsonValue(value);
    assert.deepEqual(copy, viaJson(value));
    // The same text too: key order and -0 included.
    assert.equal(JSON.stringify(copy), JSON.stringify(viaJson(value)));
  });

it('toJsonValue fails on a cycle and on BigInt, as JSON does', () => {
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.throws(() => toJsonValue(cycle), TypeError);
  assert.throws(() => toJsonValue({ n: 1n }), TypeError);
});

it('toJsonValue returns a copy, not the input', () => {
  const input = { a: { b: 1 } };
  const copy = toJsonValue(input) as { a: { b: number } };
  assert.notEqual(copy.a, input.a);
});
