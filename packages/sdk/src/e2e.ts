/**
 * End-to-end encryption of payloads (docs/sdk.md "End-to-end encryption"): AES-256-GCM through WebCrypto
 * (`globalThis.crypto.subtle`: browsers and Node 20+), with keys only the application holds. The gateway
 * routes and stores the envelope and cannot read it.
 *
 *   payload  {"e2e": {"v": 1, "alg": "A256GCM", "kid": "<key id>", "iv": "<base64url>", "ct": "<base64url>"}}
 *   metadata {"e2e": 1}
 *
 * The additional authenticated data binds the channel, the event type and the key id, so an envelope
 * replayed onto another channel or as another type fails to open.
 */
import { ApiXError, ErrorCode } from '@apix/protocol/errors';
import { E2E_ALGORITHM, E2E_VERSION, isE2ePayload } from '@apix/protocol/e2e';
import type { E2eEnvelope } from '@apix/protocol/e2e';

/** A 256-bit AES key: a WebCrypto AES-GCM `CryptoKey`, or its 32 raw bytes. */
export type E2eKeyMaterial = CryptoKey | Uint8Array;

/** The keys of one channel: every key id the application may receive, and the one it publishes with. */
export interface E2eChannelKeys {
  /** Key id used for new publishes. */
  readonly active: string;
  /** Key id -> key. Keep old ids after a rotation for as long as events encrypted with them may arrive. */
  readonly keys: Readonly<Record<string, E2eKeyMaterial>>;
}

/** Channel name -> its keys (a channel absent here is not encrypted end to end). */
export type E2eKeyMap = Readonly<Record<string, E2eChannelKeys>>;

function subtle(): SubtleCrypto {
  const s = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (!s) throw new ApiXError(ErrorCode.INTERNAL, 'e2e: WebCrypto (crypto.subtle) is not available here');
  return s;
}

function toB64url(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromB64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function aad(channel: string, type: string, kid: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`apix-e2e/1\0${channel}\0${type}\0${kid}`);
}

export class E2eCipher {
  private readonly imported = new WeakMap<Uint8Array, Promise<CryptoKey>>();

  constructor(private readonly keys: E2eKeyMap) {}

  has(channel: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.keys, channel);
  }

  private async key(material: E2eKeyMaterial): Promise<CryptoKey> {
    if (!(material instanceof Uint8Array)) return material;
    let p = this.imported.get(material);
    if (!p) {
      if (material.length !== 32)
        throw new ApiXError(ErrorCode.BAD_REQUEST, 'e2e: a raw key must be 32 bytes');
      p = subtle().importKey('raw', new Uint8Array(material), { name: 'AES-GCM' }, false, [
        'encrypt',
        'decrypt',
      ]);
      this.imported.set(material, p);
    }
    return p;
  }

  /** Encrypts a payload for the channel with its active key. */
  async encrypt(channel: string, type: string, payload: unknown): Promise<{ e2e: E2eEnvelope }> {
    const ring = this.keys[channel];
    const material = ring?.keys[ring.active];
    if (!ring || !material)
      throw new ApiXError(
        ErrorCode.BAD_REQUEST,
        `e2e: no active key for ${channel} (key id "${ring?.active}")`,
      );
    const iv = new Uint8Array(12);
    globalThis.crypto.getRandomValues(iv);
    const plain = encoder.encode(JSON.stringify(payload === undefined ? null : payload));
    const ct = await subtle().encrypt(
      { name: 'AES-GCM', iv, additionalData: aad(channel, type, ring.active) },
      await this.key(material),
      plain,
    );
    return {
      e2e: {
        v: E2E_VERSION,
        alg: E2E_ALGORITHM,
        kid: ring.active,
        iv: toB64url(iv),
        ct: toB64url(new Uint8Array(ct)),
      },
    };
  }

  /**
   * Decrypts an event's envelope. Throws an ApiXError (BAD_REQUEST) when the channel has no key of that id,
   * or the envelope does not authenticate (a wrong key, tampered, or moved from another channel or type).
   */
  async decrypt(channel: string, type: string, payload: unknown): Promise<unknown> {
    if (!isE2ePayload(payload))
      throw new ApiXError(ErrorCode.BAD_REQUEST, `e2e: malformed envelope on ${channel}`);
    const env = payload.e2e;
    const material = this.keys[channel]?.keys[env.kid];
    if (!material)
      throw new ApiXError(ErrorCode.BAD_REQUEST, `e2e: no key "${env.kid}" for ${channel}: cannot decrypt`);
    let plain: ArrayBuffer;
    try {
      plain = await subtle().decrypt(
        { name: 'AES-GCM', iv: fromB64url(env.iv), additionalData: aad(channel, type, env.kid) },
        await this.key(material),
        fromB64url(env.ct),
      );
    } catch {
      throw new ApiXError(
        ErrorCode.BAD_REQUEST,
        `e2e: an event on ${channel} failed to decrypt with key "${env.kid}" (wrong key, or tampered)`,
      );
    }
    return JSON.parse(decoder.decode(plain)) as unknown;
  }
}
