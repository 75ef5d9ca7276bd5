/**
 * A synchronous fast path for HMAC JWTs (HS256/384/512 with the shared secret) that gives exactly
 * jose's `jwtVerify` answers for the options the Authenticator passes. jose 6 verifies HMAC through
 * WebCrypto (`crypto.subtle.verify`, an async job of 40-100 µs here); node:crypto's `createHmac` +
 * `timingSafeEqual` costs about 10 µs.
 *
 * It decides only plain tokens: three segments of base64url characters (no padding, no whitespace, no
 * length that jose refuses to decode), a protected header that is a JSON object with an allowed HMAC
 * `alg` and no `crit` or `b64`. For everything else `verify` returns undefined and the caller asks jose,
 * so a token jose would decode leniently or refuse with a JWSInvalid is never decided here. Failures
 * throw jose's own error classes, with its messages and (for claims) its `claim` and `reason`, in the
 * order jose checks them (`lib/jws_verify.js`, `lib/jwt_claims_set.js`). Differential-tested against
 * jose in tests/unit/auth/hmac-jwt.test.ts.
 */
import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { errors } from 'jose';
import type { JWTPayload } from 'jose';

export interface HmacJwtOptions {
  /** The shared secret's bytes (as jose gets them). */
  readonly secret: Uint8Array;
  /** The configured allow-list; only its HS256/384/512 members are decided here. */
  readonly algorithms: readonly string[];
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  /** Seconds, as jose's `clockTolerance`. */
  readonly clockTolerance: number;
}

const HASHES = new Map([
  ['HS256', 'sha256'],
  ['HS384', 'sha384'],
  ['HS512', 'sha512'],
]);
/** Three non-empty-header segments of the base64url alphabet only. */
const COMPACT = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)$/;
/** jose's strictDecoder: fatal on malformed UTF-8, and (like jose) a leading BOM is dropped. */
const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const CLAIMS_NOT_OBJECT = 'JWT Claims Set must be a top-level JSON object';

/** jose's isObject (lib/validate.js): a plain object, not an array or a class instance. */
function isObject(input: unknown): input is Record<string, unknown> {
  if (
    typeof input !== 'object' ||
    input === null ||
    Object.prototype.toString.call(input) !== '[object Object]'
  )
    return false;
  const prototype = Object.getPrototypeOf(input) as object | null;
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}

function checkFailed(claimsSet: JWTPayload, claim: string): never {
  throw new errors.JWTClaimValidationFailed(
    `unexpected "${claim}" claim value`,
    claimsSet,
    claim,
    'check_failed',
  );
}

/** jose's validateNumericDate: absent is fine, present must be a number. */
function numericDate(claimsSet: JWTPayload, claim: 'iat' | 'nbf' | 'exp'): number | undefined {
  const value = claimsSet[claim];
  if (value === undefined) return undefined;
  if (typeof value !== 'number')
    throw new errors.JWTClaimValidationFailed(
      `"${claim}" claim must be a number`,
      claimsSet,
      claim,
      'invalid',
    );
  return value;
}

export class HmacJwtVerifier {
  private readonly key: KeyObject;
  private readonly algorithms: ReadonlySet<string>;
  /** jose's presence check order: requiredClaims + aud + iss, reversed, deduplicated. */
  private readonly presence: readonly string[];

  constructor(private readonly options: HmacJwtOptions) {
    this.key = createSecretKey(options.secret);
    this.algorithms = new Set(options.algorithms.filter((a) => HASHES.has(a)));
    const required = ['exp', 'sub'];
    if (options.audience !== undefined) required.push('aud');
    if (options.issuer !== undefined) required.push('iss');
    this.presence = [...new Set(required.reverse())];
  }

  /**
   * The verified claims, or a thrown jose error; undefined when the token is not one this path decides
   * (jose's `jwtVerify` must answer). `currentDate` as jose's option (absent: now).
   */
  verify(token: string, currentDate?: Date): JWTPayload | undefined {
    const m = COMPACT.exec(token);
    if (!m) return undefined;
    const [, h, p, s] = m as unknown as [string, string, string, string];
    // A length of 4n+1 is not base64: jose refuses it (atob), Buffer would silently drop a character.
    if (h.length % 4 === 1 || p.length % 4 === 1 || s.length % 4 === 1) return undefined;
    let header: unknown;
    try {
      header = JSON.parse(strictDecoder.decode(Buffer.from(h, 'base64url')));
    } catch {
      return undefined;
    }
    if (!isObject(header) || Object.hasOwn(header, 'crit') || Object.hasOwn(header, 'b64')) return undefined;
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.algorithms.has(alg)) return undefined;

    const signature = Buffer.from(s, 'base64url');
    const mac = createHmac(HASHES.get(alg)!, this.key)
      .update(token.slice(0, h.length + 1 + p.length), 'latin1')
      .digest();
    if (signature.length !== mac.length || !timingSafeEqual(signature, mac))
      throw new errors.JWSSignatureVerificationFailed();

    let claimsSet: unknown;
    try {
      claimsSet = JSON.parse(strictDecoder.decode(Buffer.from(p, 'base64url')));
    } catch (cause) {
      throw new errors.JWTInvalid(CLAIMS_NOT_OBJECT, { cause });
    }
    if (!isObject(claimsSet)) throw new errors.JWTInvalid(CLAIMS_NOT_OBJECT);
    return this.validateClaims(claimsSet as JWTPayload, currentDate);
  }

  /** jose's validateClaimsSet for { requiredClaims: ['exp','sub'], issuer, audience, clockTolerance, currentDate }. */
  private validateClaims(claimsSet: JWTPayload, currentDate: Date | undefined): JWTPayload {
    for (const claim of this.presence)
      if (!Object.hasOwn(claimsSet, claim))
        throw new errors.JWTClaimValidationFailed(
          `missing required "${claim}" claim`,
          claimsSet,
          claim,
          'missing',
        );
    const { issuer, audience, clockTolerance: tolerance } = this.options;
    if (issuer !== undefined && claimsSet.iss !== issuer) checkFailed(claimsSet, 'iss');
    if (audience !== undefined) {
      const aud = claimsSet.aud as unknown;
      const present =
        typeof aud === 'string' ? aud === audience : Array.isArray(aud) ? aud.includes(audience) : false;
      if (!present) checkFailed(claimsSet, 'aud');
    }
    if (!Number.isFinite(tolerance) || tolerance < 0)
      throw new TypeError('Invalid clockTolerance option input');
    const now = Math.floor((currentDate ?? new Date()).getTime() / 1000);
    if (!Number.isFinite(now)) throw new TypeError('Invalid currentDate option input');
    numericDate(claimsSet, 'iat');
    const nbf = numericDate(claimsSet, 'nbf');
    if (nbf !== undefined && nbf > now + tolerance)
      throw new errors.JWTClaimValidationFailed(
        '"nbf" claim timestamp check failed',
        claimsSet,
        'nbf',
        'check_failed',
      );
    const exp = numericDate(claimsSet, 'exp');
    if (exp !== undefined && exp <= now - tolerance)
      throw new errors.JWTExpired('"exp" claim timestamp check failed', claimsSet, 'exp', 'check_failed');
    return claimsSet;
  }
}
