/**
 * Where events go that a subscriber never acknowledged within the allowed attempts. The memory store is
 * a bounded ring (oldest dropped first, counted); the database store (store/) keeps ApiXEvent records.
 */
export interface DeadLetter {
  readonly orgId: string;
  readonly channel: string;
  readonly eventId: string;
  readonly type: string;
  readonly sessionId: string;
  readonly attempts: number;
  readonly frame: string;
  readonly failedAt: number;
}

export interface DeadLetterStore {
  add(entry: DeadLetter): void;
  /** The organization's entries, newest first. */
  list(orgId: string, limit: number): readonly DeadLetter[];
  /** Takes out the organization's entries that `match` selects (an operator's replay or purge). */
  remove(orgId: string, match: (entry: DeadLetter) => boolean): readonly DeadLetter[];
  readonly size: number;
  readonly dropped: number;
}

export class MemoryDeadLetterStore implements DeadLetterStore {
  private readonly entries: DeadLetter[] = [];
  dropped = 0;
  constructor(private readonly max: number) {}
  add(entry: DeadLetter): void {
    this.entries.push(entry);
    if (this.entries.length > this.max) {
      this.entries.shift();
      this.dropped++;
    }
  }
  list(orgId: string, limit: number): readonly DeadLetter[] {
    const out: DeadLetter[] = [];
    for (let i = this.entries.length - 1; i >= 0 && out.length < limit; i--)
      if (this.entries[i]!.orgId === orgId) out.push(this.entries[i]!);
    return out;
  }
  remove(orgId: string, match: (entry: DeadLetter) => boolean): readonly DeadLetter[] {
    const removed: DeadLetter[] = [];
    let kept = 0;
    for (const entry of this.entries) {
      if (entry.orgId === orgId && match(entry)) removed.push(entry);
      else this.entries[kept++] = entry;
    }
    this.entries.length = kept;
    return removed;
  }
  get size(): number {
    return this.entries.length;
  }
}
