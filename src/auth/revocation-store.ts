/**
 * Revoked credentials, shared by every node: a token by its `jti`, every token of a user issued before a
 * moment, and (carried between nodes only; the key store is their truth) an API key. A revocation is
 * stored until it can no longer matter (`expiresAt`, at least the longest token lifetime), checked at
 * `connect`, `auth.refresh` and on HTTP, and broadcast as a control message so that every node cuts the
 * live connections it covers (close 4001) within a second.
 *
 * Implementations: MemoryRevocationStore (one process, or the nodes of one MemoryBrokerBus) and
 * RedisRevocationStore (keys with PX expiry).
 */
import type { ControlMessage } from '../broker/broker.ts';
import type { Principal } from './principal.ts';

/** One token, by its `jti` claim, in one organization. */
export interface TokenRevocation {
  readonly kind: 'token';
  readonly orgId: string;
  readonly jti: string;
  /** Ms since epoch after which the revocation is forgotten (the token has expired by then). */
  readonly expiresAt: number;
}

/** Every token of a user of an organization issued before `notBefore`. */
export interface UserRevocation {
  readonly kind: 'user';
  readonly orgId: string;
  readonly userId: string;
  /** Seconds since epoch (the unit of `iat`): tokens with an `iat` below it, or none, are revoked. */
  readonly notBefore: number;
  readonly expiresAt: number;
}

/** An API key revoked in the key store (`apix keys revoke`): nodes drop it from their caches. */
export interface ApiKeyRevocation {
  readonly kind: 'apiKey';
  readonly orgId: string;
  readonly keyId: string;
}

export type StoredRevocation = TokenRevocation | UserRevocation;
export type Revocation = StoredRevocation | ApiKeyRevocation;

export interface RevocationStore {
  /** Records the revocation until its `expiresAt`; a later one for the same user replaces the earlier. */
  revoke(revocation: StoredRevocation): Promise<void>;
  /** Whether a stored revocation covers this principal (JWTs only; API keys answer false). */
  isRevoked(principal: Principal): Promise<boolean>;
}

/** Whether `revocation` covers the credentials `principal` was authenticated with. */
export function revokes(revocation: Revocation, principal: Principal): boolean {
  if (principal.orgId !== revocation.orgId) return false;
  switch (revocation.kind) {
    case 'apiKey':
      return principal.kind === 'apiKey' && principal.keyId === revocation.keyId;
    case 'token':
      return principal.kind === 'jwt' && principal.tokenId === revocation.jti;
    case 'user':
      return (
        principal.kind === 'jwt' &&
        principal.userId === revocation.userId &&
        (principal.issuedAt ?? 0) < revocation.notBefore
      );
  }
}

/** `notBefore` for "every token issued up to now": tokens issued within this very second are covered too. */
export function notBeforeFor(nowMs: number): number {
  return Math.floor(nowMs / 1000) + 1;
}

export const REVOCATION_CONTROL_KIND = 'credentials.revoked';

/** The control message that carries a revocation to the other nodes. */
export function revocationControlMessage(
  revocation: Revocation,
  from: string,
  reason: string,
): ControlMessage {
  return { kind: REVOCATION_CONTROL_KIND, from, revocation, reason };
}

/** The revocation a control message carries, checked field by field (it crossed the network). */
export function parseRevocationControl(
  msg: ControlMessage,
): { revocation: Revocation; reason: string } | undefined {
  if (msg.kind !== REVOCATION_CONTROL_KIND) return undefined;
  const r = msg.revocation as Record<string, unknown> | null | undefined;
  if (r === null || typeof r !== 'object' || typeof r.orgId !== 'string') return undefined;
  const reason = typeof msg.reason === 'string' ? msg.reason.slice(0, 200) : 'credentials revoked';
  const orgId = r.orgId;
  if (r.kind === 'apiKey' && typeof r.keyId === 'string')
    return { revocation: { kind: 'apiKey', orgId, keyId: r.keyId }, reason };
  if (typeof r.expiresAt !== 'number') return undefined;
  if (r.kind === 'token' && typeof r.jti === 'string')
    return { revocation: { kind: 'token', orgId, jti: r.jti, expiresAt: r.expiresAt }, reason };
  if (r.kind === 'user' && typeof r.userId === 'string' && typeof r.notBefore === 'number')
    return {
      revocation: { kind: 'user', orgId, userId: r.userId, notBefore: r.notBefore, expiresAt: r.expiresAt },
      reason,
    };
  return undefined;
}

/**
 * The revocations this node has heard of (its own and the other nodes' control messages), checked
 * synchronously after the store: a connect whose store read raced a revocation is still refused. Bounded:
 * past `max` entries of a kind the oldest goes (the store stays the truth).
 */
export class HeardRevocations {
  private readonly tokens = new Map<string, number>();
  private readonly users = new Map<string, { notBefore: number; expiresAt: number }>();
  private readonly apiKeys = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly max = 10_000,
    /** How long an API key's revocation is remembered here (its caches' lifetime, with a margin). */
    private readonly apiKeyMemoryMs = 60_000,
  ) {}

  add(revocation: Revocation): void {
    const o = revocation.orgId;
    switch (revocation.kind) {
      case 'token':
        bounded(this.tokens, `${o}/${revocation.jti}`, revocation.expiresAt, this.max);
        return;
      case 'user': {
        const k = `${o}/${revocation.userId}`;
        const prev = this.users.get(k);
        const notBefore = Math.max(prev?.notBefore ?? 0, revocation.notBefore);
        bounded(this.users, k, { notBefore, expiresAt: revocation.expiresAt }, this.max);
        return;
      }
      case 'apiKey':
        bounded(this.apiKeys, `${o}/${revocation.keyId}`, this.now() + this.apiKeyMemoryMs, this.max);
    }
  }

  covers(p: Principal): boolean {
    const now = this.now();
    if (p.kind === 'apiKey') return (this.apiKeys.get(`${p.orgId}/${p.keyId}`) ?? 0) > now;
    if (p.tokenId !== undefined && (this.tokens.get(`${p.orgId}/${p.tokenId}`) ?? 0) > now) return true;
    const u = this.users.get(`${p.orgId}/${p.userId}`);
    return u !== undefined && u.expiresAt > now && (p.issuedAt ?? 0) < u.notBefore;
  }
}

function bounded<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as string);
}
