/**
 * The audit entry, defined once: its fields (the columns of the `AuditLog` table, with their SQL types)
 * and which of them the hash chain covers. The logger's queue, its inserts, the hash chain, the
 * verifier and the query API all derive from these.
 */
import { AUDIT_COLUMN_TYPES } from './chain-batch.mjs';

/**
 * Every field of a stored entry, in column order, with its type in the batch insert. Defined in
 * chain-batch.mjs, which the embedded engine's thread loads as plain JavaScript.
 */
export const AUDIT_ENTRY_COLUMNS = AUDIT_COLUMN_TYPES;

export type AuditEntryField = keyof typeof AUDIT_ENTRY_COLUMNS;
export const AUDIT_ENTRY_FIELDS = Object.keys(AUDIT_ENTRY_COLUMNS) as AuditEntryField[];

/**
 * One stored entry. `T`: how `createdAt` is held — milliseconds since epoch in the logger and the chain
 * (the column has millisecond precision), an ISO string in the API's view.
 */
export interface AuditEntry<T = number> {
  readonly id: string;
  readonly orgId: string;
  /** Its place in the organization's chain (1, 2, ...). */
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
  /** Who: a user id, `apikey:<keyId>`, `anonymous`, or an operator. */
  readonly actor: string;
  /** What: `connection.accepted`, `auth.failed`, `admin.suspend`, ... (`<area>.<verb>`). */
  readonly action: string;
  /** On what: a channel, session, key id, ... */
  readonly target: string | null;
  readonly detail: unknown;
  /** From where. */
  readonly remoteAddress: string | null;
  readonly userAgent: string | null;
  readonly createdAt: T;
}

/** The fields of an entry's place in its chain, set when it is written. */
export const CHAIN_FIELDS = ['seq', 'prevHash', 'hash'] as const satisfies readonly AuditEntryField[];

/**
 * The fields the hash covers: every stored field except `id` and the chain's own `prevHash` and `hash`,
 * in sorted order (the canonical form's key order).
 */
export const CHAINED_FIELDS = AUDIT_ENTRY_FIELDS.filter(
  (f): f is Exclude<AuditEntryField, 'id' | 'prevHash' | 'hash'> =>
    f !== 'id' && f !== 'prevHash' && f !== 'hash',
).sort();
