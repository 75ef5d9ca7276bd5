/**
 * One batch of audit entries appended to their organizations' hash chains, in one transaction: the chain
 * heads locked, each entry's seq, prevHash and hash computed, the rows stored, the heads moved. The one
 * implementation, run by the gateway's thread on PostgreSQL (src/audit/audit-logger.ts) and by the
 * embedded engine's own thread on PGlite (src/store/pglite-worker.mjs): there, the hashing, the CSV of the
 * COPY and the statements all run beside the event loop, which only hands the batch over.
 *
 * Plain JavaScript, so that the engine's worker thread loads it without a TypeScript loader; typed by
 * chain-batch.d.mts. The canonical form and the field lists are the ones of src/audit/entry.ts and
 * src/audit/hash-chain.ts (tests/unit/audit/chain-batch.test.ts holds them equal).
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

/**
 * The columns of "AuditLog", in order, with their types in the batch insert: the one definition
 * (src/audit/entry.ts's AUDIT_ENTRY_COLUMNS is this object).
 */
export const AUDIT_COLUMN_TYPES = Object.freeze({
  id: 'text',
  orgId: 'text',
  seq: 'int',
  prevHash: 'text',
  hash: 'text',
  actor: 'text',
  action: 'text',
  target: 'text',
  detail: 'jsonb',
  remoteAddress: 'text',
  userAgent: 'text',
  createdAt: 'timestamp(3)',
});

/** The columns of "AuditLog", in order (AUDIT_ENTRY_FIELDS). */
export const COLUMN_FIELDS = Object.keys(AUDIT_COLUMN_TYPES);

/** The hashed fields, sorted (CHAINED_FIELDS): every stored field but id, prevHash and hash. */
export const HASHED_FIELDS = COLUMN_FIELDS.filter(
  (f) => f !== 'id' && f !== 'prevHash' && f !== 'hash',
).sort();

/** `"name":` of each hashed field, in the canonical (sorted) order. */
const HASHED_KEYS = HASHED_FIELDS.map((f) => [f, `${JSON.stringify(f)}:`]);

/**
 * JSON with sorted object keys at every depth; `undefined` members are left out, as JSON does.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalJson(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const obj = /** @type {Record<string, unknown>} */ (value);
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/**
 * The hash of `content` at `seq` after `prevHash`, its detail's canonical JSON already made (`detailJson`;
 * undefined: no detail). The canonical JSON of the hashed fields is written out in their sorted order: the
 * same bytes as canonicalJson({orgId, seq, ...}) without sorting nine keys per entry.
 * @param {string} prevHash
 * @param {Record<string, unknown>} content
 * @param {number} seq
 * @param {string | undefined} detailJson
 * @returns {string}
 */
export function chainHashOf(prevHash, content, seq, detailJson) {
  let canonical = '{';
  for (const [field, key] of HASHED_KEYS) {
    let text;
    if (field === 'seq') text = seq === undefined ? undefined : canonicalJson(seq);
    else if (field === 'detail') text = detailJson;
    else text = content[field] === undefined ? undefined : canonicalJson(content[field]);
    if (text === undefined) continue;
    if (canonical.length > 1) canonical += ',';
    canonical += key + text;
  }
  canonical += '}';
  return createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex');
}

/** @typedef {import('./chain-batch.d.mts').ChainTx} ChainTx */
/** @typedef {import('./chain-batch.d.mts').PendingEntry} PendingEntry */

const COLUMNS = COLUMN_FIELDS.map((f) => `"${f}"`).join(', ');
const RECORD_COLUMNS = Object.entries(AUDIT_COLUMN_TYPES)
  .map(([f, type]) => `"${f}" ${type}`)
  .join(', ');
const SELECTED = COLUMN_FIELDS.map((f) => `r."${f}"`).join(', ');
const IN_JSON_ARRAY = `IN (SELECT jsonb_array_elements_text($1::jsonb))`;

/**
 * Appends `batch` to the chains inside the transaction `tx`; resolves how many rows it stored. In a replay
 * of the spill file, entries already stored (the write that failed may have committed) are skipped; entries
 * from the memory queue have never been written, so they skip that look-up. Row locks on the chain heads,
 * in a fixed (sorted) order: writers on other nodes sharing the database queue, never deadlock.
 * @param {ChainTx} tx
 * @param {readonly PendingEntry[]} batch
 * @param {boolean} replay
 * @returns {Promise<number>}
 */
