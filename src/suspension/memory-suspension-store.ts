/**
 * Suspensions of the memory engine (one process; shared by the nodes of one MemoryBrokerBus). Bounded:
 * expired entries go first; when `maxEntries` unexpired ones are held, a new suspension is refused
 * (UNAVAILABLE) rather than silently forgetting an older one.
 */
import { ApiXError } from '@apix/protocol';
import type { Clock } from '../clock.ts';
import { targetKey } from './suspension-store.ts';
import type { FoundSuspension, Suspension, SuspensionStore, SuspensionTarget } from './suspension-store.ts';

export class MemorySuspensionStore implements SuspensionStore {
  private readonly entries = new Map<string, Suspension>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 100_000,
  ) {}

  async suspend(s: Suspension): Promise<void> {
    const now = this.clock.now();
    if (s.expiresAt <= now) return;
    const key = targetKey(s);
    if (!this.entries.has(key) && this.entries.size >= this.maxEntries) {
      for (const [k, v] of this.entries) if (v.expiresAt <= now) this.entries.delete(k);
      if (this.entries.size >= this.maxEntries)
        throw new ApiXError('UNAVAILABLE', `too many suspensions held (${this.maxEntries})`);
    }
    this.entries.set(key, s);
  }

  async lift(t: SuspensionTarget): Promise<void> {
    this.entries.delete(targetKey(t));
  }

  async find(orgId: string, userId: string, sessionId: string): Promise<FoundSuspension | undefined> {
    const now = this.clock.now();
    const user = this.entries.get(targetKey({ orgId, userId }));
    if (user !== undefined && user.expiresAt > now) return { scope: 'user', reason: user.reason };
    const session = this.entries.get(targetKey({ orgId, userId, sessionId }));
    if (session !== undefined && session.expiresAt > now) return { scope: 'session', reason: session.reason };
    return undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}
