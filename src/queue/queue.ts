/**
 * MessageQueueManager's store: per-session queues of frames held while a session is away, delivered in
 * order when it resumes (on whichever node). Bounded per session: when full, the oldest frame is dropped
 * and counted, and the session learns on resume that it lost events (`overflowed`).
 */
/** Stored as JSON by the Redis queue: keep it plain data. */
export interface QueuedFrame {
  /** The channel's engine key and event id, for acks and dedupe. */
  readonly key: string;
  readonly id: string;
  readonly type: string;
  /** When the event was published (ms since epoch). */
  readonly timestamp: number;
  /** Deliveries already made (in-flight events handed back when their session went away). */
  readonly attempts: number;
  /** The frame text to send. */
  readonly frame: string;
  /** Whether the frame belongs to an acknowledged subscription (it goes back in flight on resume). */
  readonly ack: boolean;
  /**
   * On an encrypted channel, once drained: the stored, sealed text of `frame` (src/crypto/at-rest-engines.ts);
   * a push with it stores that instead of `frame`. Never stored itself.
   */
  readonly sealed?: string | undefined;
}

export interface DrainResult {
  readonly frames: readonly QueuedFrame[];
  readonly overflowed: number;
}

export interface OfflineQueue {
  /** Appends; returns false (and counts an overflow) when the oldest had to be dropped. */
  push(sessionId: string, item: QueuedFrame): Promise<boolean>;
  /** Removes and returns everything queued for the session, oldest first. */
  drain(sessionId: string): Promise<DrainResult>;
  size(sessionId: string): Promise<number>;
  /** Drops the session's queue (session expired or closed). */
  clear(sessionId: string): Promise<void>;
  /** Frames held across all sessions (a gauge). */
  totalSize(): number;
}
