/**
 * Channels whose settings are fixed in every organization: today the admin dashboard's channel
 * (latency/dashboard-feed.ts publishes on it). Wraps the channel registry the node uses.
 */
import { ApiXError } from '@apix/protocol';
import { DASHBOARD_CHANNEL, DASHBOARD_CHANNEL_SETTINGS } from '../latency/dashboard-feed.ts';
import type { ChannelChangeListener, ChannelRegistry, ChannelSettings } from './channel-registry.ts';

/** A channel registry in which the dashboard channel's permissions are fixed in every organization. */
export class ReservedChannelRegistry implements ChannelRegistry {
  constructor(private readonly inner: ChannelRegistry) {}
  get(orgId: string, name: string): ChannelSettings | undefined {
    return name === DASHBOARD_CHANNEL ? DASHBOARD_CHANNEL_SETTINGS : this.inner.get(orgId, name);
  }
  async set(orgId: string, name: string, settings: ChannelSettings): Promise<void> {
    if (name === DASHBOARD_CHANNEL)
      throw new ApiXError('FORBIDDEN', `${DASHBOARD_CHANNEL} is reserved for the admin dashboard`);
    return this.inner.set(orgId, name, settings);
  }
  onChange(listener: ChannelChangeListener): void {
    this.inner.onChange?.(listener);
  }
}
