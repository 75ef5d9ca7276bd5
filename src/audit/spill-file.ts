/**
 * The audit trail's overflow: entries that could not reach the database are appended, one JSON object a
 * line, to a bounded file in the data dir, and replayed in order once the database answers again. The
 * file survives a restart, so an outage followed by a crash loses nothing that reached the file.
 */
import { appendFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';

export interface SpillAppendResult {
  readonly written: number;
  /** Entries that did not fit under the size bound. */
  readonly refused: number;
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
  }

  get size(): number {
    return this.bytes;
  }

  /** Appends as many entries as fit under the bound, in order; the rest are refused. */
  async append(entries: readonly T[]): Promise<SpillAppendResult> {
    let text = '';
    let written = 0;
    for (const e of entries) {
      const line = `${JSON.stringify(e)}\n`;
      const len = Buffer.byteLength(line);
      if (this.bytes + Buffer.byteLength(text) + len > this.maxBytes) break;
      text += line;
      written++;
    }
    if (text) {
      await mkdir(dirname(this.path), { recursive: true });
      await appendFile(this.path, text, { mode: 0o600 });
      this.bytes += Buffer.byteLength(text);
    }
    return { written, refused: entries.length - written };
  }

  /** Every entry in the file, oldest first, and how many lines could not be parsed. */
  async readAll(): Promise<{ entries: T[]; corrupt: number }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], corrupt: 0 };
      throw err;
    }
    const entries: T[] = [];
    let corrupt = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        entries.push(JSON.parse(line) as T);
      } catch {
        // A torn last line (crash mid-append) or damage: counted, not fatal.
        corrupt++;
      }
    }
    return { entries, corrupt };
  }

  /** Atomically replaces the file's content with `entries` (removing it when empty). */
  async replace(entries: readonly T[]): Promise<void> {
    if (entries.length === 0) {
      await rm(this.path, { force: true });
      this.bytes = 0;
      return;
    }
    const text = entries.map((e) => `${JSON.stringify(e)}\n`).join('');
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, this.path);
    this.bytes = Buffer.byteLength(text);
  }
}
