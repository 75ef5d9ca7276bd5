/**
 * Reading the audit trail: `queryAudit` serves `GET /v1/audit?since=&type=&limit=` and `apix audit tail`.
 * Results are one organization's entries in chain order (oldest first); `nextAfterSeq` continues a tail.
 */
import { z } from 'zod';
import type { PrismaClient } from '../store/database.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import type { AuditEntry } from './entry.ts';

export interface AuditQuery {
  readonly orgId: string;
  /** Entries created at or after this instant (ms since epoch or a Date). */
  readonly since?: number | Date | undefined;
  /** Entries after this chain position (for tailing and paging). */
  readonly afterSeq?: number | undefined;
  /** An exact action (`auth.failed`) or an area (`connection` matches `connection.*`). */
  readonly type?: string | undefined;
  /** 1..1000, default 100. */
  readonly limit?: number | undefined;
}

/** An entry as the API returns it: `createdAt` as an ISO string. */
export type AuditEntryView = AuditEntry<string>;

export interface AuditPage {
  readonly entries: AuditEntryView[];
  /** Pass as `afterSeq` to read what follows (the last entry's seq, or the input's when empty). */
  readonly nextAfterSeq: number;
}

export const AUDIT_MAX_LIMIT = 1_000;

export async function queryAudit(prisma: PrismaClient, query: AuditQuery): Promise<AuditPage> {
  const limit = Math.min(Math.max(1, Math.trunc(query.limit ?? 100)), AUDIT_MAX_LIMIT);
  const where: Prisma.AuditLogWhereInput = { orgId: query.orgId };
  if (query.afterSeq !== undefined) where.seq = { gt: query.afterSeq };
  if (query.since !== undefined) where.createdAt = { gte: new Date(query.since) };
  if (query.type) where.OR = [{ action: query.type }, { action: { startsWith: `${query.type}.` } }];
  const rows = await prisma.auditLog.findMany({ where, orderBy: { seq: 'asc' }, take: limit });
  const entries = rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() }));
  return { entries, nextAfterSeq: rows.at(-1)?.seq ?? query.afterSeq ?? 0 };
}

const MAX_DATE_MS = 8.64e15;
const MAX_SEQ = 2 ** 31 - 1;

const QuerySchema = z.object({
  since: z
    .string()
    .transform((s, ctx) => {
      const ms = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
      // A Date holds at most 8.64e15 ms either side of the epoch; beyond it the query cannot be built.
      if (!Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS) {
        ctx.addIssue({ code: 'custom', message: 'since must be an ISO date or milliseconds since epoch' });
        return z.NEVER;
      }
      return ms;
    })
    .optional(),
  type: z
    .string()
    .regex(/^[a-z][a-z0-9_.]{0,63}$/, 'type must be an action like auth.failed or an area like connection')
    .optional(),
  limit: z.coerce.number().int().min(1).max(AUDIT_MAX_LIMIT).optional(),
  // `seq` is a 32-bit integer column: a larger value is not a position of any chain.
  afterSeq: z.coerce.number().int().min(0).max(MAX_SEQ).optional(),
});

/** Parses `GET /v1/audit` query parameters; on failure, a one-line message for a BAD_REQUEST. */
export function parseAuditQuery(
  orgId: string,
  params: URLSearchParams,
): { ok: true; query: AuditQuery } | { ok: false; message: string } {
  const raw: Record<string, string> = {};
  for (const key of ['since', 'type', 'limit', 'afterSeq']) {
    const v = params.get(key);
    if (v !== null && v !== '') raw[key] = v;
  }
  const r = QuerySchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    return { ok: false, message: `${String(issue.path[0] ?? 'query')}: ${issue.message}` };
  }
  return { ok: true, query: { orgId, ...r.data } };
}
