/**
 * Idempotency keys of the memory engine: which event a `(channel, idempotency key)` produced, for the
 * window. Shared by the in-process nodes of one MemoryBrokerBus, as Redis shares them between nodes.
 * Bounded: past `maxKeys` the oldest key is forgotten (a later duplicate of it would be published again).
 */
export class MemoryIdempotency {
  /** `<channelKey>\n<idempotency key>` -> the event id and when the entry lapses; insertion-ordered. */
  private readonly seen = new Map<string, { id: string; expiresAt: number }>();

  constructor(private readonly maxKeys = 100_000) {}

  /** The id of the event published with this key on this channel within the window, if any. */
  lookup(channelKey: string, key: string, now: number): string | undefined {
    this.expire(now);
    const hit = this.seen.get(`${channelKey}\n${key}`);
    return hit !== undefined && hit.expiresAt > now ? hit.id : undefined;
  }

  /** Told of every key remembered (src/state/state-log.ts keeps them across a restart). */
  onRemember: ((k: string, id: string, expiresAt: number) => void) | undefined;

  remember(channelKey: string, key: string, id: string, windowMs: number, now: number): void {
    this.restore(`${channelKey}\n${key}`, id, now + windowMs);
    this.onRemember?.(`${channelKey}\n${key}`, id, now + windowMs);
  }

  /** Remembers an entry as `entries` gave it (a restore keeps them in the order given: expiry order). */
  restore(k: string, id: string, expiresAt: number): void {
    this.seen.delete(k);
    this.seen.set(k, { id, expiresAt });
    if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value as string);
  }

  /** Every entry, oldest first. */
  entries(): Array<[string, string, number]> {
    return [...this.seen].map(([k, v]) => [k, v.id, v.expiresAt]);
  }

  get size(): number {
    return this.seen.size;
  }

  /**
   * Drops lapsed entries from the oldest end (windows are one setting, so the order is the expiry order);
   * also called by the memory engines' housekeeping, so that keys drain when publishing stops.
   */
  expire(now: number): void {
    for (const [k, v] of this.seen) {
      if (v.expiresAt > now) break;
      this.seen.delete(k);
    }
  }
}
