/** A token bucket: `ratePerSec` tokens per second, up to `burst`. Time comes from the caller. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }
  /** Takes `n` tokens if available. */
  take(now: number, n = 1): boolean {
    this.refill(now);
    if (this.tokens >= n) {
      this.tokens -= n;
      return true;
    }
    return false;
  }
  /** Milliseconds until `n` tokens are available. */
  retryAfterMs(now: number, n = 1): number {
    this.refill(now);
    return this.tokens >= n ? 0 : Math.ceil(((n - this.tokens) / this.ratePerSec) * 1000);
  }
  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSec);
      this.last = now;
    }
  }
}
