/**
 * Encryption at rest for channels configured `encrypted`: what the gateway stores of their events (history,
 * offline queues, ApiXEvent records, dead letters) is AES-256-GCM ciphertext under a per-organization key.
 *
 * - Keys: a keyring of master keys by version (`APIX_ENCRYPTION_KEYS`); new writes use the active one,
 *   reads take the version written beside the ciphertext, so rotating (adding a newer version) keeps every
 *   older entry readable as long as its version stays in the keyring.
 * - Per-organization data keys: HKDF-SHA256(master, salt "apix/at-rest/v1", info "<orgId>\0<version>"),
 *   derived once and cached.
 * - Envelope (a "box"): `{k: version, iv: 12 random bytes (base64), at, ct: ciphertext + 16-byte tag
 *   (base64)}`. The additional authenticated data binds the organization and the channel key, so a box
 *   moved to another organization's or channel's storage fails to open.
 * - A stored frame is sealed without its event id (Redis gives the id inside the publish script, after
 *   encryption): `at` is where the id goes back in, and is authenticated too.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { ApiXError } from '@apix/protocol/errors';
import { InternalError } from '@apix/protocol/internal-errors';

export interface EncryptionKey {
  /** A positive integer; the highest is the newest. */
  readonly version: number;
  /** 32 bytes of master key. */
  readonly key: Uint8Array;
}

export interface Keyring {
  readonly keys: readonly EncryptionKey[];
  /** The version new writes use. */
  readonly active: number;
}

/** An AES-256-GCM envelope as stored (plain JSON data). */
export interface SealedBox {
  /** Master key version. */
  readonly k: number;
  /** 12-byte IV, base64. */
  readonly iv: string;
  /** Offset in the plaintext where the event id is spliced back in (0 when none). */
  readonly at: number;
  /** Ciphertext followed by the 16-byte GCM tag, base64. */
  readonly ct: string;
}

const SALT = Buffer.from('apix/at-rest/v1');
const MAX_CACHED_KEYS = 10_000;
/** What a sealed frame starts with; plain frames start with `{"type":`. */
export const SEALED_FRAME_PREFIX = '{"sealed":';

/** The organization part of a channel engine key (`acme/agent:a1` -> `acme`; `_/system:x` -> `_`). */
export function orgOfChannelKey(channelKey: string): string {
  const slash = channelKey.indexOf('/');
  return slash === -1 ? '' : channelKey.slice(0, slash);
}

export class AtRestCipher {
  private readonly masters = new Map<number, Buffer>();
  private readonly dataKeys = new Map<string, Buffer>();
  readonly active: number;

  constructor(keyring: Keyring) {
    for (const { version, key } of keyring.keys) {
      if (!Number.isInteger(version) || version < 1)
        throw new InternalError('APIX_ERR_KEYRING', `key version ${version} is not a positive integer`);
      if (key.length !== 32)
        throw new InternalError('APIX_ERR_KEYRING', `key version ${version} is not 32 bytes`);
      if (this.masters.has(version))
        throw new InternalError('APIX_ERR_KEYRING', `key version ${version} is listed twice`);
      this.masters.set(version, Buffer.from(key));
    }
    if (!this.masters.has(keyring.active))
      throw new InternalError(
        'APIX_ERR_KEYRING',
        `active key version ${keyring.active} is not in the keyring`,
      );
    this.active = keyring.active;
  }

  /** Versions in the keyring, ascending. */
  get versions(): number[] {
    return [...this.masters.keys()].sort((a, b) => a - b);
  }

  /** Encrypts `plaintext` for the channel with the active key; `at` is authenticated with it. */
  seal(channelKey: string, plaintext: string, at = 0): SealedBox {
    const org = orgOfChannelKey(channelKey);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.dataKey(this.active, org), iv);
    cipher.setAAD(aad(org, channelKey, at));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { k: this.active, iv: iv.toString('base64'), at, ct: ct.toString('base64') };
  }

  /**
   * Decrypts a box of the channel. Throws an ApiXError (INTERNAL) naming the cause: a key version not in the
   * keyring, a malformed box, or a failed authentication (tampered, or another organization's or channel's).
   */
  open(channelKey: string, box: SealedBox): string {
    if (!isSealedBox(box)) throw new ApiXError('INTERNAL', `malformed encrypted entry in ${channelKey}`);
    if (!this.masters.has(box.k))
      throw new ApiXError(
        'INTERNAL',
        `encrypted entry in ${channelKey} uses key version ${box.k}, which is not in APIX_ENCRYPTION_KEYS`,
      );
    const org = orgOfChannelKey(channelKey);
    const iv = Buffer.from(box.iv, 'base64');
    const data = Buffer.from(box.ct, 'base64');
    if (iv.length !== 12 || data.length < 16)
      throw new ApiXError('INTERNAL', `malformed encrypted entry in ${channelKey}`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.dataKey(box.k, org), iv);
      decipher.setAAD(aad(org, channelKey, box.at));
      decipher.setAuthTag(data.subarray(data.length - 16));
      return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString(
        'utf8',
      );
    } catch (err) {
      throw new ApiXError(
        'INTERNAL',
        `encrypted entry in ${channelKey} failed authentication (tampered, or written for another organization or channel)`,
        { cause: err },
      );
    }
  }

  /** Seals a frame given as the text before and after its event id. */
  sealFrame(channelKey: string, before: string, after: string): SealedBox {
    return this.seal(channelKey, before + after, before.length);
  }

  /** Opens a sealed frame and puts its event id back. */
  openFrame(channelKey: string, box: SealedBox, id: string): string {
    const text = this.open(channelKey, box);
    const at = Math.min(Math.max(0, box.at), text.length);
    return text.slice(0, at) + id + text.slice(at);
  }

  private dataKey(version: number, org: string): Buffer {
    const cacheKey = `${version}\0${org}`;
    let key = this.dataKeys.get(cacheKey);
    if (key === undefined) {
      const master = this.masters.get(version)!;
      key = Buffer.from(hkdfSync('sha256', master, SALT, Buffer.from(`${org}\0${version}`, 'utf8'), 32));
      if (this.dataKeys.size >= MAX_CACHED_KEYS) this.dataKeys.clear();
      this.dataKeys.set(cacheKey, key);
    }
    return key;
  }
}

