import type { DrainResult, OfflineQueue, QueuedFrame } from './queue.ts';

export class MemoryOfflineQueue implements OfflineQueue {
  private readonly queues = new Map<string, { items: QueuedFrame[]; overflowed: number }>();
  private total = 0;
  constructor(private readonly maxPerSession: number) {}

  async push(sessionId: string, item: QueuedFrame): Promise<boolean> {
    let q = this.queues.get(sessionId);
    if (!q) this.queues.set(sessionId, (q = { items: [], overflowed: 0 }));
    q.items.push(item);
    this.total++;
    if (q.items.length > this.maxPerSession) {
      q.items.shift();
      q.overflowed++;
      this.total--;
      return false;
    }
    return true;
  }
  async drain(sessionId: string): Promise<DrainResult> {
    const q = this.queues.get(sessionId);
    if (!q) return { frames: [], overflowed: 0 };
    this.queues.delete(sessionId);
    this.total -= q.items.length;
    return { frames: q.items, overflowed: q.overflowed };
  }
  async size(sessionId: string): Promise<number> {
    return this.queues.get(sessionId)?.items.length ?? 0;
  }
  async clear(sessionId: string): Promise<void> {
    await this.drain(sessionId);
  }
  totalSize(): number {
    return this.total;
  }
  /** Every session's queue (for a snapshot of the state: src/state/state-log.ts). */
  entries(): Array<[string, { readonly items: readonly QueuedFrame[]; readonly overflowed: number }]> {
    return [...this.queues.entries()].map(([k, q]) => [
      k,
      { items: q.items.slice(), overflowed: q.overflowed },
    ]);
  }
}
