/**
 * ApiXChannel records: one row per channel ever subscribed to or configured, keyed by its engine key
 * (`<orgId>/<name>`, or `_/<name>` for shared `system` channels), with the channel's settings in the
 * seed's `permissions` Json (see `settingsToJson`) and a subscriber count. Counts move by deltas
 * accumulated in memory and applied in one statement per flush, so many nodes can share the table.
 * The gateway reads settings through PrismaChannelRegistry (a cache); this class is the writer.
 */
import { z } from 'zod';
import type { ChannelType, ClientType } from '@apix/protocol';
import type { ChannelSettings } from '../subscriptions/channel-registry.ts';
import type { ChannelPermissions } from '../subscriptions/permissions.ts';
import {
  ChannelType as ChannelTypes,
  ClientType as ClientTypes,
  channelKey,
  parseChannel,
} from '@apix/protocol';
import type { ApiXChannel } from '../generated/prisma/client.ts';
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { PrismaClient } from './database.ts';
import { createRowId } from './ids.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export interface ChannelRecordsOptions {
  readonly clock?: Clock;
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

/**
 * The `permissions` column holds a channel's settings: its permission rules at the top level
 * (`subscribe`, `publish`, `history`, as ChannelPermissions) beside `durable`, `coalesceKey` and
 * `encrypted` when set.
 */
export function settingsToJson(settings: ChannelSettings): Record<string, unknown> {
  return {
    ...(settings.permissions ?? {}),
    ...(settings.durable !== undefined ? { durable: settings.durable } : {}),
    ...(settings.coalesceKey !== undefined ? { coalesceKey: settings.coalesceKey } : {}),
    ...(settings.encrypted !== undefined ? { encrypted: settings.encrypted } : {}),
  };
}

export function settingsFromJson(value: unknown): ChannelSettings {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  const v = value as Record<string, unknown>;
  const permissions: Record<string, unknown> = {};
  for (const action of ['subscribe', 'publish', 'history'])
    if (typeof v[action] === 'object' && v[action] !== null) permissions[action] = v[action];
  return {
    ...(Object.keys(permissions).length ? { permissions: permissions as ChannelPermissions } : {}),
    ...(typeof v.durable === 'boolean' ? { durable: v.durable } : {}),
    ...(typeof v.coalesceKey === 'string' ? { coalesceKey: v.coalesceKey } : {}),
    ...(typeof v.encrypted === 'boolean' ? { encrypted: v.encrypted } : {}),
  };
}

const RuleSchema = z.strictObject({
  roles: z.array(z.string()).optional(),
  clientTypes: z.array(z.enum(Object.values(ClientTypes) as [ClientType, ...ClientType[]])).optional(),
  scopes: z.array(z.string()).optional(),
  users: z.array(z.string()).optional(),
  deny: z.boolean().optional(),
});
/** ChannelPermissions as operators write them (`apix channels set-permissions --json`). */
export const ChannelPermissionsSchema = z.strictObject({
  subscribe: RuleSchema.optional(),
  publish: RuleSchema.optional(),
  history: RuleSchema.optional(),
});

export class ChannelRecords {
  private pending = new Map<string, PendingDelta>();
  private readonly clock: Clock;
  private readonly maxPending: number;
  dropped = 0;

  constructor(
    private readonly prisma: PrismaClient,
    options: ChannelRecordsOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
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

  /** Replaces a channel's settings (creating its row); `name` is relative to `orgId`. */
  async setSettings(orgId: string, name: string, settings: ChannelSettings): Promise<ApiXChannel> {
    const parsed = parseChannel(name);
    if (!parsed.ok)
      throw new InternalError('APIX_ERR_INVALID_ARGUMENT', `invalid channel "${name}": ${parsed.reason}`);
    const { key, orgId: owner } = channelRecordKey(orgId, name, parsed.channel.type);
    const value = settingsToJson(settings) as object;
    const row = await this.prisma.apiXChannel.upsert({
      where: { name: key },
      create: { name: key, type: parsed.channel.type, organizationId: owner, permissions: value },
      update: { permissions: value },
    });
    return row;
  }

  /** Replaces a channel's permission rules, keeping its other settings. */
  async setPermissions(orgId: string, name: string, permissions: ChannelPermissions): Promise<ApiXChannel> {
    const parsed = parseChannel(name);
    if (!parsed.ok)
      throw new InternalError('APIX_ERR_INVALID_ARGUMENT', `invalid channel "${name}": ${parsed.reason}`);
    const current = await this.get(orgId, name, parsed.channel.type);
    const settings = settingsFromJson(current?.permissions);
    return this.setSettings(orgId, name, { ...settings, permissions });
  }

  /** Every configured channel (settings not empty), for loading a cache. */
  listConfigured(): Promise<Array<Pick<ApiXChannel, 'name' | 'permissions'>>> {
    return this.prisma.apiXChannel.findMany({
      where: { NOT: { permissions: { equals: {} } } },
      select: { name: true, permissions: true },
    });
  }

  get(orgId: string, name: string, type: ChannelType): Promise<ApiXChannel | null> {
    return this.prisma.apiXChannel.findUnique({ where: { name: channelRecordKey(orgId, name, type).key } });
  }

  list(orgId: string): Promise<ApiXChannel[]> {
    return this.prisma.apiXChannel.findMany({ where: { organizationId: orgId }, orderBy: { name: 'asc' } });
  }
}
