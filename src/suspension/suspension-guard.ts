/**
 * The gateway's view of suspensions: the shared store, and what this node made or heard of (bounded), so
 * that a connect is refused even when its store read raced a suspension or the store cannot be read (then
 * it fails open for the rest, as revocations do, and says so once a minute).
 */
import type { Logger } from '../log.ts';
import { HeardSuspensions } from './suspension-store.ts';
import type { FoundSuspension, Suspension, SuspensionStore } from './suspension-store.ts';

export class SuspensionGuard {
  private readonly heard: HeardSuspensions;
  private errorLoggedAt = -Infinity;

  constructor(
    private readonly store: SuspensionStore,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.heard = new HeardSuspensions(now);
  }

  /** The suspension covering a connect of `userId` with `sessionId`: the store's answer, else what was heard. */
  async find(orgId: string, userId: string, sessionId: string): Promise<FoundSuspension | undefined> {
    let found: FoundSuspension | undefined;
    try {
      found = await this.store.find(orgId, userId, sessionId);
    } catch (err) {
      if (this.now() - this.errorLoggedAt >= 60_000) {
        this.errorLoggedAt = this.now();
        this.log.warn({ err }, 'suspension store unavailable: only suspensions heard here are enforced');
      }
    }
    return found ?? this.heard.find(orgId, userId, sessionId);
  }

  /** A suspension made here or heard from another node (or its lift). */
  heardOf(s: Suspension, suspended: boolean): void {
    if (suspended) this.heard.add(s);
    else this.heard.remove(s);
  }

  /** Stores a suspension made here (or lifts it). */
  async record(s: Suspension, suspended: boolean): Promise<void> {
    if (suspended) await this.store.suspend(s);
    else await this.store.lift(s);
  }
}
