/**
 * Revocations in Redis: `rev:token:{<org>/<jti>}` and `rev:user:{<org>/<user>}` (value: notBefore in
 * seconds), each with PX until the revocation no longer matters. A check reads both keys at once (two
 * slots in a cluster: two commands, sent together) and gives up after `timeoutMs`; the caller decides what
 * a failed check means (the authenticator lets the connection in and logs it: Redis down is a wider outage).
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { Principal } from './principal.ts';
import type { RedisClient } from '../redis/client.ts';
import { withTimeout } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type { RevocationStore, StoredRevocation } from './revocation-store.ts';

export interface RedisRevocationOptions {
  readonly clock?: Clock;
  /** How long a check may take. Default 500 ms. */
  readonly timeoutMs?: number;
}

export class RedisRevocationStore implements RevocationStore {
  private readonly clock: Clock;
  private readonly timeoutMs: number;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    options: RedisRevocationOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.timeoutMs ?? 500;
  }

  async revoke(r: StoredRevocation): Promise<void> {
    const ttl = Math.ceil(r.expiresAt - this.clock.now());
    if (ttl <= 0) return;
    if (r.kind === 'token') {
      await this.client.set(this.keys.revokedToken(r.orgId, r.jti), '1', 'PX', ttl);
      return;
    }
    await runScript(
      this.client,
      'revoke-user',
      [this.keys.revokedUser(r.orgId, r.userId)],
      [r.notBefore, ttl],
    );
  }

  async isRevoked(p: Principal): Promise<boolean> {
    if (p.kind !== 'jwt') return false;
    const [token, user] = await withTimeout(
      Promise.all([
        p.tokenId === undefined ? null : this.client.get(this.keys.revokedToken(p.orgId, p.tokenId)),
        this.client.get(this.keys.revokedUser(p.orgId, p.userId)),
      ]),
      this.timeoutMs,
    );
    if (token !== null) return true;
    return user !== null && (p.issuedAt ?? 0) < Number(user);
  }
}
