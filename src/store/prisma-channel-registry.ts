/**
 * The database ChannelRegistry (src/subscriptions/channel-registry.ts): settings of every configured
 * channel held in memory, so `get` answers synchronously on the hot path; loaded by `load()` at start and
 * refreshed every `refreshMs` (changes made by other nodes or `apix channels` apply within that time).
 * A failed refresh keeps the last good cache and is logged.
 */
import type { Clock, TimerHandle } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type {
  ChannelChangeListener,
  ChannelRegistry,
  ChannelSettings,
} from '../subscriptions/channel-registry.ts';
import { parseChannel } from '@apix/protocol';
import { ChannelRecords, channelRecordKey, settingsFromJson } from './channel-records.ts';
import type { PrismaClient } from './database.ts';
import { silentLogger, type StoreLogger } from './log.ts';

export interface PrismaChannelRegistryOptions {
  readonly clock?: Clock;
  /** Default 5000 ms. */
  /** 0: never (this process is the only writer). */
  readonly refreshMs?: number;
  readonly logger?: StoreLogger;
}

export class PrismaChannelRegistry implements ChannelRegistry {
  private cache = new Map<string, ChannelSettings>();
  private readonly records: ChannelRecords;
  private readonly clock: Clock;
  private readonly logger: StoreLogger;
  private timer: TimerHandle | undefined;
  private readonly listeners: ChannelChangeListener[] = [];

  constructor(
    prisma: PrismaClient,
    private readonly options: PrismaChannelRegistryOptions = {},
  ) {
    this.records = new ChannelRecords(prisma, { clock: options.clock });
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
  }

  /** Loads every configured channel, then refreshes on the interval. Throws if the first load fails. */
  async start(): Promise<this> {
    await this.load();
    const refreshMs = this.options.refreshMs ?? 5_000;
    if (refreshMs > 0)
      this.timer ??= this.clock.setInterval(() => {
        this.load().catch((err: unknown) => this.logger.warn({ err }, 'channel settings refresh failed'));
      }, refreshMs);
    return this;
  }

  async load(): Promise<void> {
    const rows = await this.records.listConfigured();
    const next = new Map<string, ChannelSettings>();
    for (const row of rows) next.set(row.name, settingsFromJson(row.permissions));
    const previous = this.cache;
    this.cache = next;
    if (this.listeners.length === 0) return;
    // Tell listeners what changed (set elsewhere, e.g. by `apix channels` or another node), and what went.
    for (const [key, settings] of next)
      if (JSON.stringify(previous.get(key)) !== JSON.stringify(settings)) this.notify(key);
    for (const key of previous.keys()) if (!next.has(key)) this.notify(key);
  }

  onChange(listener: ChannelChangeListener): void {
    this.listeners.push(listener);
  }

  private notify(key: string): void {
    for (const l of this.listeners) l(key);
  }

  get(orgId: string, name: string): ChannelSettings | undefined {
    return this.cache.get(this.keyOf(orgId, name));
  }

  async set(orgId: string, name: string, settings: ChannelSettings): Promise<void> {
    await this.records.setSettings(orgId, name, settings);
    const key = this.keyOf(orgId, name);
    this.cache.set(key, settings);
    this.notify(key);
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private keyOf(orgId: string, name: string): string {
    // `system` channels are shared: their row is `_/<name>` whoever asks.
    const colon = name.indexOf(':');
    if ((colon === -1 ? name : name.slice(0, colon)) !== 'system') return `${orgId}/${name}`;
    const parsed = parseChannel(name);
    return parsed.ok ? channelRecordKey(orgId, name, parsed.channel.type).key : `${orgId}/${name}`;
  }
}
