/**
 * Channel occupancy in Redis (see occupancy.ts): one set of node incarnations per channel, changed by a Lua
 * script, so the first node in and the last node out are told so atomically.
 *
 * A node that dies without leaving must not keep its channels occupied: each node incarnation (node id +
 * a random suffix per process, so a restarted node never inherits its predecessor's entries) keeps
 * - a lease in `{occ}:leases` (expiry in ms by its clock), refreshed every third of
 *   APIX_WEBHOOK_OCCUPANCY_LEASE_MS;
 * - an index of the channels it occupies (`{occ:<member>}:channels`), written before its channel entry and
 *   removed after it, so the index is never short of an entry.
 * Every live node sweeps every APIX_WEBHOOK_OCCUPANCY_SWEEP_MS: for each expired lease, it removes that
 * incarnation from each indexed channel with the same script as a leave. The script answers "vacated" to
 * exactly one caller (a sweeper or the last live leaver), so `channel.vacated` is emitted once cluster-wide
 * however many nodes sweep at once. A node that was only late (its lease swept while it lived) sees its
 * lease come back as new on its next refresh and registers its channels again (`channel.occupied` again).
 * Nodes' clocks must agree to well within a lease.
 */
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock.ts';
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type { ChannelOccupancy, OccupancyChanged } from './occupancy.ts';

export interface OccupancyLeaseSettings {
  readonly leaseMs: number;
  readonly sweepMs: number;
}

/** Dead incarnations swept per round, and channels read per step of one (bounded work per timer tick). */
const SWEEP_NODES = 10;
const SWEEP_BATCH = 200;

export class RedisChannelOccupancy implements ChannelOccupancy {
  /** This process's entry in the channel sets: node id # incarnation. */
  readonly member: string;
  /** Figures for /metrics: dead incarnations swept, channels they vacated (by this node). */
  readonly counters = { sweptNodes: 0, vacatedBySweep: 0 };
  /** Channels this node occupies (bounded by the channels its hub holds): registered again if swept. */
  private readonly local = new Set<string>();
  private timers: TimerHandle[] = [];
  private refreshed = false;
  private sweeping = false;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly clock: Clock,
    private readonly nodeId: string,
    private readonly settings: OccupancyLeaseSettings,
  ) {
    this.incarnation = randomBytes(6).toString('hex');
    this.member = this.memberOf(nodeId);
  }

  private readonly incarnation: string;

  private memberOf(nodeId: string): string {
    return `${nodeId}#${this.incarnation}`;
  }

  get localChannels(): number {
    return this.local.size;
  }

  async change(key: string, nodeId: string, occupied: boolean): Promise<boolean> {
    const member = this.memberOf(nodeId);
    const index = this.keys.occupancyIndex(member);
    const decide = () =>
      runScript(this.client, 'channel-occupancy', [this.keys.occupancy(key)], [member, occupied ? '1' : '0']);
    if (occupied) {
      this.local.add(key);
      // Sent in this order on one connection: the index has the channel before the channel has us.
      const [, r] = await Promise.all([this.client.sadd(index, key), decide()]);
      return Number(r) === 1;
    }
    this.local.delete(key);
    const [r] = await Promise.all([decide(), this.client.srem(index, key)]);
    return Number(r) === 1;
  }

  start(changed: OccupancyChanged, onError: (err: unknown) => void): void {
    if (this.timers.length > 0) return;
    const guard = (p: Promise<void>) => p.catch(onError);
    void guard(this.refresh(changed));
    // The clock's timers (background ones: they keep no process alive; a manual clock in tests).
    const every = (ms: number, fn: () => Promise<void>) =>
      this.timers.push(this.clock.setInterval(() => void guard(fn()), ms));
    every(Math.max(1, Math.floor(this.settings.leaseMs / 3)), () => this.refresh(changed));
    every(this.settings.sweepMs, () => this.sweep(changed));
  }

  /** Stops refreshing: the lease runs out and a live node sweeps what this node did not leave. */
  stop(): void {
    for (const t of this.timers) t.cancel();
    this.timers = [];
  }

  /** Extends this node's lease; a lease that comes back as new was swept: its channels are registered again. */
  async refresh(changed: OccupancyChanged): Promise<void> {
    const added = await this.client.zadd(
      this.keys.occupancyLeases(),
      this.clock.now() + this.settings.leaseMs,
      this.member,
    );
    const swept = Number(added) === 1 && this.refreshed;
    this.refreshed = true;
    if (!swept) return;
    for (const key of [...this.local]) if (await this.change(key, this.nodeId, true)) changed(key, true);
  }

  /** Sweeps the incarnations whose lease ran out (not this one's: a late refresh is not death). */
  async sweep(changed: OccupancyChanged): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = this.clock.now();
      const dead = await this.client.zrangebyscore(
        this.keys.occupancyLeases(),
        '-inf',
        now,
        'LIMIT',
        0,
        SWEEP_NODES,
      );
      for (const member of dead) if (member !== this.member) await this.sweepMember(member, now, changed);
    } finally {
      this.sweeping = false;
    }
  }

  private async sweepMember(member: string, now: number, changed: OccupancyChanged): Promise<void> {
    const index = this.keys.occupancyIndex(member);
    for (;;) {
      // Read, then removed once handled: a sweeper that dies midway leaves the rest to the next one.
      const batch = await this.client.srandmember(index, SWEEP_BATCH);
      if (batch.length === 0) break;
      for (const key of batch) {
        const r = await runScript(
          this.client,
          'channel-occupancy',
          [this.keys.occupancy(key)],
          [member, '0'],
        );
        if (Number(r) !== 1) continue;
        this.counters.vacatedBySweep++;
        changed(key, false);
      }
      await this.client.srem(index, ...batch);
    }
    const dropped = await runScript(
      this.client,
      'occupancy-lease-drop',
      [this.keys.occupancyLeases()],
      [member, now],
    );
    if (Number(dropped) === 1) this.counters.sweptNodes++;
  }
}
