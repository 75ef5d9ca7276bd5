/**
 * Who is on the other end: the authenticated principal of a connection or an HTTP request, and the peer
 * (address, user agent, origin) it came from. Owned by auth/; the hooks, the gateway, the router and the
 * HTTP API import them from here.
 */
import type { ClientType } from '@apix/protocol';

/** Who is on the other end of a connection or an HTTP request. */
export interface Principal {
  readonly orgId: string;
  /** The JWT's `sub`; for an API key, `apikey:<keyId>`. */
  readonly userId: string;
  readonly roles: readonly string[];
  readonly kind: 'jwt' | 'apiKey';
  /** API-key scopes; empty for JWTs. */
  readonly scopes: readonly string[];
  /** True for API keys and JWTs with the `service` role: may publish to every channel of its organization. */
  readonly isService: boolean;
  /**
   * True for a service of a platform organization (APIX_PLATFORM_ORGS): may publish to the shared `system`
   * channels (so may an API key with the `system` scope). Absent: false.
   */
  readonly isPlatform?: boolean;
  /** Seconds since epoch; undefined for API keys. */
  readonly expiresAt: number | undefined;
  readonly keyId: string | undefined;
  /** The JWT's `jti`, when it has one (revocation by token). */
  readonly tokenId?: string | undefined;
  /** The JWT's `iat` in seconds, when it has one (revocation of a user's tokens issued before a moment). */
  readonly issuedAt?: number | undefined;
  /** The JWT's `client_type` claim, when it has one (see auth/client-type.ts). */
  readonly clientType?: ClientType | undefined;
}

export interface Peer {
  readonly remoteAddress: string | undefined;
  readonly userAgent: string | undefined;
  readonly origin: string | undefined;
}
