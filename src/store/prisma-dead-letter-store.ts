/**
 * The database DeadLetterStore (src/retry/dead-letter.ts): `add` keeps the entry in the bounded memory
 * ring (which answers `list` synchronously) and queues an ApiXDeadLetter row (written by the record
 * repositories' flush, never on the caller's path).
 */
import { MemoryDeadLetterStore, type DeadLetter, type DeadLetterStore } from '../retry/dead-letter.ts';
import { channelKey, parseChannel } from '@apix/protocol';
import type { EventRecords } from './event-records.ts';
import { sealedRecordPayload } from '../crypto/at-rest.ts';

export class PrismaDeadLetterStore implements DeadLetterStore {
  private readonly recent: MemoryDeadLetterStore;

  constructor(
    private readonly events: EventRecords,
    maxInMemory: number,
  ) {
    this.recent = new MemoryDeadLetterStore(maxInMemory);
  }

  add(entry: DeadLetter): void {
    this.recent.add(entry);
    const parsed = parseChannel(entry.channel);
    this.events.deadLetter({
      orgId: entry.orgId,
      // The entry may name the channel relative to its organization or by its engine key.
      channelKey: parsed.ok ? channelKey(entry.orgId, parsed.channel) : entry.channel,
      eventId: entry.eventId,
      sessionId: entry.sessionId,
      attempts: entry.attempts,
      eventType: entry.type,
      payload: payloadOf(entry.frame),
      reason: `not acknowledged after ${entry.attempts} attempts`,
      at: entry.failedAt,
    });
  }

  list(orgId: string, limit: number): readonly DeadLetter[] {
    return this.recent.list(orgId, limit);
  }

  /** From the node's queue; the ApiXDeadLetter rows stay, the record of what failed. */
  remove(orgId: string, match: (entry: DeadLetter) => boolean): readonly DeadLetter[] {
    return this.recent.remove(orgId, match);
  }

  get size(): number {
    return this.recent.size;
  }

  /** Dropped from memory (ring full) or refused by the write queue. */
  get dropped(): number {
    return this.recent.dropped + this.events.dropped;
  }
}

function payloadOf(frame: string): unknown {
  // An encrypted channel's frame: the row keeps it sealed (openRecordPayload reads it back).
  const sealed = sealedRecordPayload(frame);
  if (sealed !== undefined) return sealed;
  try {
    const parsed = JSON.parse(frame) as { payload?: unknown };
    return parsed.payload ?? null;
  } catch {
    return frame;
  }
}
