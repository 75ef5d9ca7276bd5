/**
 * Opening the embedded PGlite: its directory lock, then its thread. Kept apart from database.ts (which loads
 * Prisma) so that `apix serve` can start the engine first, before it loads the rest of the gateway: PGlite's
 * start (about a second, more on a busy machine) then runs on its thread while the main thread loads and
 * wires the modules, instead of after them (`prestartEmbedded`; createDatabase takes the started engine).
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PGliteThread } from './pglite-thread.ts';
import { acquireDirLock } from './dir-lock.ts';
import { seedFromTemplate } from './embedded-template.ts';

/** The embedded database is open in another process (or already in this one). */
export { DataDirInUseError as DatabaseInUseError } from './dir-lock.ts';

export interface EmbeddedEngine {
  readonly dir: string;
  readonly engine: PGliteThread;
  releaseLock(): void;
  /** Who is told when the thread stops without close() (set by whoever takes the engine). */
  onStop: ((err: Error) => void) | undefined;
  /** Who is told when the engine shuts down for idleness and starts again (set by whoever takes it). */
  onIdle: ((state: 'suspended' | 'resumed') => void) | undefined;
}

/** Locks `<dataDir>/pgdata` and opens PGlite in it on its own thread. */
export interface EmbeddedOptions {
  readonly sharedBuffersMb?: number | undefined;
  /** See PGliteThreadOptions.idleCloseMs. */
  readonly idleCloseMs?: number | undefined;
  /** false: a new database is made by initdb, not copied from the build's template (migration tests). */
  readonly fromTemplate?: boolean | undefined;
}

export async function openEmbedded(dataDir: string, options: EmbeddedOptions = {}): Promise<EmbeddedEngine> {
  const dir = resolve(dataDir, 'pgdata');
  mkdirSync(dir, { recursive: true });
  // PGlite is single-process: a second process opening the same directory would corrupt it.
  const releaseLock = acquireDirLock(
    join(dataDir, 'pgdata.lock'),
    `the embedded database in ${join(dataDir, 'pgdata')}`,
    'stop it, or set DATABASE_URL to share a PostgreSQL database',
  );
  try {
    // A first start copies the build's migrated template instead of running initdb (seconds).
    if (options.fromTemplate !== false) await seedFromTemplate(dir);
  } catch (err) {
    releaseLock();
    throw err;
  }
  const opened: Pick<EmbeddedEngine, 'onStop' | 'onIdle'> = { onStop: undefined, onIdle: undefined };
  try {
    // On a thread of its own: PGlite runs each statement synchronously on the thread that owns it.
    const engine = await PGliteThread.open(
      { dataDir: dir, sharedBuffersMb: options.sharedBuffersMb },
      (err) => opened.onStop?.(err),
      { idleCloseMs: options.idleCloseMs, onIdle: (state) => opened.onIdle?.(state) },
    );
    return Object.assign(opened, { dir, engine, releaseLock });
  } catch (err) {
    releaseLock();
    throw err;
  }
}

let started: { key: string; opening: Promise<EmbeddedEngine> } | undefined;

/**
 * Starts opening the embedded store now, for the next createDatabase with the same directory and buffers to
 * take. At most one is held; a failure is reported by that createDatabase, as if it had opened it itself.
 */
export function prestartEmbedded(dataDir: string, options: EmbeddedOptions = {}): void {
  if (started) return;
  const opening = openEmbedded(dataDir, options);
  opening.catch(() => undefined); // reported to whoever takes it
  started = { key: keyOf(dataDir, options), opening };
}

/** The engine prestartEmbedded began for this directory and buffers, if any (once). */
export function takePrestarted(
  dataDir: string,
  options: EmbeddedOptions = {},
): Promise<EmbeddedEngine> | undefined {
  if (!started || started.key !== keyOf(dataDir, options)) return undefined;
  const { opening } = started;
  started = undefined;
  return opening;
}

/** Closes an engine that was prestarted and never taken (a start that failed before it got there). */
export async function discardPrestarted(): Promise<void> {
  const s = started;
  started = undefined;
  if (!s) return;
  try {
    const e = await s.opening;
    try {
      await e.engine.close();
    } finally {
      e.releaseLock();
    }
  } catch {
    // it never opened: nothing to close
  }
}

function keyOf(dataDir: string, options: EmbeddedOptions): string {
  return `${resolve(dataDir)}\u0000${options.sharedBuffersMb ?? ''}\u0000${options.idleCloseMs ?? ''}`;
}
