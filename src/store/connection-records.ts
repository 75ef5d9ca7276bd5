/**
 * ApiXConnection rows: upserted on connect, status set on disconnect or suspension, `lastHeartbeat`
 * advanced in batches. A row is keyed like the gateway's sessions, by (organization, user, session id): a
 * session id is the client's own choice, so another organization's `tab-1` is another row. Guarantees:
 * calls are synchronous and O(1) (they only update a pending map keyed by session); one flush writes all pending changes in at most two statements, however many heartbeats
 * arrived; a change from a connection that has since been replaced by a newer one for the same session
 * (takeover, resume on another node) never overwrites the newer row. Pending sessions are bounded;
 * beyond the bound new sessions are counted in `dropped`, never queued without limit.
 */
import type { ConnectionInfo } from '../hooks.ts';
import type { ClientType, ConnectionStatus } from '@apix/protocol';
import type { ApiXConnection } from '../generated/prisma/client.ts';
import type { PrismaClient } from './database.ts';
import { createRowId } from './ids.ts';

/** The key under which the gateway's own facts are kept in `metadata` (a client cannot set it). */
export const GATEWAY_METADATA_KEY = '$apix';

/** Which row: the session's organization, user and client-chosen session id. */
export interface ConnectionRef {
  readonly orgId: string;
  readonly userId: string;
  readonly sessionId: string;
}

interface ConnectionRow {
  readonly clientType: ClientType;
  readonly metadata: Record<string, unknown>;
  readonly connectedAt: number;
}

interface PendingConnection {
  readonly ref: ConnectionRef;
  connectionId: string;
  row: ConnectionRow | undefined;
  status: ConnectionStatus | undefined;
  lastHeartbeat: number | undefined;
  channels: readonly string[] | undefined;
}

/** Runs one statement with its parameters (its rows are not needed). */
export type RawExecute = (sql: string, params: readonly unknown[]) => Promise<unknown>;

export interface ConnectionRecordsOptions {
  /** Sessions with unflushed changes beyond which new ones are dropped (and counted). */
  readonly maxPending?: number;
  /**
   * Runs the batch statements on the engine itself (the embedded PGlite's thread, a pool connection),
   * without Prisma: its query compiler and the copies of a batch's parameter cost the event loop about
   * 8 µs per connection record. Default: Prisma's $executeRawUnsafe.
   */
  readonly execute?: RawExecute | undefined;
  /** Rows per statement (default 500). */
  readonly maxRowsPerStatement?: number;
}

export class ConnectionRecords {
  private pending = new Map<string, PendingConnection>();
  private readonly maxPending: number;
  private readonly execute: RawExecute;
  private readonly maxRows: number;
  /** Changes refused because the pending map was full. */
  dropped = 0;

