/**
 * Caps what one client can make the audit trail write with denials. The first denial of a kind from one
 * source (a connection, or a principal at an address for HTTP) in a window is recorded as it comes; the
 * ones after it in the same window are only counted, and one summary entry of the same action records
 * them when the window ends: `detail.aggregated: true`, `count`, the first targets (`targets`, at most
 * SAMPLE), `firstAt` and `lastAt`. A client sending 40 frames of 1,000 forbidden channels makes two
 * entries, not 40,000.
 *
 * Bounded: at most `maxSources` sources are tracked; the oldest is summarized early to make room.
 */
import type { Clock, TimerHandle } from '../clock.ts';
import type { AuditEntryInput } from './audit-logger.ts';

/** Targets listed in a summary entry. */
const SAMPLE = 10;

interface Window {
  readonly startedAt: number;
  /** The first entry of the window, as recorded (the summary repeats its who and where). */
  readonly first: AuditEntryInput;
  /** Denials counted after the first. */
  count: number;
  firstAt: number;
  lastAt: number;
  readonly targets: string[];
}

export interface DenialAggregatorOptions {
  readonly clock: Clock;
  /** The window; 0 records every denial. */
  readonly windowMs: number;
  /** Sources tracked at once (default 10 000). */
  readonly maxSources?: number;
  /** Where entries go (the audit logger's `record`). */
  readonly record: (entry: AuditEntryInput) => void;
}

export class DenialAggregator {
  private readonly windows = new Map<string, Window>();
  private readonly maxSources: number;
  private timer: TimerHandle | undefined;

  constructor(private readonly options: DenialAggregatorOptions) {
    this.maxSources = options.maxSources ?? 10_000;
  }

  /** Sources with an open window (for tests and leak checks). */
  get size(): number {
    return this.windows.size;
  }

  /** A denial from `source` (one connection, or one principal at one address): recorded or counted. */
  deny(source: string, entry: AuditEntryInput): void {
    const { windowMs, clock } = this.options;
    if (windowMs <= 0) {
      this.options.record(entry);
      return;
    }
    const key = `${source}\n${entry.action}`;
    const now = clock.now();
    const w = this.windows.get(key);
    if (w !== undefined && now - w.startedAt < windowMs) {
      w.count++;
      if (w.count === 1) w.firstAt = now;
      w.lastAt = now;
      if (entry.target !== undefined && w.targets.length < SAMPLE && !w.targets.includes(entry.target))
        w.targets.push(entry.target);
      return;
    }
    if (w !== undefined) this.close(key, w);
    if (this.windows.size >= this.maxSources) {
      const oldest = this.windows.entries().next().value as [string, Window];
      this.close(oldest[0], oldest[1]);
    }
    this.windows.set(key, { startedAt: now, first: entry, count: 0, firstAt: now, lastAt: now, targets: [] });
    this.options.record(entry);
    this.timer ??= clock.setInterval(() => this.sweep(), windowMs);
  }

  /** Summarizes the windows that ended. */
  sweep(): void {
    const now = this.options.clock.now();
    for (const [key, w] of this.windows) if (now - w.startedAt >= this.options.windowMs) this.close(key, w);
    if (this.windows.size === 0) {
      this.timer?.cancel();
      this.timer = undefined;
    }
  }

  /** Summarizes every open window now (on shutdown). */
  flush(): void {
    for (const [key, w] of this.windows) this.close(key, w);
    this.timer?.cancel();
    this.timer = undefined;
  }

  private close(key: string, w: Window): void {
    this.windows.delete(key);
    if (w.count === 0) return;
    const { first } = w;
    this.options.record({
      ...first,
      target: w.targets.length === 1 ? w.targets[0] : undefined,
      detail: {
        ...first.detail,
        aggregated: true,
        count: w.count,
        targets: w.targets,
        firstAt: w.firstAt,
        lastAt: w.lastAt,
      },
    });
  }
}
