/**
 * What the load generators (bench/loadgen.ts, bench/tools/compression-clients.ts) read from raw frames
 * without parsing them: the send time `"bt":<ms>` each benchmark event carries, on a clock shared by the
 * processes of one machine.
 */

/** Milliseconds on the monotonic clock (process.hrtime), comparable across processes of one machine. */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** The key of an event's send time in its payload. */
export const SEND_TIME_KEY = Buffer.from('"bt":');

/** Reads a non-negative decimal number at `at` without allocating. */
export function readNumber(buf: Buffer, at: number): number {
  let v = 0;
  let i = at;
  let c = buf[i]!;
  while (c >= 48 && c <= 57) {
    v = v * 10 + (c - 48);
    c = buf[++i]!;
  }
  if (c === 46) {
    let scale = 0.1;
    c = buf[++i]!;
    while (c >= 48 && c <= 57) {
      v += (c - 48) * scale;
      scale /= 10;
      c = buf[++i]!;
    }
  }
  return v;
}
