/**
 * The audit trail's overflow: entries that could not reach the database, or did not fit in the memory
 * queue, are appended, one JSON object a line, to a bounded file in the data dir, and replayed in order
 * once the database answers again. The file survives a restart, so an outage followed by a crash loses
 * nothing that reached the file.
 *
 * Every operation is synchronous: the logger spills from `record` (a full queue) while a replay may be
 * awaiting the database between `readAll` and `replace`, and the file's order must be the entries' order.
 * Synchronous calls never interleave, and `replace` keeps whatever was appended after the `readAll` it
 * follows. They run only when the trail is degraded (an overflow or an outage), never per healthy entry.
 */
import {
  appendFileSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';

export interface SpillAppendResult {
  readonly written: number;
  /** Entries that did not fit under the size bound. */
  readonly refused: number;
}

export interface SpillSnapshot<T> {
  readonly entries: T[];
  /** Lines that could not be parsed (torn by a crash, or damaged). */
  readonly corrupt: number;
  /** Bytes read: `replace` keeps what was appended after them. */
  readonly bytes: number;
}

export class SpillFile<T> {
  private bytes: number;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {
    try {
      this.bytes = statSync(path).size;
    } catch {
      this.bytes = 0;
    }
    // A crash mid-append leaves a torn last line: end it, so the next append starts a line of its own.
    if (this.bytes > 0 && !this.endsWithNewline()) {
      appendFileSync(path, '\n', { mode: 0o600 });
      this.bytes += 1;
    }
  }

  get size(): number {
    return this.bytes;
  }

  /** Appends as many entries as fit under the bound, in order; the rest are refused. */
  append(entries: readonly T[]): SpillAppendResult {
    return this.write(entries, this.maxBytes);
  }

  /**
   * Puts `entries` before everything in the file (a batch whose write failed after newer entries were
   * spilled): all of them, even past the bound, which they exceed by at most one batch.
   */
  prepend(entries: readonly T[]): void {
    if (entries.length === 0) return;
    if (this.bytes === 0) {
      this.write(entries, Number.POSITIVE_INFINITY);
      return;
    }
    const text = lines(entries);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    appendFileSync(tmp, readFileSync(this.path));
    renameSync(tmp, this.path);
    this.bytes += Buffer.byteLength(text);
  }

  /** Every entry in the file, oldest first, how many lines could not be parsed, and the bytes read. */
  readAll(): SpillSnapshot<T> {
    let buf: Buffer;
    try {
      buf = readFileSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], corrupt: 0, bytes: 0 };
      throw err;
    }
    const entries: T[] = [];
    let corrupt = 0;
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line) continue;
      try {
        entries.push(JSON.parse(line) as T);
      } catch {
        // A torn last line (crash mid-append) or damage: counted, not fatal.
        corrupt++;
      }
    }
    return { entries, corrupt, bytes: buf.length };
  }

  /**
   * Atomically replaces the part of the file a `readAll` returned (its first `readBytes`) with `entries`,
   * keeping what was appended since; removes the file when nothing is left.
   */
  replace(entries: readonly T[], readBytes = this.bytes): void {
    let tail: Buffer = Buffer.alloc(0);
    if (this.bytes > readBytes) {
      try {
        tail = readFileSync(this.path).subarray(readBytes);
      } catch {
        tail = Buffer.alloc(0);
      }
    }
    const head = lines(entries);
    if (head.length === 0 && tail.length === 0) {
      rmSync(this.path, { force: true });
      this.bytes = 0;
      return;
    }
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, head, { mode: 0o600 });
    if (tail.length > 0) appendFileSync(tmp, tail);
    renameSync(tmp, this.path);
    this.bytes = Buffer.byteLength(head) + tail.length;
  }

  private write(entries: readonly T[], maxBytes: number): SpillAppendResult {
    let text = '';
    let textBytes = 0;
    let written = 0;
    for (const e of entries) {
      const line = `${JSON.stringify(e)}\n`;
      const len = Buffer.byteLength(line);
      if (this.bytes + textBytes + len > maxBytes) break;
      text += line;
      textBytes += len;
      written++;
    }
    if (text) {
      mkdirSync(dirname(this.path), { recursive: true });
      appendFileSync(this.path, text, { mode: 0o600 });
      this.bytes += textBytes;
    }
    return { written, refused: entries.length - written };
  }

  private endsWithNewline(): boolean {
    const fd = openSync(this.path, 'r');
    try {
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, this.bytes - 1);
      return b[0] === 0x0a;
    } finally {
      closeSync(fd);
    }
  }
}

function lines<T>(entries: readonly T[]): string {
  let text = '';
  for (const e of entries) text += `${JSON.stringify(e)}\n`;
  return text;
}
