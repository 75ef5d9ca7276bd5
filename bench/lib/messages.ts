/**
 * The IPC contract between the bench orchestrator (bench/run.ts) and its load-generator children
 * (bench/loadgen.ts). Every request carries an `id`; the child answers with `{ id, ok, ... }`.
 */
import type { TargetKind } from './protocols.ts';
import type { SparseHistogram } from './histogram.ts';

/** What a load-generator child needs to know about the system under test. */
export interface ClientTarget {
  readonly kind: TargetKind;
  /** ws:// base URLs, one per gateway node; connection i uses urls[i % urls.length]. */
  readonly urls: readonly string[];
  /** HS256 secret for the JWTs (APIX and Socket.IO authenticate; the bare baseline does not). */
  readonly jwtSecret: string;
  readonly org: string;
}

export interface ConnectRequest {
  readonly op: 'connect';
  readonly id: number;
  readonly target: ClientTarget;
  /** Global index of this child's first connection (for unique session ids and source addresses). */
  readonly firstIndex: number;
  readonly count: number;
  /** Subscribers record deliveries; the publisher (one connection, a service token) publishes. */
  readonly role: 'subscriber' | 'publisher';
  /** Connection i subscribes to group[i % group.length] of every group. */
  readonly channelGroups: readonly (readonly string[])[];
  readonly ack: boolean;
  /** Source address i is 127.0.x.y counted from addressBase + floor(i / perAddress). */
  readonly addressBase: number;
  readonly perAddress: number;
  /** Handshakes in flight at once in this child. */
  readonly concurrency: number;
  /** Attempts after a failed handshake (a real client retries; (a) measures without). */
  readonly retries: number;
}

export interface ResetRequest {
  readonly op: 'reset';
  readonly id: number;
  readonly step: number;
}

export interface StatsRequest {
  readonly op: 'stats';
  readonly id: number;
  readonly histogram: boolean;
}

export interface PublishRequest {
  readonly op: 'publish';
  readonly id: number;
  readonly step: number;
  /** Publishes per second (open loop: the schedule does not wait for replies). */
  readonly rate: number;
  readonly durationMs: number;
  readonly channels: readonly string[];
  /** true: a random channel per publish; false: round robin. */
  readonly random: boolean;
}

export interface CloseRequest {
  readonly op: 'close';
  readonly id: number;
}

export type ToLoadgen = ConnectRequest | ResetRequest | StatsRequest | PublishRequest | CloseRequest;

export interface ConnectResult {
  /** Handshakes that completed (some may have closed since: see StatsResult.closed). */
  readonly connected: number;
  readonly failed: number;
  /** Failed handshakes that were retried. */
  readonly retried: number;
  readonly elapsedMs: number;
  readonly firstError: string | undefined;
}

export interface StatsResult {
  readonly connected: number;
  readonly received: number;
  readonly redelivered: number;
  readonly stale: number;
  readonly closed: number;
  readonly histogram: SparseHistogram | undefined;
}

export interface PublishResult {
  /** Publishes sent per channel, aligned with the request's channels. */
  readonly counts: number[];
  readonly sent: number;
  readonly failed: number;
  readonly firstFailure: string | undefined;
  readonly elapsedMs: number;
  readonly maxBufferedBytes: number;
}

export interface Progress {
  readonly op: 'progress';
  readonly connected: number;
  readonly failed: number;
}

export interface Reply {
  readonly op: 'reply';
  readonly id: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly result?: ConnectResult | StatsResult | PublishResult | null;
}

export type FromLoadgen = Progress | Reply;
