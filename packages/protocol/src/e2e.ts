/**
 * End-to-end encrypted payloads (an extension, docs/protocol.md "End-to-end encryption"): the publisher's
 * SDK encrypts the payload with a key the application holds, and the gateway routes the envelope without
 * being able to read it. Shared by the gateway (which recognizes envelopes to skip payload checks and
 * payload filters) and the SDK (which builds and opens them).
 *
 *   payload:  {"e2e": {"v": 1, "alg": "A256GCM", "kid": "<key id>", "iv": "<base64url 12 bytes>",
 *              "ct": "<base64url ciphertext + 16-byte tag>"}}
 *   metadata: {"e2e": 1, ...}
 */

/** The envelope version, also the value of `metadata.e2e`. */
export const E2E_VERSION = 1;
export const E2E_ALGORITHM = 'A256GCM';

export interface E2eEnvelope {
  readonly v: 1;
  readonly alg: 'A256GCM';
  /** The application's key id (for rotation: the receiver picks the key by it). */
  readonly kid: string;
  readonly iv: string;
  readonly ct: string;
}

const B64URL_RE = /^[A-Za-z0-9_-]*$/;

/** Whether `payload` is exactly `{e2e: <envelope>}`. */
export function isE2ePayload(payload: unknown): payload is { e2e: E2eEnvelope } {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return false;
  const keys = Object.keys(payload);
  if (keys.length !== 1 || keys[0] !== 'e2e') return false;
  const e = (payload as { e2e: unknown }).e2e;
  if (typeof e !== 'object' || e === null) return false;
  const env = e as Record<string, unknown>;
  return (
    env.v === E2E_VERSION &&
    env.alg === E2E_ALGORITHM &&
    typeof env.kid === 'string' &&
    env.kid.length > 0 &&
    env.kid.length <= 128 &&
    typeof env.iv === 'string' &&
    B64URL_RE.test(env.iv) &&
    typeof env.ct === 'string' &&
    B64URL_RE.test(env.ct)
  );
}

/** Whether a publish's metadata marks its payload as end-to-end encrypted. */
export function isE2eMarked(metadata: unknown): boolean {
  return (
    typeof metadata === 'object' && metadata !== null && (metadata as { e2e?: unknown }).e2e === E2E_VERSION
  );
}
