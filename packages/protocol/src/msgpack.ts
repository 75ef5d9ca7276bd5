/**
 * The MessagePack encoding (subprotocol `apix.v1.msgpack`): one map per binary frame, the same envelope as
 * JSON. Binary values (`Uint8Array`) may appear in `payload`; where the envelope is JSON (the gateway's
 * pipeline, history, JSON subscribers) a binary value is `{"$binary": "<base64>"}`, and it becomes bytes
 * again in every MessagePack frame. Shared by the gateway and the SDK (no Node APIs: atob/btoa).
 */
import { decode, encode, ExtData } from '@msgpack/msgpack';
import { BINARY_JSON_KEY } from './constants.ts';
import { InternalError } from './internal-errors.ts';

/** Deeper than this, a frame is refused before it is walked (the JSON bounds check the rest). */
const MAX_DEPTH = 256;

export function encodeMsgpack(value: unknown): Uint8Array {
  return encode(value);
}

/** Decodes one frame's bytes; throws on malformed MessagePack. Binary values stay `Uint8Array`. */
export function decodeMsgpack(bytes: Uint8Array): unknown {
  return decode(bytes);
}

/** A MessagePack-decoded value with its binary values replaced by their JSON form; throws on extension types. */
export function binaryToJson(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH)
    throw new InternalError('APIX_ERR_INVALID_ARGUMENT', `nested deeper than ${MAX_DEPTH}`);
  if (value instanceof Uint8Array) return { [BINARY_JSON_KEY]: toBase64(value) };
  if (value instanceof ExtData)
    throw new InternalError(
      'APIX_ERR_INVALID_ARGUMENT',
      `MessagePack extension type ${value.type} is not accepted`,
    );
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => binaryToJson(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = binaryToJson(v, depth + 1);
  return out;
}

/** `JSON.parse` reviver: a `{"$binary": "<base64>"}` object becomes its bytes. */
export function reviveBinary(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const encoded = (value as Record<string, unknown>)[BINARY_JSON_KEY];
  if (typeof encoded !== 'string' || Object.keys(value).length !== 1) return value;
  try {
    return fromBase64(encoded);
  } catch {
    return value;
  }
}

/** The MessagePack bytes of an envelope given as JSON text, binary values restored. */
export function msgpackFromJson(text: string): Uint8Array {
  return encode(JSON.parse(text, reviveBinary));
}

const CHUNK = 0x8000;

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += CHUNK)
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
