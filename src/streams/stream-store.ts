/**
 * Where streams (docs/protocol.md §14) live while they are open, shared by every node of an engine: each
 * stream's accumulated text, its last `seq`, its status and its publishing connection. The memory store
 * serves one node; the Redis store every node, so that any node serves a late joiner the same snapshot
 * and an append it accepted survives the loss of the publisher's node.
 *
 * Guarantees every implementation gives (tests/contracts/stream-store.contract.ts checks them):
 * - `start` creates a stream once per (channel, streamId); a second `start` by the same user while it is
 *   open makes the caller its owner (a publisher resuming), and answers what was accepted so far.
 * - `append` is atomic: it adds `count` appends (seq `fromSeq..seq`) or nothing, only for the owner of
 *   an open stream, and never lets the text pass `maxBytes`.
 * - `end` is atomic and happens once: the first `end` of an open stream answers its final state; later
 *   ones (and appends) are refused. With `idleBefore`, it ends the stream only when its last append is
 *   older, so that two nodes sweeping idle streams end it once.
 * - `listOpen` answers the channel's streams that are streaming or ended without their compacted event
 *   id yet (`compacted` removes them from it).
 */
import type { StreamEndStatus } from '@apix/protocol';
import type { Config } from '../config.ts';

/** Most streams one memory store holds (open and recently ended); a start past it is refused. */
export const MEMORY_MAX_STREAMS = 100_000;

/**
 * The store's TTLs from the settings: an open stream outlives the idle timeout (a sweeping node ends it
 * first; the TTL only frees what no node is left to sweep), and an ended one is remembered for an hour.
 */
export function streamStoreTtls(config: Config): StreamStoreOptions {
  return { openTtlMs: config.streams.idleTimeoutMs * 3 + 60_000, endedTtlMs: 3_600_000 };
}

export type StreamStatus = 'streaming' | StreamEndStatus;

export interface StreamOwner {
  readonly nodeId: string;
  readonly connectionId: string;
}

export interface StreamState {
  /** The channel's engine key. */
  readonly key: string;
  readonly streamId: string;
  /** The stream's id (the `id` of its frames until it ends). */
  readonly id: string;
  readonly eventType: string;
  /** `data` of `stream.start`, as JSON text (`null` when absent). */
  readonly dataJson: string;
  /** The accumulated text as stored: plain, or sealed chunks on an encrypted channel (src/streams/text.ts). */
  readonly text: string;
  /** The last accepted append's seq (0: none yet). */
  readonly seq: number;
  /** UTF-8 bytes of the plain text. */
  readonly bytes: number;
  readonly status: StreamStatus;
  readonly owner: StreamOwner;
  readonly userId: string;
  readonly startedAt: number;
  /** When the last append (or the start, or the end) was accepted. */
  readonly lastAt: number;
  /** On an ended stream: `data` of `stream.end` (JSON text) and its `error` (JSON text), if any. */
  readonly endDataJson?: string | undefined;
  readonly errorJson?: string | undefined;
  /** The compacted event's id, once written to the history. */
  readonly compactedId?: string | undefined;
}

export interface NewStream {
  readonly key: string;
  readonly streamId: string;
  readonly id: string;
  readonly eventType: string;
  readonly dataJson: string;
  readonly owner: StreamOwner;
  readonly userId: string;
  readonly now: number;
}

export type StartResult =
  /** `created`: a new stream; `resumed`: the same user's open stream, now owned by the caller. */
  | { readonly outcome: 'created' | 'resumed'; readonly state: StreamState }
  /** The id is taken: by an ended stream, or by another user's open one. */
  | { readonly outcome: 'taken'; readonly state: StreamState };

export interface AppendInput {
  readonly owner: StreamOwner;
  /** The text to add as stored (already sealed on an encrypted channel). */
  readonly text: string;
  /** How many appends it joins (they take seq `fromSeq..fromSeq+count-1`). */
  readonly count: number;
  /** UTF-8 bytes of the plain text added. */
  readonly bytes: number;
  readonly maxBytes: number;
  readonly now: number;
}

export type AppendResult =
  | { readonly ok: true; readonly fromSeq: number; readonly seq: number }
  | { readonly ok: false; readonly reason: 'not_open' | 'not_owner' | 'too_large' };

export interface EndInput {
  readonly status: StreamEndStatus;
  readonly endDataJson?: string | undefined;
  readonly errorJson?: string | undefined;
  readonly now: number;
  /** Only the owner may end it (undefined: the server ends it, e.g. idle). */
  readonly owner?: StreamOwner | undefined;
  /** End only if the last append is older than this (the idle sweep). */
  readonly idleBefore?: number | undefined;
}

export type EndResult =
  | { readonly ok: true; readonly state: StreamState }
  | { readonly ok: false; readonly reason: 'not_open' | 'not_owner' | 'not_idle' };

export interface StreamStoreOptions {
  /** How long an open stream is kept without any append (then it is dropped by the store). */
  readonly openTtlMs: number;
  /** How long an ended stream is remembered (its id stays taken; a late `stream.end` is answered). */
  readonly endedTtlMs: number;
}

export interface StreamStore {
  readonly name: string;
  start(input: NewStream): Promise<StartResult>;
  append(key: string, streamId: string, input: AppendInput): Promise<AppendResult>;
  end(key: string, streamId: string, input: EndInput): Promise<EndResult>;
  /** The compacted event is in the history: the stream leaves the channel's open list. */
  compacted(key: string, streamId: string, compactedId: string): Promise<void>;
  get(key: string, streamId: string): Promise<StreamState | undefined>;
  listOpen(key: string): Promise<StreamState[]>;
  close(): Promise<void>;
}
