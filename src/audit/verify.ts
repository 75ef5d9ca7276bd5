/**
 * Verifies an organization's audit chain (src/audit/hash-chain.ts): walks every entry in `seq` order and
 * reports each entry whose content no longer matches its hash (altered), each gap in `seq` (removed),
 * each `prevHash` that is not the previous entry's hash (removed or re-linked), and a chain head ahead of
 * the last entry (entries removed from the end). A chain rewritten from the start by someone with write
 * access is consistent again: compare `headHash` with a copy kept elsewhere to catch that.
 */
import type { PrismaClient } from '../store/database.ts';
import { GENESIS_HASH, chainHash } from './hash-chain.ts';

export type AuditProblemKind = 'altered' | 'missing' | 'relinked' | 'truncated' | 'head-mismatch';

export interface AuditProblem {
  readonly kind: AuditProblemKind;
  /** The entry concerned (for `missing`: the first absent seq). */
  readonly seq: number;
  readonly message: string;
}

export interface AuditVerification {
  readonly orgId: string;
  readonly ok: boolean;
  /** Entries read. */
  readonly checked: number;
  readonly lastSeq: number;
  /** The chain head: its seq and hash (the value to anchor outside the database). */
  readonly headSeq: number;
  readonly headHash: string;
  /** The first 100 problems, in chain order. */
  readonly problems: readonly AuditProblem[];
}

export interface VerifyOptions {
  readonly pageSize?: number;
  /** Called after each page with the entries checked so far. */
  readonly onProgress?: (checked: number) => void;
}

const MAX_PROBLEMS = 100;

export async function verifyAuditChain(
  prisma: PrismaClient,
  orgId: string,
  options: VerifyOptions = {},
): Promise<AuditVerification> {
  const pageSize = options.pageSize ?? 1_000;
  const problems: AuditProblem[] = [];
  const report = (p: AuditProblem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let checked = 0;
  for (;;) {
    const page = await prisma.auditLog.findMany({
      where: { orgId, seq: { gte: expectedSeq } },
      orderBy: { seq: 'asc' },
      take: pageSize,
    });
    for (const row of page) {
      if (row.seq !== expectedSeq)
        report({
          kind: 'missing',
          seq: expectedSeq,
          message:
            row.seq === expectedSeq + 1
              ? `entry ${expectedSeq} is missing`
              : `entries ${expectedSeq}..${row.seq - 1} are missing`,
        });
      else if (row.prevHash !== prevHash)
        report({
          kind: 'relinked',
          seq: row.seq,
          message: `entry ${row.seq} does not follow entry ${row.seq - 1}`,
        });
      const recomputed = chainHash(row.prevHash, {
        ...row,
        createdAt: row.createdAt.getTime(),
      });
      if (recomputed !== row.hash)
        report({
          kind: 'altered',
          seq: row.seq,
          message: `entry ${row.seq} was altered (its hash does not match)`,
        });
      prevHash = row.hash;
      expectedSeq = row.seq + 1;
      checked++;
    }
    options.onProgress?.(checked);
    if (page.length < pageSize) break;
  }
  const lastSeq = expectedSeq - 1;
  const head = await prisma.auditChainHead.findUnique({ where: { orgId } });
  const headSeq = head?.seq ?? 0;
  const headHash = head?.hash ?? GENESIS_HASH;
  if (headSeq > lastSeq)
    report({
      kind: 'truncated',
      seq: lastSeq + 1,
      message: `entries ${lastSeq + 1}..${headSeq} were removed from the end of the chain`,
    });
  else if (headSeq === lastSeq && headHash !== prevHash)
    report({
      kind: 'head-mismatch',
      seq: lastSeq,
      message: `the chain head does not match entry ${lastSeq}`,
    });
  return { orgId, ok: problems.length === 0, checked, lastSeq, headSeq, headHash, problems };
}
