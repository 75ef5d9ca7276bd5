/**
 * Shape bounds of client JSON, checked at the edge after the frame is parsed and before anything keeps or
 * walks the value again: nesting depth, and members of one object or array ("width"). A frame of 1 MB can
 * hold 300,000 empty arrays or a nesting of 500,000 levels; each becomes a JavaScript object that the
 * session, the records and the audit trail would keep, copy or stringify. The walk is iterative (no
 * recursion, so no stack overflow on deep input) and stops at the first bound crossed.
 */

export interface JsonShapeBounds {
  /** Greatest nesting depth: a scalar is depth 0, `{}` and `[]` depth 1, `{"a":[]}` depth 2. */
  readonly maxDepth: number;
  /** Most members of one object or array. */
  readonly maxWidth: number;
}

/** Why a value is out of bounds (for the error message), or undefined when it is within them. */
export function jsonShapeError(value: unknown, bounds: JsonShapeBounds, what: string): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const stack: Array<{ readonly v: object; readonly depth: number }> = [{ v: value, depth: 1 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (depth > bounds.maxDepth) return `${what} is nested deeper than ${bounds.maxDepth} levels`;
    const members = Array.isArray(v) ? (v as unknown[]) : Object.values(v);
    if (members.length > bounds.maxWidth)
      return `${what} has an object or array of more than ${bounds.maxWidth} members`;
    for (const m of members) if (m !== null && typeof m === 'object') stack.push({ v: m, depth: depth + 1 });
  }
  return undefined;
}

export interface MetadataBounds {
  /** Bytes of its JSON text (UTF-16 code units, as JSON.stringify gives them; 0: no metadata allowed). */
  readonly maxBytes: number;
  readonly maxDepth: number;
  /** Members of one object or array, and so also top-level keys. */
  readonly maxKeys: number;
}

/** Checks `connect.metadata`; the reason it is refused, or undefined. */
export function metadataError(metadata: unknown, bounds: MetadataBounds): string | undefined {
  if (metadata === undefined) return undefined;
  const shape = jsonShapeError(
    metadata,
    { maxDepth: bounds.maxDepth, maxWidth: bounds.maxKeys },
    'connect.metadata',
  );
  if (shape !== undefined) return shape;
  const bytes = JSON.stringify(metadata).length;
  if (bytes > bounds.maxBytes) return `connect.metadata is over ${bounds.maxBytes} bytes (${bytes})`;
  return undefined;
}
