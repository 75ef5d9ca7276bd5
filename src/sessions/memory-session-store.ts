import type { Clock } from '../clock.ts';
import type { SessionSnapshot, SessionStore } from './session-store.ts';

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, SessionSnapshot>();
  constructor(private readonly clock: Clock) {}
  async save(snapshot: SessionSnapshot): Promise<void> {
    this.sessions.set(snapshot.sessionId, snapshot);
  }
  async load(sessionId: string): Promise<SessionSnapshot | undefined> {
    const s = this.sessions.get(sessionId);
    if (s && s.expiresAt <= this.clock.now()) {
      this.sessions.delete(sessionId);
      return undefined;
    }
    return s;
  }
  async delete(sessionId: string): Promise<void> {
    this.sessions.delete(sessionId);
  }
  get size(): number {
    return this.sessions.size;
  }
}
