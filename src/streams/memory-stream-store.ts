/**
 * The memory StreamStore: one node's streams in a Map, bounded by a total count (a start past it is
 * refused with STREAM_LIMIT) and by the TTLs (an open stream without appends, an ended one remembered).
 */
import { ApiXError } from '@apix/protocol';
import type {
  AppendInput,
  AppendResult,
  EndInput,
  EndResult,
  NewStream,
  StartResult,
  StreamState,
  StreamStore,
  StreamStoreOptions,
} from './stream-store.ts';

interface Entry {
  state: StreamState;
  /** When the store forgets it (ms). */
  expiresAt: number;
}

export interface MemoryStreamStoreOptions extends StreamStoreOptions {
  /** Most streams kept (open and remembered ended ones together). */
  readonly maxStreams: number;
  readonly now: () => number;
}

export class MemoryStreamStore implements StreamStore {
  readonly name = 'memory';
  private readonly streams = new Map<string, Entry>();
  /** Per channel key: the ids of its streams not yet compacted. */
  private readonly open = new Map<string, Set<string>>();

  constructor(private readonly options: MemoryStreamStoreOptions) {}

  get size(): number {
    return this.streams.size;
  }

  async start(input: NewStream): Promise<StartResult> {
    const k = entryKey(input.key, input.streamId);
    const existing = this.live(k, input.now);
    if (existing) {
      const s = existing.state;
      if (s.status !== 'streaming' || s.userId !== input.userId) return { outcome: 'taken', state: s };
      existing.state = { ...s, owner: input.owner, lastAt: input.now };
      existing.expiresAt = input.now + this.options.openTtlMs;
      return { outcome: 'resumed', state: existing.state };
    }
    if (this.streams.size >= this.options.maxStreams) this.prune(input.now);
    if (this.streams.size >= this.options.maxStreams)
      throw new ApiXError('STREAM_LIMIT', `this node holds ${this.options.maxStreams} streams`);
    const state: StreamState = {
      ...{ key: input.key, streamId: input.streamId, id: input.id, eventType: input.eventType },
      ...{ dataJson: input.dataJson, text: '', seq: 0, bytes: 0, status: 'streaming' },
      ...{ owner: input.owner, userId: input.userId, startedAt: input.now, lastAt: input.now },
    };
    this.streams.set(k, { state, expiresAt: input.now + this.options.openTtlMs });
    let ids = this.open.get(input.key);
    if (!ids) this.open.set(input.key, (ids = new Set()));
    ids.add(input.streamId);
    return { outcome: 'created', state };
  }

  async append(key: string, streamId: string, input: AppendInput): Promise<AppendResult> {
    const e = this.live(entryKey(key, streamId), input.now);
    if (!e || e.state.status !== 'streaming') return { ok: false, reason: 'not_open' };
    const s = e.state;
    if (s.owner.connectionId !== input.owner.connectionId) return { ok: false, reason: 'not_owner' };
    if (s.bytes + input.bytes > input.maxBytes) return { ok: false, reason: 'too_large' };
    const fromSeq = s.seq + 1;
    const seq = s.seq + input.count;
    e.state = { ...s, text: s.text + input.text, seq, bytes: s.bytes + input.bytes, lastAt: input.now };
    e.expiresAt = input.now + this.options.openTtlMs;
    return { ok: true, fromSeq, seq };
  }

  async end(key: string, streamId: string, input: EndInput): Promise<EndResult> {
    const e = this.live(entryKey(key, streamId), input.now);
    if (!e || e.state.status !== 'streaming') return { ok: false, reason: 'not_open' };
    const s = e.state;
    if (input.owner && s.owner.connectionId !== input.owner.connectionId)
      return { ok: false, reason: 'not_owner' };
    if (input.idleBefore !== undefined && s.lastAt >= input.idleBefore)
      return { ok: false, reason: 'not_idle' };
    e.state = {
      ...s,
      status: input.status,
      lastAt: input.now,
      endDataJson: input.endDataJson,
      errorJson: input.errorJson,
    };
    e.expiresAt = input.now + this.options.endedTtlMs;
    return { ok: true, state: e.state };
  }

  async compacted(key: string, streamId: string, compactedId: string): Promise<void> {
    const e = this.streams.get(entryKey(key, streamId));
    if (e) e.state = { ...e.state, compactedId };
    this.unlist(key, streamId);
  }

  async get(key: string, streamId: string): Promise<StreamState | undefined> {
    return this.live(entryKey(key, streamId), this.options.now())?.state;
  }

  async listOpen(key: string): Promise<StreamState[]> {
    const ids = this.open.get(key);
    if (!ids) return [];
    const now = this.options.now();
    const out: StreamState[] = [];
    for (const id of [...ids]) {
      const e = this.live(entryKey(key, id), now);
      if (e) out.push(e.state);
    }
    return out;
  }

  async close(): Promise<void> {
    this.streams.clear();
    this.open.clear();
  }

  /** The entry, unless it expired (then it is forgotten). */
  private live(k: string, now: number): Entry | undefined {
    const e = this.streams.get(k);
    if (!e) return undefined;
    if (e.expiresAt > now) return e;
    this.streams.delete(k);
    this.unlist(e.state.key, e.state.streamId);
    return undefined;
  }

  private unlist(key: string, streamId: string): void {
    const ids = this.open.get(key);
    if (!ids) return;
    ids.delete(streamId);
    if (ids.size === 0) this.open.delete(key);
  }

  private prune(now: number): void {
    for (const k of [...this.streams.keys()]) this.live(k, now);
  }
}

function entryKey(key: string, streamId: string): string {
  return `${key}\n${streamId}`;
}