  constructor(
    private readonly prisma: PrismaClient,
    options: ConnectionRecordsOptions = {},
  ) {
    this.maxPending = options.maxPending ?? 200_000;
    this.execute =
      options.execute ?? ((sql, params) => this.prisma.$executeRawUnsafe(sql, ...(params as unknown[])));
    this.maxRows = options.maxRowsPerStatement ?? 500;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  connected(info: ConnectionInfo): void {
    const ref = { orgId: info.principal.orgId, userId: info.principal.userId, sessionId: info.sessionId };
    const entry = this.slot(ref, info.connectionId, true);
    if (!entry) return;
    entry.row = {
      clientType: info.clientType,
      metadata: {
        ...(info.metadata ?? {}),
        [GATEWAY_METADATA_KEY]: {
          connectionId: info.connectionId,
          authKind: info.principal.kind,
          remoteAddress: info.peer.remoteAddress ?? null,
          userAgent: info.peer.userAgent ?? null,
        },
      },
      connectedAt: info.connectedAt,
    };
    entry.status = info.status;
    entry.lastHeartbeat = info.connectedAt;
    entry.channels = info.channels;
  }

  heartbeat(ref: ConnectionRef, connectionId: string, at: number): void {
    const entry = this.slot(ref, connectionId, false);
    if (entry) entry.lastHeartbeat = Math.max(entry.lastHeartbeat ?? 0, at);
  }

  channelsChanged(ref: ConnectionRef, connectionId: string, channels: readonly string[]): void {
    const entry = this.slot(ref, connectionId, false);
    if (entry) entry.channels = channels;
  }

  statusChanged(
    ref: ConnectionRef,
    connectionId: string | undefined,
    status: ConnectionStatus,
    at: number,
  ): void {
    const entry = this.slot(ref, connectionId, false);
    if (!entry) return;
    entry.status = status;
    entry.lastHeartbeat = Math.max(entry.lastHeartbeat ?? 0, at);
  }

  /** Writes every pending change; on failure they are merged back (newer changes win) and it throws. */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.write(batch);
    } catch (err) {
      for (const [k, older] of batch) {
        const newer = this.pending.get(k);
        if (!newer) this.pending.set(k, older);
        else if (newer.connectionId === older.connectionId && !newer.row) {
          newer.row = older.row;
          newer.status ??= older.status;
          newer.channels ??= older.channels;
          newer.lastHeartbeat = Math.max(newer.lastHeartbeat ?? 0, older.lastHeartbeat ?? 0) || undefined;
        }
      }
      throw err;
    }
  }

  get(ref: ConnectionRef): Promise<ApiXConnection | null> {
    return this.prisma.apiXConnection.findUnique({
      where: {
        organizationId_userId_sessionId: {
          organizationId: ref.orgId,
          userId: ref.userId,
          sessionId: ref.sessionId,
        },
      },
    });
  }

  /** An organization's connection records, newest first (at most `limit`, default 1000). */
  listByOrganization(
    organizationId: string,
    status?: ConnectionStatus,
    limit = 1000,
  ): Promise<ApiXConnection[]> {
    return this.prisma.apiXConnection.findMany({
      where: { organizationId, ...(status ? { status } : {}) },
      orderBy: { connectedAt: 'desc' },
      take: limit,
    });
  }

  /**
   * The pending entry for a session, created if needed. A change from a connection other than the one
   * pending is a newer connection (it replaces the entry) unless the pending entry is a connect, which
   * only a newer connect replaces.
   */
  private slot(
    ref: ConnectionRef,
    connectionId: string | undefined,
    isConnect: boolean,
  ): PendingConnection | undefined {
    const k = refKey(ref);
    const existing = this.pending.get(k);
    if (existing && (connectionId === undefined || existing.connectionId === connectionId)) return existing;
    if (existing && existing.row && !isConnect) return undefined;
    if (!existing && this.pending.size >= this.maxPending) {
      this.dropped++;
      return undefined;
    }
    const fresh: PendingConnection = {
      ref,
      connectionId: connectionId ?? existing?.connectionId ?? '',
      row: undefined,
      status: undefined,
      lastHeartbeat: undefined,
      channels: undefined,
    };
    this.pending.set(k, fresh);
    return fresh;
  }

  private async write(batch: Map<string, PendingConnection>): Promise<void> {
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    const inserts: object[] = [];
    const updates: object[] = [];
    for (const p of batch.values()) {
      const { orgId: organizationId, userId, sessionId } = p.ref;
      if (p.row)
        inserts.push({
          id: createRowId(p.row.connectedAt),
          organizationId,
          userId,
          sessionId,
          clientType: p.row.clientType,
          channels: p.channels ?? [],
          metadata: p.row.metadata,
          connectedAt: iso(p.row.connectedAt),
          lastHeartbeat: iso(p.lastHeartbeat ?? p.row.connectedAt),
          status: p.status ?? 'CONNECTED',
        });
      else
        updates.push({
          organizationId,
          userId,
          sessionId,
          connectionId: p.connectionId || null,
          status: p.status ?? null,
          lastHeartbeat: iso(p.lastHeartbeat),
          channels: p.channels ?? null,
        });
    }
    // One statement per kind and chunk: the rows travel as one jsonb parameter (the same SQL on PG and
    // PGlite). Chunks, because a statement over a connect storm's whole batch (10,000 rows, megabytes of
    // JSON, parsed and materialized at once) touches that much of the embedded engine's WebAssembly heap,
    // whose pages then stay resident; a chunk bounds that high-water mark.
    for (let i = 0; i < inserts.length; i += this.maxRows)
      await this.insert(inserts.slice(i, i + this.maxRows));
    for (let i = 0; i < updates.length; i += this.maxRows)
      await this.update(updates.slice(i, i + this.maxRows));
  }

  private async insert(inserts: readonly object[]): Promise<void> {
    if (inserts.length)
      await this.execute(
        `INSERT INTO "ApiXConnection" AS c
           ("id", "organizationId", "userId", "sessionId", "clientType", "channels", "metadata",
            "connectedAt", "lastHeartbeat", "status")
         SELECT r."id", r."organizationId", r."userId", r."sessionId", r."clientType"::"ClientType",
                ARRAY(SELECT jsonb_array_elements_text(r."channels")), r."metadata",
                r."connectedAt", r."lastHeartbeat", r."status"::"ConnectionStatus"
         FROM jsonb_to_recordset($1::jsonb) AS r("id" text, "organizationId" text, "userId" text,
              "sessionId" text, "clientType" text, "channels" jsonb, "metadata" jsonb,
              "connectedAt" timestamp(3), "lastHeartbeat" timestamp(3), "status" text)
         ON CONFLICT ("organizationId", "userId", "sessionId") DO UPDATE SET
           "clientType" = EXCLUDED."clientType", "channels" = EXCLUDED."channels",
           "metadata" = EXCLUDED."metadata", "connectedAt" = EXCLUDED."connectedAt",
           "lastHeartbeat" = EXCLUDED."lastHeartbeat", "status" = EXCLUDED."status"
         WHERE c."connectedAt" <= EXCLUDED."connectedAt"`,
        [JSON.stringify(inserts)],
      );
  }

  private async update(updates: readonly object[]): Promise<void> {
    if (updates.length)
      await this.execute(
        `UPDATE "ApiXConnection" AS c SET
           "status" = COALESCE(r."status"::"ConnectionStatus", c."status"),
           "lastHeartbeat" = GREATEST(c."lastHeartbeat", COALESCE(r."lastHeartbeat", c."lastHeartbeat")),
           "channels" = CASE WHEN r."channels" IS NULL THEN c."channels"
                             ELSE ARRAY(SELECT jsonb_array_elements_text(r."channels")) END
         FROM jsonb_to_recordset($1::jsonb) AS r("organizationId" text, "userId" text, "sessionId" text,
              "connectionId" text, "status" text, "lastHeartbeat" timestamp(3), "channels" jsonb)
         WHERE c."organizationId" = r."organizationId" AND c."userId" = r."userId"
           AND c."sessionId" = r."sessionId"
           AND (r."connectionId" IS NULL OR c."metadata" -> '${GATEWAY_METADATA_KEY}' ->> 'connectionId' = r."connectionId")`,
        [JSON.stringify(updates)],
      );
  }
}

/** The pending map's key of a row ('\n' appears in no organization id, user id or session id we key by). */
function refKey(ref: ConnectionRef): string {
  return `${ref.orgId}\n${ref.userId}\n${ref.sessionId}`;
}
