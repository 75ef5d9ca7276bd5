/**
 * The audit trail's hash chain. Each organization's entries form one chain ordered by `seq` (1, 2, ...):
 * `hash = sha256_hex(prevHash + "\n" + canonical(entry))`, with the first entry's prevHash the genesis
 * value. Altering any stored field of an entry changes its hash; removing an entry leaves a gap in `seq`
 * and a `prevHash` that no longer matches; removing entries at the end leaves the chain head ahead of the
 * last entry. Canonical form: JSON with object keys sorted at every depth and `createdAt` in ms, so the
 * hash survives jsonb's own key reordering.
 */
import type { CHAINED_FIELDS, AuditEntry } from './entry.ts';
import {
  GENESIS_HASH as SHARED_GENESIS,
  canonicalJson as sharedCanonicalJson,
  chainHashOf as sharedChainHashOf,
} from './chain-batch.mjs';

export const GENESIS_HASH: string = SHARED_GENESIS;

/** The hashed content of one entry: every stored field except `id` and the chain fields themselves. */
export type ChainedContent = Pick<AuditEntry, (typeof CHAINED_FIELDS)[number]>;

/** JSON with sorted object keys at every depth; `undefined` members are left out, as JSON does. */
export const canonicalJson: (value: unknown) => string = sharedCanonicalJson;

export function chainHash(prevHash: string, content: ChainedContent): string {
  return chainHashOf(prevHash, content, content.seq, canonicalJsonOrUndefined(content.detail));
}

/**
 * chainHash of `content` at `seq`, with its detail's canonicalJson already made (`detailJson`; undefined:
 * no detail): the writer makes that text once per entry and stores it too. Fields of `content` that are not
 * hashed (an entry's `id`, `hash`, ...) are ignored. The implementation is src/audit/chain-batch.mjs's,
 * which the embedded engine's thread runs too.
 */
export const chainHashOf: (
  prevHash: string,
  content: Omit<ChainedContent, 'seq' | 'detail'>,
  seq: number,
  detailJson: string | undefined,
) => string = sharedChainHashOf;

/** canonicalJson, or undefined for undefined (a member left out). */
export function canonicalJsonOrUndefined(value: unknown): string | undefined {
  return value === undefined ? undefined : canonicalJson(value);
}