export async function appendAuditBatch(tx, batch, replay) {
  let fresh = batch;
  if (replay) {
    const existing = await tx.query(`SELECT "id" FROM "AuditLog" WHERE "id" ${IN_JSON_ARRAY}`, [
      JSON.stringify(batch.map((e) => e.id)),
    ]);
    const stored = new Set(existing.map((r) => String(r.id)));
    fresh = batch.filter((e) => !stored.has(e.id));
  }
  if (fresh.length === 0) return 0;
  const orgIds = [...new Set(fresh.map((e) => e.orgId))].sort();
  const head = await lockHeads(tx, orgIds);
  let csv = '';
  /** @type {object[]} */
  const rows = [];
  for (const e of fresh) {
    const h = head.get(e.orgId) ?? { seq: 0, hash: GENESIS_HASH };
    const seq = h.seq + 1;
    // Made once: hashed, and stored as is (jsonb takes any key order).
    const detailJson = canonicalJson(e.detail);
    const hash = chainHashOf(h.hash, e, seq, detailJson);
    head.set(e.orgId, { seq, hash });
    if (tx.copyCsv) csv += csvLine(e, seq, h.hash, hash, detailJson);
    else rows.push({ ...e, seq, prevHash: h.hash, hash, createdAt: new Date(e.createdAt).toISOString() });
  }
  // The rows in one statement: COPY of CSV where the engine has it (PGlite), else INSERT from one jsonb.
  if (tx.copyCsv) await tx.copyCsv(`COPY "AuditLog" (${COLUMNS}) FROM '/dev/blob' WITH (FORMAT csv)`, csv);
  else
    await tx.query(
      `INSERT INTO "AuditLog" (${COLUMNS})
       SELECT ${SELECTED} FROM jsonb_to_recordset($1::jsonb) AS r(${RECORD_COLUMNS})`,
      [JSON.stringify(rows)],
    );
  await tx.query(
    `UPDATE "AuditChainHead" AS h SET "seq" = r."seq", "hash" = r."hash", "updatedAt" = now()
     FROM jsonb_to_recordset($1::jsonb) AS r("orgId" text, "seq" int, "hash" text) WHERE h."orgId" = r."orgId"`,
    [JSON.stringify(orgIds.map((orgId) => ({ orgId, ...head.get(orgId) })))],
  );
  return fresh.length;
}

/**
 * Creates the missing chain heads and locks them; the heads by organization. A head at 0 over a non-empty
 * chain means the head row was lost: the chain continues from its last entry.
 * @param {ChainTx} tx
 * @param {string[]} orgIds
 * @returns {Promise<Map<string, { seq: number, hash: string }>>}
 */
async function lockHeads(tx, orgIds) {
  const orgsJson = JSON.stringify(orgIds);
  await tx.query(
    `INSERT INTO "AuditChainHead" ("orgId", "seq", "hash", "updatedAt")
     SELECT o, 0, '${GENESIS_HASH}', now() FROM jsonb_array_elements_text($1::jsonb) AS o
     ON CONFLICT ("orgId") DO NOTHING`,
    [orgsJson],
  );
  const heads = await tx.query(
    `SELECT "orgId", "seq", "hash" FROM "AuditChainHead"
     WHERE "orgId" ${IN_JSON_ARRAY} ORDER BY "orgId" FOR UPDATE`,
    [orgsJson],
  );
  const head = new Map(heads.map((h) => [String(h.orgId), { seq: Number(h.seq), hash: String(h.hash) }]));
  const unanchored = heads.filter((h) => Number(h.seq) === 0).map((h) => String(h.orgId));
  if (unanchored.length) {
    const tails = await tx.query(
      `SELECT DISTINCT ON ("orgId") "orgId", "seq", "hash" FROM "AuditLog"
       WHERE "orgId" ${IN_JSON_ARRAY} ORDER BY "orgId", "seq" DESC`,
      [JSON.stringify(unanchored)],
    );
    for (const t of tails) head.set(String(t.orgId), { seq: Number(t.seq), hash: String(t.hash) });
  }
  return head;
}

/**
 * One row of the COPY, its fields in column order.
 * @param {PendingEntry} e
 * @param {number} seq
 * @param {string} prevHash
 * @param {string} hash
 * @param {string} detailJson
 */
export function csvLine(e, seq, prevHash, hash, detailJson) {
  return (
    `${csvText(e.id)},${csvText(e.orgId)},${seq},${csvText(prevHash)},${csvText(hash)},` +
    `${csvText(e.actor)},${csvText(e.action)},${csvText(e.target)},${csvText(detailJson)},` +
    `${csvText(e.remoteAddress)},${csvText(e.userAgent)},${new Date(e.createdAt).toISOString()}\n`
  );
}

/**
 * A CSV field: NULL unquoted and empty, any text quoted (so "" is the empty string, not NULL).
 * @param {string | null} s
 */
function csvText(s) {
  if (s === null) return '';
  return `"${s.includes('"') ? s.replaceAll('"', '""') : s}"`;
}
