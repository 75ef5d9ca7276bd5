/**
 * The audit trail's hash chain. Each organization's entries form one chain ordered by `seq` (1, 2, ...):
 * `hash = sha256_hex(prevHash + "\n" + canonical(entry))`, with the first entry's prevHash the genesis
 * value. Altering any stored field of an entry changes its hash; removing an entry leaves a gap in `seq`
 * and a `prevHash` that no longer matches; removing entries at the end leaves the chain head ahead of the
 * last entry. Canonical form: JSON with object keys sorted at every depth and `createdAt` in ms, so the
 * hash survives jsonb's own key reordering.
 */
import { createHash } from 'node:crypto';
import { CHAINED_FIELDS, type AuditEntry } from './entry.ts';

export const GENESIS_HASH = '0'.repeat(64);

/** The hashed content of one entry: every stored field except `id` and the chain fields themselves. */
export type ChainedContent = Pick<AuditEntry, (typeof CHAINED_FIELDS)[number]>;

/** `"name":` of each hashed field, in the canonical (sorted) order. */
const CHAINED_KEYS = CHAINED_FIELDS.map((f) => [f, `${JSON.stringify(f)}:`] as const);

/** JSON with sorted object keys at every depth; `undefined` members are left out, as JSON does. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

export function chainHash(prevHash: string, content: ChainedContent): string {
  return chainHashOf(prevHash, content, content.seq, canonicalJsonOrUndefined(content.detail));
}

/**
 * chainHash of `content` at `seq`, with its detail's canonicalJson already made (`detailJson`; undefined:
 * no detail): the writer makes that text once per entry and stores it too, instead of serializing the
 * detail twice and copying every entry to add its `seq`.
 */
export function chainHashOf(
  prevHash: string,
  content: Omit<ChainedContent, 'seq' | 'detail'>,
  seq: number,
  detailJson: string | undefined,
): string {
  // canonicalJson of the hashed fields, written out in their pre-sorted order: the same bytes as
  // canonicalJson({orgId, seq, ...}) (a unit test holds them equal) without sorting nine keys per entry,
  // which was a fifth of the audit writer's own CPU. Like canonicalJson, an undefined member is left out;
  // fields of `content` that are not hashed (an entry's `id`, `hash`, ...) are ignored.
  let canonical = '{';
  for (const [field, key] of CHAINED_KEYS) {
    let text: string | undefined;
    if (field === 'seq') text = canonicalJsonOrUndefined(seq);
    else if (field === 'detail') text = detailJson;
    else text = canonicalJsonOrUndefined(content[field]);
    if (text === undefined) continue;
    if (canonical.length > 1) canonical += ',';
    canonical += key + text;
  }
  canonical += '}';
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex');
}

/** canonicalJson, or undefined for undefined (a member left out). */
export function canonicalJsonOrUndefined(value: unknown): string | undefined {
  return value === undefined ? undefined : canonicalJson(value);
}
