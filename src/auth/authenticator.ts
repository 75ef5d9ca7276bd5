/**
 * Verifies the credentials of a connection or an HTTP request: a JWT (HS256 with a shared secret;
 * RS256/ES256 from a JWKS URL or a PEM public key) or an API key. Only the algorithms in the allow-list
 * are accepted, and the key is chosen by the token's algorithm family, so an HS256 token "signed" with a
 * public key never verifies. `exp`, `sub` and `org` are required; `iss`/`aud` are checked when configured.
 */
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, errors as joseErrors, importSPKI, jwtVerify } from 'jose';
import type { JWTHeaderParameters, JWTPayload, FlattenedJWSInput, CryptoKey, KeyObject } from 'jose';
import { ApiXError, isValidOrgId } from '@apix/protocol';
import type { Principal } from './principal.ts';
import type { ApiKeyStore } from './api-keys.ts';
import { looksLikeApiKey } from './api-keys.ts';
import type { Revocation, RevocationStore } from './revocation-store.ts';
import { HeardRevocations } from './revocation-store.ts';
import { HmacJwtVerifier } from './hmac-jwt.ts';
import { CLIENT_TYPE_CLAIM, isClientType } from './client-type.ts';

export interface AuthenticatorOptions {
  readonly jwtSecret: string | undefined;
  readonly jwksUrl: string | undefined;
  readonly publicKeyPem: string | undefined;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly algorithms: readonly string[];
  readonly apiKeys: ApiKeyStore;
  /** APIX_PLATFORM_ORGS: organizations whose services may publish to `system:` channels. */
  readonly platformOrgs?: readonly string[];
  /** Revoked tokens (by `jti`, by user); absent: none are checked. */
  readonly revocations?: RevocationStore | undefined;
  /** A revocation check failed (store unreachable): the credentials are let in, and this is told. */
  readonly onRevocationCheckError?: ((err: unknown) => void) | undefined;
  /** Seconds of clock skew tolerated on exp/nbf. */
  readonly clockToleranceSec?: number;
  readonly now?: () => number;
}

const HMAC_ALGS = new Set(['HS256', 'HS384', 'HS512']);
const ASYM_ALGS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]);
const MAX_ROLES = 64;

type KeyResolver = (
  header: JWTHeaderParameters,
  token: FlattenedJWSInput,
) => Promise<CryptoKey | KeyObject | Uint8Array>;

export class Authenticator {
  private readonly secret: Uint8Array | undefined;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  private readonly pemKeys = new Map<string, Promise<CryptoKey>>();
  /**
   * The shared secret imported once per HMAC algorithm: given raw bytes, jose imports a CryptoKey on every
   * verification, which cost about two thirds of a token check (and of the CPU of a connect) here.
   */
  private readonly hmacKeys = new Map<string, Promise<CryptoKey>>();
  /** Plain HS256/384/512 tokens, verified synchronously with node:crypto (same answers as jose). */
  private readonly hmacFast: HmacJwtVerifier | undefined;
  private readonly pem: string | undefined;
  private readonly algorithms: string[];
  /** Revocations this node heard of, checked last and synchronously (no await between it and the caller). */
  private readonly heard: HeardRevocations;

  constructor(private readonly options: AuthenticatorOptions) {
    this.heard = new HeardRevocations(options.now ?? Date.now);
    this.secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : undefined;
    this.jwks = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : undefined;
    const pem = options.publicKeyPem;
    this.pem = pem && !pem.includes('-----BEGIN') ? readFileSync(pem, 'utf8') : pem;
    this.algorithms = options.algorithms.filter(
      (a) => (HMAC_ALGS.has(a) && this.secret) || (ASYM_ALGS.has(a) && (this.jwks || this.pem)),
    );
    this.hmacFast =
      this.secret && this.algorithms.some((a) => HMAC_ALGS.has(a))
        ? new HmacJwtVerifier({
            secret: this.secret,
            algorithms: this.algorithms,
            issuer: options.issuer,
            audience: options.audience,
            clockTolerance: options.clockToleranceSec ?? 2,
          })
        : undefined;
  }

  /** Authenticates a token or API key; throws ApiXError UNAUTHORIZED / TOKEN_EXPIRED. */
  async authenticate(token: string, claimedOrgId?: string): Promise<Principal> {
    const principal = looksLikeApiKey(token) ? await this.verifyApiKey(token) : await this.verifyJwt(token);
    if (claimedOrgId !== undefined && claimedOrgId !== principal.orgId)
      throw new ApiXError('UNAUTHORIZED', 'organizationId does not match the token');
    const store = this.options.revocations;
    if (store && principal.kind === 'jwt') {
      let revoked = false;
      try {
        revoked = await store.isRevoked(principal);
      } catch (err) {
        this.options.onRevocationCheckError?.(err);
      }
      if (revoked) throw new ApiXError('UNAUTHORIZED', 'token revoked');
    }
    // Last, with no await after it: a revocation heard while the store was read still applies.
    if (this.heard.covers(principal))
      throw new ApiXError(
        'UNAUTHORIZED',
        principal.kind === 'jwt' ? 'token revoked' : 'invalid or revoked API key',
      );
    return principal;
  }

