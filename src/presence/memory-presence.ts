/**
 * In-process presence. Several MemoryPresence instances (nodes) can share one MemoryPresenceStore, like
 * MemoryBroker instances share a MemoryBrokerBus.
 */
import type { Clock, TimerHandle } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { Presence, PresenceMember, PresenceOptions } from './presence.ts';
import { DEFAULT_PRESENCE_TTL_MS } from './presence.ts';

interface Entry {
  member: PresenceMember;
  deadline: number;
}

export class MemoryPresenceStore {
  readonly rooms = new Map<string, Map<string, Entry>>();
  constructor(readonly clock: Clock = systemClock) {}

  write(roomKey: string, member: PresenceMember, deadline: number): void {
    let room = this.rooms.get(roomKey);
    if (!room) this.rooms.set(roomKey, (room = new Map()));
    room.set(member.connectionId, { member, deadline });
  }

  remove(roomKey: string, connectionId: string): void {
    const room = this.rooms.get(roomKey);
    if (!room) return;
    room.delete(connectionId);
    if (room.size === 0) this.rooms.delete(roomKey);
  }

  live(roomKey: string): PresenceMember[] {
    const room = this.rooms.get(roomKey);
    if (!room) return [];
    const now = this.clock.now();
    const out: PresenceMember[] = [];
    for (const [id, e] of room) {
      if (e.deadline <= now) room.delete(id);
      else out.push(e.member);
    }
    if (room.size === 0) this.rooms.delete(roomKey);
    return out;
  }
}

export class MemoryPresence implements Presence {
  readonly name = 'memory';
  /** Members this instance joined: roomKey -> connectionId -> member. */
  private readonly local = new Map<string, Map<string, PresenceMember>>();
  private readonly ttlMs: number;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly store: MemoryPresenceStore,
    options: PresenceOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_PRESENCE_TTL_MS;
    const every = options.refreshIntervalMs ?? Math.floor(this.ttlMs / 3);
    if (every > 0) this.timer = store.clock.setInterval(() => void this.refresh(), every);
  }

  async join(roomKey: string, member: PresenceMember): Promise<void> {
    let room = this.local.get(roomKey);
    if (!room) this.local.set(roomKey, (room = new Map()));
    room.set(member.connectionId, member);
    this.store.write(roomKey, member, this.store.clock.now() + this.ttlMs);
  }

  async leave(roomKey: string, connectionId: string): Promise<void> {
    const room = this.local.get(roomKey);
    if (room?.delete(connectionId) && room.size === 0) this.local.delete(roomKey);
    this.store.remove(roomKey, connectionId);
  }

  async list(roomKey: string): Promise<PresenceMember[]> {
    return this.store.live(roomKey);
  }

  async refresh(): Promise<void> {
    const deadline = this.store.clock.now() + this.ttlMs;
    for (const [roomKey, room] of this.local)
      for (const m of room.values()) this.store.write(roomKey, m, deadline);
  }

  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    this.local.clear();
  }
}
