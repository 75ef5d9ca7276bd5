/**
 * Revocations of the memory engine (one process; shared by the nodes of one MemoryBrokerBus). Bounded:
 * expired entries go first; when `maxEntries` unexpired ones are held, a new revocation is refused
 * (UNAVAILABLE) rather than silently forgetting an older one.
 */
import { ApiXError } from '@apix/protocol';
import type { Clock } from '../clock.ts';
import type { Principal } from './principal.ts';
import type { RevocationStore, StoredRevocation } from './revocation-store.ts';

export class MemoryRevocationStore implements RevocationStore {
  /** `t:<org>/<jti>` or `u:<org>/<user>` -> notBefore (users) and expiry. */
  private readonly entries = new Map<string, { notBefore: number; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 100_000,
  ) {}

  async revoke(r: StoredRevocation): Promise<void> {
    const now = this.clock.now();
    if (r.expiresAt <= now) return;
    const key = r.kind === 'token' ? `t:${r.orgId}/${r.jti}` : `u:${r.orgId}/${r.userId}`;
    if (!this.entries.has(key) && this.entries.size >= this.maxEntries) {
      for (const [k, v] of this.entries) if (v.expiresAt <= now) this.entries.delete(k);
      if (this.entries.size >= this.maxEntries)
        throw new ApiXError('UNAVAILABLE', `too many revocations held (${this.maxEntries})`);
    }
    const prev = this.entries.get(key);
    const notBefore = r.kind === 'user' ? Math.max(r.notBefore, prev?.notBefore ?? 0) : 0;
    this.entries.set(key, { notBefore, expiresAt: Math.max(r.expiresAt, prev?.expiresAt ?? 0) });
  }

  async isRevoked(p: Principal): Promise<boolean> {
    if (p.kind !== 'jwt') return false;
    const now = this.clock.now();
    if (p.tokenId !== undefined) {
      const t = this.entries.get(`t:${p.orgId}/${p.tokenId}`);
      if (t !== undefined && t.expiresAt > now) return true;
    }
    const u = this.entries.get(`u:${p.orgId}/${p.userId}`);
    return u !== undefined && u.expiresAt > now && (p.issuedAt ?? 0) < u.notBefore;
  }

  get size(): number {
    return this.entries.size;
  }
}