  /** A revocation made here or heard from another node: remembered, and a revoked key leaves the caches. */
  noteRevocation(revocation: Revocation): void {
    this.heard.add(revocation);
    if (revocation.kind === 'apiKey') this.options.apiKeys.forget?.(revocation.keyId);
  }

  private async verifyApiKey(key: string): Promise<Principal> {
    const rec = await this.options.apiKeys.verify(key);
    // A key of no valid organization (or of the shared namespace `_`) authenticates nobody.
    if (!rec || !isValidOrgId(rec.orgId)) throw new ApiXError('UNAUTHORIZED', 'invalid or revoked API key');
    return {
      orgId: rec.orgId,
      userId: `apikey:${rec.keyId}`,
      roles: ['service'],
      kind: 'apiKey',
      scopes: rec.scopes,
      isService: true,
      isPlatform: this.isPlatformOrg(rec.orgId),
      expiresAt: undefined,
      keyId: rec.keyId,
    };
  }

  private isPlatformOrg(orgId: string): boolean {
    return this.options.platformOrgs?.includes(orgId) ?? false;
  }

  private readonly resolveKey: KeyResolver = async (header) => {
    const alg = header.alg;
    if (HMAC_ALGS.has(alg)) {
      if (!this.secret) throw new ApiXError('UNAUTHORIZED', `algorithm ${alg} is not accepted`);
      let key = this.hmacKeys.get(alg);
      if (!key) {
        const hash = `SHA-${alg.slice(2)}`;
        key = crypto.subtle.importKey(
          'raw',
          this.secret as Uint8Array<ArrayBuffer>,
          { name: 'HMAC', hash },
          false,
          ['verify'],
        );
        this.hmacKeys.set(alg, key);
      }
      return key;
    }
    if (this.jwks) return this.jwks(header);
    if (this.pem) {
      let key = this.pemKeys.get(alg);
      if (!key) this.pemKeys.set(alg, (key = importSPKI(this.pem, alg)));
      return key;
    }
    throw new ApiXError('UNAUTHORIZED', `algorithm ${alg} is not accepted`);
  };

  private async verifyJwt(token: string): Promise<Principal> {
    if (this.algorithms.length === 0)
      throw new ApiXError('UNAUTHORIZED', 'no JWT verification key is configured');
    let payload: JWTPayload;
    try {
      const currentDate = this.options.now ? new Date(this.options.now()) : undefined;
      // Plain HMAC tokens: node:crypto, synchronously; anything else (and every other alg): jose.
      const fast = this.hmacFast?.verify(token, currentDate);
      if (fast) payload = fast;
      else {
        const r = await jwtVerify(token, this.resolveKey, {
          algorithms: this.algorithms,
          issuer: this.options.issuer,
          audience: this.options.audience,
          requiredClaims: ['exp', 'sub'],
          clockTolerance: this.options.clockToleranceSec ?? 2,
          currentDate,
        });
        payload = r.payload;
      }
    } catch (err) {
      if (err instanceof ApiXError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new ApiXError('TOKEN_EXPIRED', 'token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed)
        throw new ApiXError('UNAUTHORIZED', `token claim "${err.claim}" is invalid: ${err.reason}`);
      if (err instanceof joseErrors.JOSEAlgNotAllowed)
        throw new ApiXError('UNAUTHORIZED', 'token algorithm not allowed');
      if (err instanceof joseErrors.JWSSignatureVerificationFailed)
        throw new ApiXError('UNAUTHORIZED', 'token signature is invalid');
      throw new ApiXError('UNAUTHORIZED', 'token is invalid');
    }
    const { sub, org, roles, jti, iat } = payload as JWTPayload & { org?: unknown; roles?: unknown };
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 200)
      throw new ApiXError('UNAUTHORIZED', 'token "sub" must be a non-empty string');
    if (!isValidOrgId(org))
      throw new ApiXError('UNAUTHORIZED', 'token "org" must match [A-Za-z0-9_-]{1,64} and not be "_"');
    if (
      roles !== undefined &&
      (!Array.isArray(roles) || roles.length > MAX_ROLES || roles.some((r) => typeof r !== 'string'))
    )
      throw new ApiXError('UNAUTHORIZED', 'token "roles" must be an array of strings');
    const roleList = (roles as string[] | undefined) ?? [];
    const clientType = (payload as Record<string, unknown>)[CLIENT_TYPE_CLAIM];
    if (clientType !== undefined && !isClientType(clientType))
      throw new ApiXError(
        'UNAUTHORIZED',
        `token "${CLIENT_TYPE_CLAIM}" must be one of WEB_APP, MOBILE_APP, SDK_WIDGET, API_CLIENT, INTERNAL_SERVICE`,
      );
    return {
      orgId: org,
      userId: sub,
      roles: roleList,
      kind: 'jwt',
      scopes: [],
      isService: roleList.includes('service'),
      isPlatform: roleList.includes('service') && this.isPlatformOrg(org),
      expiresAt: payload.exp,
      keyId: undefined,
      tokenId: typeof jti === 'string' && jti.length > 0 && jti.length <= 256 ? jti : undefined,
      issuedAt: typeof iat === 'number' && Number.isFinite(iat) ? iat : undefined,
      clientType,
    };
  }
}
