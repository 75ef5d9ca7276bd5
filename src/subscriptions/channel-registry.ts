/**
 * Per-channel settings: permission overrides (docs/protocol.md §5) and delivery options. The memory registry
 * is the embedded default; the database registry (store/) keeps them in ApiXChannel.
 */
import { channelKey, parseChannel } from '@apix/protocol';
import type { ChannelPermissions } from './permissions.ts';

export interface ChannelSettings {
  readonly permissions?: ChannelPermissions;
  /** Events are also written to ApiXEvent records, so replay reaches past history retention. */
  readonly durable?: boolean;
  /** Slow subscribers get only the latest event per `payload[coalesceKey]` instead of being cut. */
  readonly coalesceKey?: string;
  /**
   * What is stored of its events (history, offline queues, ApiXEvent records, dead letters) is encrypted
   * with the organization's key (src/crypto/at-rest.ts); publishing is refused without APIX_ENCRYPTION_KEYS.
   */
  readonly encrypted?: boolean;
}

/** What a `coalesceKey` may be: a payload field name (`payload[coalesceKey]` is read). */
export const COALESCE_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export interface ChannelRegistry {
  /** Settings of `<orgId>/<name>`; must answer from a cache on the hot path. */
  get(orgId: string, name: string): ChannelSettings | undefined;
  set(orgId: string, name: string, settings: ChannelSettings): Promise<void>;
  /**
   * Tells `listener` the engine key of every channel whose settings changed (here or, for shared
   * registries, on another node), so that subscriptions the new rules deny are revoked.
   */
  onChange?(listener: ChannelChangeListener): void;
}

export type ChannelChangeListener = (key: string) => void;

export class MemoryChannelRegistry implements ChannelRegistry {
  private readonly settings = new Map<string, ChannelSettings>();
  get(orgId: string, name: string): ChannelSettings | undefined {
    return this.settings.get(`${orgId}/${name}`);
  }
  private readonly listeners: ChannelChangeListener[] = [];
  async set(orgId: string, name: string, settings: ChannelSettings): Promise<void> {
    this.settings.set(`${orgId}/${name}`, settings);
    const parsed = parseChannel(name);
    if (parsed.ok) for (const l of this.listeners) l(channelKey(orgId, parsed.channel));
  }
  onChange(listener: ChannelChangeListener): void {
    this.listeners.push(listener);
  }
}
