import type { Clock } from '../clock.ts';
import type { PrivateChannelState, SessionSnapshot, SessionStore } from './session-store.ts';
import { receivesPrivateChannel } from './session-store.ts';

export class MemorySessionStore implements SessionStore {
  readonly outlivesNode = false;
  private readonly sessions = new Map<string, SessionSnapshot>();
  /** `<org>/<user>` -> its sessions that receive `user:<user>` (removed with them: bounded by `sessions`). */
  private readonly byUser = new Map<string, Set<string>>();
  constructor(private readonly clock: Clock) {}
  async save(snapshot: SessionSnapshot): Promise<void> {
    this.unindex(snapshot.sessionId);
    this.sessions.set(snapshot.sessionId, snapshot);
    if (!receivesPrivateChannel(snapshot)) return;
    const user = `${snapshot.orgId}/${snapshot.userId}`;
    let set = this.byUser.get(user);
    if (!set) this.byUser.set(user, (set = new Set()));
    set.add(snapshot.sessionId);
  }
  async load(sessionId: string): Promise<SessionSnapshot | undefined> {
    const s = this.sessions.get(sessionId);
    if (s && s.expiresAt <= this.clock.now()) {
      this.unindex(sessionId);
      this.sessions.delete(sessionId);
      return undefined;
    }
    return s;
  }
  async delete(sessionId: string): Promise<void> {
    this.unindex(sessionId);
    this.sessions.delete(sessionId);
  }
  async privateChannelState(orgId: string, userId: string): Promise<PrivateChannelState> {
    let state: PrivateChannelState = 'none';
    for (const id of this.byUser.get(`${orgId}/${userId}`) ?? []) {
      const s = await this.load(id);
      if (!s) continue;
      if (s.live) return 'live';
      state = 'away';
    }
    return state;
  }
  get size(): number {
    return this.sessions.size;
  }
  /** Every snapshot not yet expired (for a snapshot of the state: src/state/state-log.ts). */
  entries(): SessionSnapshot[] {
    const now = this.clock.now();
    return [...this.sessions.values()].filter((s) => s.expiresAt > now);
  }
  private unindex(sessionId: string): void {
    const s = this.sessions.get(sessionId);
    if (!s) return;
    const user = `${s.orgId}/${s.userId}`;
    const set = this.byUser.get(user);
    if (!set) return;
    set.delete(sessionId);
    if (set.size === 0) this.byUser.delete(user);
  }
}
