/**
 * Event ids: `<ms>-<seq>`, the format of Redis Stream ids, used by every engine so that ids compare the
 * same way everywhere. Ordered within a channel; compared numerically (never as strings).
 */
import { InternalError } from './internal-errors.ts';

export interface EventIdParts {
  readonly ms: number;
  readonly seq: number;
}

const ID_RE = /^(\d{1,16})-(\d{1,16})$/;

export function parseEventId(id: string): EventIdParts | undefined {
  const m = ID_RE.exec(id);
  if (!m) return undefined;
  const ms = Number(m[1]);
  const seq = Number(m[2]);
  if (!Number.isSafeInteger(ms) || !Number.isSafeInteger(seq)) return undefined;
  return { ms, seq };
}

export function isEventId(id: unknown): id is string {
  return typeof id === 'string' && parseEventId(id) !== undefined;
}

/** -1, 0 or 1; both ids must be valid. */
export function compareEventIds(a: string, b: string): number {
  const pa = parseEventId(a);
  const pb = parseEventId(b);
  if (!pa || !pb) throw new InternalError('APIX_ERR_INVALID_ARGUMENT', `invalid event id: ${!pa ? a : b}`);
  if (pa.ms !== pb.ms) return pa.ms < pb.ms ? -1 : 1;
  if (pa.seq !== pb.seq) return pa.seq < pb.seq ? -1 : 1;
  return 0;
}

export function formatEventId(ms: number, seq: number): string {
  return `${ms}-${seq}`;
}
