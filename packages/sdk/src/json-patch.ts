/**
 * JSON Patch (RFC 6902) applied to a copy: add, remove, replace, move, copy, test. Used by the AG-UI
 * adaptor to fold `STATE_DELTA`s into the state, so that a late joiner gets one `STATE_SNAPSHOT`.
 */
import { ApiXError, ErrorCode } from '@apix/protocol/errors';

export type JsonPatchOperation =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

type Container = Record<string, unknown> | unknown[];

function tokens(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw bad(`not a JSON pointer: ${pointer}`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function bad(message: string): ApiXError {
  return new ApiXError(ErrorCode.BAD_REQUEST, `JSON Patch: ${message}`);
}

/** The parent container of `path` and the last token; throws when a step is missing. */
function parentOf(doc: unknown, path: string[]): { parent: Container; key: string } {
  let node = doc;
  for (const t of path.slice(0, -1)) {
    if (typeof node !== 'object' || node === null) throw bad(`no ${t} in the path`);
    node = (node as Record<string, unknown>)[t];
  }
  if (typeof node !== 'object' || node === null) throw bad('the parent is not a container');
  return { parent: node as Container, key: path[path.length - 1] as string };
}

function get(doc: unknown, pointer: string): unknown {
  let node = doc;
  for (const t of tokens(pointer)) {
    if (typeof node !== 'object' || node === null || !(t in node)) throw bad(`nothing at ${pointer}`);
    node = (node as Record<string, unknown>)[t];
  }
  return node;
}

function index(arr: unknown[], key: string, allowEnd: boolean): number {
  const i = key === '-' && allowEnd ? arr.length : Number(key);
  if (!Number.isInteger(i) || i < 0 || i > arr.length || (!allowEnd && i === arr.length))
    throw bad(`bad array index ${key}`);
  return i;
}

function add(doc: unknown, pointer: string, value: unknown): unknown {
  const path = tokens(pointer);
  if (path.length === 0) return value;
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) parent.splice(index(parent, key, true), 0, value);
  else parent[key] = value;
  return doc;
}

function remove(doc: unknown, pointer: string): unknown {
  const path = tokens(pointer);
  if (path.length === 0) return undefined;
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) parent.splice(index(parent, key, false), 1);
  else if (key in parent) delete parent[key];
  else throw bad(`nothing at ${pointer}`);
  return doc;
}

/** The document after `ops` (the input is not changed); throws BAD_REQUEST on a bad operation or failed test. */
export function applyJsonPatch(document: unknown, ops: readonly JsonPatchOperation[]): unknown {
  let doc: unknown = structuredClone(document);
  for (const op of ops) {
    switch (op.op) {
      case 'add':
        doc = add(doc, op.path, structuredClone(op.value));
        break;
      case 'remove':
        doc = remove(doc, op.path);
        break;
      case 'replace':
        get(doc, op.path);
        doc = add(remove(doc, op.path), op.path, structuredClone(op.value));
        break;
      case 'move': {
        const value = get(doc, op.from);
        doc = add(remove(doc, op.from), op.path, value);
        break;
      }
      case 'copy':
        doc = add(doc, op.path, structuredClone(get(doc, op.from)));
        break;
      case 'test':
        if (JSON.stringify(get(doc, op.path)) !== JSON.stringify(op.value))
          throw bad(`test failed at ${op.path}`);
        break;
      default:
        throw bad(`unknown operation ${(op as { op: string }).op}`);
    }
  }
  return doc;
}
