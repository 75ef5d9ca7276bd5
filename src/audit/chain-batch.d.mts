/** Types of chain-batch.mjs (plain JavaScript, so that the embedded engine's thread loads it as is). */

/** An entry as queued: everything but its place in the chain (PendingAuditEntry). */
export interface PendingEntry {
  readonly id: string;
  readonly orgId: string;
  readonly actor: string;
  readonly action: string;
  readonly target: string | null;
  readonly detail: unknown;
  readonly remoteAddress: string | null;
  readonly userAgent: string | null;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
}

/** The statements of one transaction: rows as objects by column name; COPY of CSV where the engine has it. */
export interface ChainTx {
  query(sql: string, params?: readonly unknown[]): Promise<Array<Record<string, unknown>>>;
  readonly copyCsv?: ((copySql: string, csv: string) => Promise<void>) | undefined;
}

export const GENESIS_HASH: string;
export const AUDIT_COLUMN_TYPES: {
  readonly id: 'text';
  readonly orgId: 'text';
  readonly seq: 'int';
  readonly prevHash: 'text';
  readonly hash: 'text';
  readonly actor: 'text';
  readonly action: 'text';
  readonly target: 'text';
  readonly detail: 'jsonb';
  readonly remoteAddress: 'text';
  readonly userAgent: 'text';
  readonly createdAt: 'timestamp(3)';
};
export const COLUMN_FIELDS: readonly string[];
export const HASHED_FIELDS: readonly string[];
export function canonicalJson(value: unknown): string;
export function chainHashOf(
  prevHash: string,
  content: object,
  seq: number,
  detailJson: string | undefined,
): string;
export function appendAuditBatch(
  tx: ChainTx,
  batch: readonly PendingEntry[],
  replay: boolean,
): Promise<number>;
export function csvLine(
  e: PendingEntry,
  seq: number,
  prevHash: string,
  hash: string,
  detailJson: string,
): string;
