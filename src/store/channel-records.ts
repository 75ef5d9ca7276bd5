/**
 * The ApiXChannel registry: one row per channel ever subscribed to or configured, keyed by its engine key
 * (`<orgId>/<name>`, or `_/<name>` for shared `system` channels), with the channel's own `permissions`
 * (PROTOCOL.md 5) and a subscriber count. Counts move by deltas accumulated in memory and applied in one
 * statement per flush, so many nodes can share the table; `permissionsFor` reads through a short cache.
 */
import type { ChannelType } from '../protocol/index.ts';
import { ChannelType as ChannelTypes, channelKey, parseChannel } from '../protocol/index.ts';
import type { ApiXChannel } from '../generated/prisma/client.ts';
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { PrismaClient } from './database.ts';
import { createRowId } from './ids.ts';

export interface ChannelRegistryOptions {
  readonly clock?: Clock;
  /** How long `permissionsFor` may serve a cached value (default 5 s): the delay before a change applies. */
  readonly permissionsCacheMs?: number;
  /** Channels with pending count changes beyond which new ones are dropped (and counted). */
  readonly maxPending?: number;
}

interface PendingDelta {
  readonly orgId: string | null;
  readonly type: ChannelType;
  delta: number;
}

/** The engine key and owning organization of a channel named relative to `orgId`. */
export function channelRecordKey(
  orgId: string,
  name: string,
  type: ChannelType,
): { key: string; orgId: string | null } {
  const key = channelKey(orgId, { name, type, prefix: '', subject: undefined });
  return { key, orgId: type === ChannelTypes.SYSTEM_EVENTS ? null : orgId };
}

export class ChannelRegistry {
  private pending = new Map<string, PendingDelta>();
  private readonly cache = new Map<string, { value: unknown; expiresAt: number }>();
  private readonly clock: Clock;
  private readonly cacheMs: number;
  private readonly maxPending: number;
  dropped = 0;

  constructor(
    private readonly prisma: PrismaClient,
    options: ChannelRegistryOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.cacheMs = options.permissionsCacheMs ?? 5_000;
    this.maxPending = options.maxPending ?? 100_000;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Counts one subscriber more (+1) or less (-1) on the channel. O(1), no I/O. */
  adjustSubscribers(orgId: string, name: string, type: ChannelType, delta: number): void {
    const { key, orgId: owner } = channelRecordKey(orgId, name, type);
    const entry = this.pending.get(key);
    if (entry) entry.delta += delta;
    else if (this.pending.size >= this.maxPending) this.dropped++;
    else this.pending.set(key, { orgId: owner, type, delta });
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const rows = [...batch].map(([name, p]) => ({
      id: createRowId(this.clock.now()),
      name,
      type: p.type,
      organizationId: p.orgId,
      delta: p.delta,
    }));
    try {
      await this.prisma.$executeRawUnsafe(
        `INSERT INTO "ApiXChannel" AS ch ("id", "name", "type", "organizationId", "permissions", "subscribers")
         SELECT r."id", r."name", r."type"::"ChannelType", r."organizationId", '{}'::jsonb, GREATEST(0, r."delta")
         FROM jsonb_to_recordset($1::jsonb) AS r("id" text, "name" text, "type" text, "organizationId" text, "delta" int)
         ON CONFLICT ("name") DO UPDATE SET "subscribers" = GREATEST(0, ch."subscribers" + (
           SELECT x."delta" FROM jsonb_to_recordset($1::jsonb) AS x("name" text, "delta" int) WHERE x."name" = EXCLUDED."name"))`,
        JSON.stringify(rows),
      );
    } catch (err) {
      for (const [key, p] of batch) {
        const newer = this.pending.get(key);
        if (newer) newer.delta += p.delta;
        else this.pending.set(key, p);
      }
      throw err;
    }
  }

  /** Sets a channel's permissions (creating its row); `name` is relative to `orgId`. */
  async setPermissions(orgId: string, name: string, permissions: unknown): Promise<ApiXChannel> {
    const parsed = parseChannel(name);
    if (!parsed.ok) throw new Error(`invalid channel "${name}": ${parsed.reason}`);
    const { key, orgId: owner } = channelRecordKey(orgId, name, parsed.channel.type);
    const value = permissions as object;
    const row = await this.prisma.apiXChannel.upsert({
      where: { name: key },
      create: { name: key, type: parsed.channel.type, organizationId: owner, permissions: value },
      update: { permissions: value },
    });
    this.cache.delete(key);
    return row;
  }

  /** The channel's `permissions` (undefined when it has no row), cached for `permissionsCacheMs`. */
  async permissionsFor(orgId: string, name: string, type: ChannelType): Promise<unknown> {
    const { key } = channelRecordKey(orgId, name, type);
    const now = this.clock.now();
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) return hit.value;
    const row = await this.prisma.apiXChannel.findUnique({
      where: { name: key },
      select: { permissions: true },
    });
    const value = row?.permissions ?? undefined;
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(key, { value, expiresAt: now + this.cacheMs });
    return value;
  }

  get(orgId: string, name: string, type: ChannelType): Promise<ApiXChannel | null> {
    return this.prisma.apiXChannel.findUnique({ where: { name: channelRecordKey(orgId, name, type).key } });
  }

  list(orgId: string): Promise<ApiXChannel[]> {
    return this.prisma.apiXChannel.findMany({ where: { organizationId: orgId }, orderBy: { name: 'asc' } });
  }
}
