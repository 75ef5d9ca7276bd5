/** Values headed for PostgreSQL jsonb and text columns. */
import type { Prisma } from '../generated/prisma/client.ts';

/**
 * PostgreSQL text and jsonb reject NUL, and a lone UTF-16 surrogate cannot be stored as UTF-8 (it would be
 * stored as U+FFFD, unlike what was hashed into the audit chain): both become U+FFFD here, before hashing.
 */
export function pgSafeText(s: string): string {
  const str = s as unknown as { isWellFormed(): boolean; toWellFormed(): string };
  const wellFormed = str.isWellFormed() ? s : str.toWellFormed();
  return wellFormed.includes('\u0000') ? wellFormed.replaceAll('\u0000', '\uFFFD') : wellFormed;
}

/** A JSON-safe copy: drops undefined members, turns NUL into U+FFFD, non-JSON values into what JSON makes. */
export function toJsonValue(value: unknown): Prisma.InputJsonValue {
  // Plain data (what the hooks and most payloads hold) is copied directly; anything else (toJSON, class
  // instances, BigInt, cycles, very deep values) goes through JSON itself. Same result either way; the
  // direct copy saves a serialization and a parse per audit entry and record.
  const copied = plainCopy(value, 0);
  if (copied !== NOT_PLAIN) return (copied === undefined ? null : copied) as Prisma.InputJsonValue;
  const text = JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === 'string' ? pgSafeText(v) : v));
  return JSON.parse(text ?? 'null') as Prisma.InputJsonValue;
}

const NOT_PLAIN: unique symbol = Symbol('not plain');
/** Deeper than this, JSON itself decides (and reports a cycle as JSON does). */
const MAX_PLAIN_DEPTH = 64;

/**
 * What JSON.parse(JSON.stringify(value)) makes of plain data, strings made pgSafe; undefined for what JSON
 * leaves out (undefined, functions, symbols); NOT_PLAIN as soon as anything needs JSON's own rules.
 */
function plainCopy(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
      return pgSafeText(value);
    case 'number':
      // JSON writes NaN and ±Infinity as null, and -0 as 0.
      return Number.isFinite(value) ? value + 0 : null;
    case 'boolean':
      return value;
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    case 'bigint':
      return NOT_PLAIN;
  }
  if (value === null) return null;
  if (depth >= MAX_PLAIN_DEPTH) return NOT_PLAIN;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return NOT_PLAIN;
    const out: unknown[] = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const v = plainCopy(value[i], depth + 1);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      out[i] = v === undefined ? null : v;
    }
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if ((proto !== Object.prototype && proto !== null) || 'toJSON' in (value as object)) return NOT_PLAIN;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value as object)) {
    if (key === '__proto__') return NOT_PLAIN;
    const v = plainCopy((value as Record<string, unknown>)[key], depth + 1);
    if (v === NOT_PLAIN) return NOT_PLAIN;
    if (v !== undefined) out[key] = v;
  }
  return out;
}
