/**
 * Subscription filters (`subscribe.filters`, an APIX extension of the seed's `filters` record):
 * `types: string[]` keeps only those event types; any other key keeps events whose payload has that
 * top-level field equal to the given scalar (end-to-end encrypted payloads pass field filters: the
 * receiving SDK applies them once decrypted). Compiled once per subscription; the payload is parsed at
 * most once per event per node, and only when some subscriber filters on payload fields.
 */
import { ApiXError, isE2ePayload } from '@apix/protocol';

export interface FilterInput {
  readonly type: string;
  /** Lazily parsed payload (shared by every subscriber of the event). */
  payload(): unknown;
}

export type EventFilter = (event: FilterInput) => boolean;

const MAX_FILTER_KEYS = 16;

export function compileFilter(filters: Record<string, unknown> | undefined): EventFilter | undefined {
  if (!filters) return undefined;
  const keys = Object.keys(filters);
  if (keys.length === 0) return undefined;
  if (keys.length > MAX_FILTER_KEYS)
    throw new ApiXError('BAD_REQUEST', `filters: at most ${MAX_FILTER_KEYS} keys`);
  let types: Set<string> | undefined;
  const fields: Array<[string, string | number | boolean | null]> = [];
  for (const k of keys) {
    const v = filters[k];
    if (k === 'types') {
      if (!Array.isArray(v) || v.length > 100 || v.some((t) => typeof t !== 'string'))
        throw new ApiXError('BAD_REQUEST', 'filters.types must be an array of event types');
      types = new Set(v as string[]);
    } else if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      fields.push([k, v]);
    } else throw new ApiXError('BAD_REQUEST', `filters.${k} must be a string, number, boolean or null`);
  }
  return (event) => {
    if (types && !types.has(event.type)) return false;
    if (fields.length === 0) return true;
    const p = event.payload();
    if (p === null || typeof p !== 'object') return false;
    // End-to-end encrypted: the gateway cannot read the fields; the SDK applies them after decrypting.
    if (Object.prototype.hasOwnProperty.call(p, 'e2e') && isE2ePayload(p)) return true;
    for (const [k, v] of fields) {
      if (!Object.prototype.hasOwnProperty.call(p, k) || (p as Record<string, unknown>)[k] !== v)
        return false;
    }
    return true;
  };
}