function aad(org: string, channelKey: string, at: number): Buffer {
  return Buffer.from(`apix/at-rest/v1\0${org}\0${channelKey}\0${at}`, 'utf8');
}

export function isSealedBox(value: unknown): value is SealedBox {
  if (typeof value !== 'object' || value === null) return false;
  const b = value as Record<string, unknown>;
  return (
    typeof b.k === 'number' &&
    typeof b.iv === 'string' &&
    typeof b.ct === 'string' &&
    typeof b.at === 'number' &&
    Number.isInteger(b.at) &&
    b.at >= 0
  );
}

// ---------------------------------------------------------------- sealed frames

/** The stored text of a sealed frame: the box, then the event id (last, so a broker can splice it in). */
export function sealedFrameText(box: SealedBox, id: string): string {
  return `${SEALED_FRAME_PREFIX}${JSON.stringify(box)},"id":"${id}"}`;
}

export function isSealedFrame(frame: string): boolean {
  return frame.startsWith(SEALED_FRAME_PREFIX);
}

/** Opens a stored frame if it is sealed; a plain frame is returned as it is. */
export function openStoredFrame(cipher: AtRestCipher | undefined, channelKey: string, frame: string): string {
  if (!isSealedFrame(frame)) return frame;
  if (cipher === undefined)
    throw new ApiXError(
      'INTERNAL',
      `${channelKey} holds encrypted entries, but no encryption keys are configured (APIX_ENCRYPTION_KEYS)`,
    );
  let parsed: { sealed?: unknown; id?: unknown };
  try {
    parsed = JSON.parse(frame) as { sealed?: unknown; id?: unknown };
  } catch {
    throw new ApiXError('INTERNAL', `malformed encrypted entry in ${channelKey}`);
  }
  if (!isSealedBox(parsed.sealed) || typeof parsed.id !== 'string')
    throw new ApiXError('INTERNAL', `malformed encrypted entry in ${channelKey}`);
  return cipher.openFrame(channelKey, parsed.sealed, parsed.id);
}

/**
 * The `payload` column of an ApiXEvent (or ApiXDeadLetter) row of an encrypted channel: the event's sealed
 * frame (the same ciphertext as in history: encrypted once per event), as `{sealed: box}`.
 */
export function sealedRecordPayload(frame: string): { sealed: SealedBox } | undefined {
  if (!isSealedFrame(frame)) return undefined;
  try {
    const parsed = JSON.parse(frame) as { sealed?: unknown };
    return isSealedBox(parsed.sealed) ? { sealed: parsed.sealed } : undefined;
  } catch {
    return undefined;
  }
}

/** The box of a record's `payload` column when it is sealed (`{sealed: box}`), else undefined. */
export function sealedBoxOfRecordPayload(payload: unknown): SealedBox | undefined {
  if (typeof payload !== 'object' || payload === null || !('sealed' in payload)) return undefined;
  const box = (payload as { sealed: unknown }).sealed;
  return isSealedBox(box) ? box : undefined;
}

/** The plaintext payload of a record's `payload` column (as is when it is not sealed). */
export function openRecordPayload(
  cipher: AtRestCipher | undefined,
  channelKey: string,
  eventId: string,
  payload: unknown,
): unknown {
  const box = sealedBoxOfRecordPayload(payload);
  if (box === undefined) return payload;
  if (cipher === undefined)
    throw new ApiXError(
      'INTERNAL',
      `${channelKey} holds encrypted records, but no encryption keys are configured (APIX_ENCRYPTION_KEYS)`,
    );
  const frame = JSON.parse(cipher.openFrame(channelKey, box, eventId)) as { payload?: unknown };
  return frame.payload ?? null;
}
