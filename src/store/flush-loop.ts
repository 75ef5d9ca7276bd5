/**
 * Drives a batched writer: runs its `flush` every `intervalMs`, or sooner when kicked; one flush at a
 * time; after a failure waits an exponential, jittered backoff before the next attempt. The hot path
 * only ever enqueues into the writer's buffer; this loop is the only thing that waits on the database.
 */
import type { Clock, Random, TimerHandle } from '../clock.ts';
import type { StoreLogger } from './log.ts';

/** Full-jitter exponential backoff: a delay in [base, min(max, base * 2^attempt)]. Pure. */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: Random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(baseMs + random() * Math.max(0, ceiling - baseMs));
}

export interface FlushLoopOptions {
  readonly name: string;
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  readonly random?: Random;
  readonly logger: StoreLogger;
}

export class FlushLoop {
  private timer: TimerHandle | undefined;
  private running: Promise<boolean> | undefined;
  private rerun = false;
  private failures = 0;
  private nextAttemptAt = 0;
  private closed = false;
  /** Consecutive failed flushes (0 when the last one succeeded). */
  get consecutiveFailures(): number {
    return this.failures;
  }

  constructor(
    private readonly flushOnce: () => Promise<void>,
    private readonly options: FlushLoopOptions,
  ) {}

  start(): this {
    this.timer ??= this.options.clock.setInterval(() => this.kick(), this.options.intervalMs);
    return this;
  }

  /** Flushes soon, unless backing off after a failure. Never throws. */
  kick(): void {
    if (this.closed || this.options.clock.now() < this.nextAttemptAt) return;
    void this.run();
  }

  /** Flushes now, ignoring any backoff; resolves true when the flush succeeded. Never throws. */
  flush(): Promise<boolean> {
    this.nextAttemptAt = 0;
    return this.run();
  }

  /** Stops the timer and makes a last flush attempt; resolves whether it succeeded. */
  async close(): Promise<boolean> {
    this.timer?.cancel();
    this.timer = undefined;
    const ok = await this.flush();
    this.closed = true;
    return ok;
  }

  private run(): Promise<boolean> {
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    this.running = (async () => {
      let ok: boolean;
      do {
        this.rerun = false;
        ok = await this.attempt();
      } while (this.rerun && ok);
      this.running = undefined;
      return ok;
    })();
    return this.running;
  }

  private async attempt(): Promise<boolean> {
    const { clock, logger, name } = this.options;
    try {
      await this.flushOnce();
      if (this.failures > 0) logger.info({ store: name, failures: this.failures }, 'store: writes recovered');
      this.failures = 0;
      this.nextAttemptAt = 0;
      return true;
    } catch (err) {
      this.failures++;
      const delay = backoffDelayMs(
        this.failures - 1,
        this.options.retryBaseMs ?? 500,
        this.options.retryMaxMs ?? 30_000,
        this.options.random ?? Math.random,
      );
      this.nextAttemptAt = clock.now() + delay;
      // Log the first failure and then every 10th: an outage must be visible without flooding the log.
      if (this.failures === 1 || this.failures % 10 === 0)
        logger.warn(
          { err, store: name, failures: this.failures, retryInMs: delay },
          'store: write failed; retrying',
        );
      return false;
    }
  }
}
