/**
 * API keys authenticate services. Keys look like `apix_<keyId>_<secret>`; only a hash of the secret is
 * stored. Implementations: static keys from config (StaticApiKeyStore) and the database (store/).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface ApiKeyRecord {
  readonly keyId: string;
  readonly orgId: string;
  readonly scopes: readonly string[];
}

export interface ApiKeyStore {
  /** The key's record if it is valid and not revoked; undefined otherwise. Must be fast (cache). */
  verify(key: string): Promise<ApiKeyRecord | undefined>;
  /** The key was revoked elsewhere (a control message): drop whatever is cached of it. */
  forget?(keyId: string): void;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith('apix_');
}

/** Keys from `APIX_API_KEYS`: `org:key[:scope|scope]`. */
export class StaticApiKeyStore implements ApiKeyStore {
  private readonly byHash = new Map<string, ApiKeyRecord>();
  constructor(entries: readonly string[]) {
    for (const [i, entry] of entries.entries()) {
      const [orgId, key, scopes] = entry.split(':');
      if (!orgId || !key) throw new Error(`APIX_API_KEYS entry ${i + 1} must be org:key[:scopes]`);
      this.byHash.set(hashApiKey(key), {
        keyId: `static-${i + 1}`,
        orgId,
        scopes: scopes ? scopes.split('|').filter(Boolean) : ['*'],
      });
    }
  }
  async verify(key: string): Promise<ApiKeyRecord | undefined> {
    const h = hashApiKey(key);
    const rec = this.byHash.get(h);
    // Constant-time confirm (the map lookup already matched the full hash).
    if (rec && timingSafeEqual(Buffer.from(h), Buffer.from(hashApiKey(key)))) return rec;
    return undefined;
  }
}

/** Tries each store in order. */
export class ChainedApiKeyStore implements ApiKeyStore {
  constructor(private readonly stores: readonly ApiKeyStore[]) {}
  async verify(key: string): Promise<ApiKeyRecord | undefined> {
    for (const s of this.stores) {
      const r = await s.verify(key);
      if (r) return r;
    }
    return undefined;
  }
  forget(keyId: string): void {
    for (const s of this.stores) s.forget?.(keyId);
  }
}
