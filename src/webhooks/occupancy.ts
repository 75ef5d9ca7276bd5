/**
 * Channel occupancy across the cluster: a channel is occupied while at least one node has a subscriber on
 * it. Each node reports its own first-in and last-out (the hub's transitions); the store answers whether
 * that made the channel occupied or vacated cluster-wide, atomically, so exactly one node emits each
 * `channel.occupied` / `channel.vacated`. Memory (shared by the nodes of one in-process bus, which die
 * together) here; Redis in redis-occupancy.ts, where a node that dies without leaving is swept by the live
 * ones when its lease runs out.
 */
export interface ChannelOccupancy {
  /** True when this change made the channel occupied (`occupied`) or vacated (`!occupied`) cluster-wide. */
  change(key: string, nodeId: string, occupied: boolean): Promise<boolean>;
  /**
   * Starts the lease and sweep timers where the store has them: `changed` is told of the changes they
   * decide (a dead node's channel vacated, a swept live node's channel occupied again).
   */
  start?(changed: OccupancyChanged, onError: (err: unknown) => void): void;
  stop?(): void;
}

/** A cluster-wide occupancy change decided outside `change` (by the sweep). */
export type OccupancyChanged = (key: string, occupied: boolean) => void;

export class MemoryChannelOccupancy implements ChannelOccupancy {
  private readonly nodes = new Map<string, Set<string>>();

  async change(key: string, nodeId: string, occupied: boolean): Promise<boolean> {
    let set = this.nodes.get(key);
    if (occupied) {
      if (!set) this.nodes.set(key, (set = new Set()));
      if (set.has(nodeId)) return false;
      set.add(nodeId);
      return set.size === 1;
    }
    if (!set || !set.delete(nodeId)) return false;
    if (set.size > 0) return false;
    this.nodes.delete(key);
    return true;
  }

  /** Channels occupied now (bounded by the channels subscribed on the nodes). */
  get size(): number {
    return this.nodes.size;
  }
}
