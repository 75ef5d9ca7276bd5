/**
 * API keys authenticate services. Keys look like `apix_<keyId>_<secret>`; only a hash of the secret is
 * stored. Implementations: static keys from config (StaticApiKeyStore) and the database (store/).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isValidOrgId } from '@apix/protocol/channels';
import { InternalError } from '@apix/protocol/internal-errors';

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

/**
 * Keys from `APIX_API_KEYS`, each `org:key[:scopes]`: the organization, the key (`apix_...`, which has no
 * `:`), then everything after the second `:` is the scope list, so scopes that contain `:` stay whole
 * (`acme:apix_t_x:publish:tool` has the one scope `publish:tool`). Scopes are separated by `|` or `+`
 * (`acme:apix_t_x:publish:tool|history`); none given: `*`.
 */
export function parseStaticApiKey(
  entry: string,
  index: number,
): { orgId: string; key: string; scopes: string[] } {
  const where = `APIX_API_KEYS entry ${index + 1}`;
  const first = entry.indexOf(':');
  const second = first === -1 ? -1 : entry.indexOf(':', first + 1);
  const orgId = first === -1 ? entry : entry.slice(0, first);
  const key = first === -1 ? '' : second === -1 ? entry.slice(first + 1) : entry.slice(first + 1, second);
  const scopeText = second === -1 ? undefined : entry.slice(second + 1);
  if (!orgId || !key)
    throw new InternalError('APIX_ERR_INVALID_SETTING', `${where} must be org:key[:scopes]`);
  if (!isValidOrgId(orgId))
    throw new InternalError(
      'APIX_ERR_INVALID_SETTING',
      `${where}: the organization must match [A-Za-z0-9_-]{1,64} and not be "_"`,
    );
  if (!looksLikeApiKey(key))
    throw new InternalError('APIX_ERR_INVALID_SETTING', `${where}: the key must start with apix_`);
  const scopes = scopeText === undefined ? ['*'] : scopeText.split(/[|+]/).filter(Boolean);
  if (scopes.length === 0)
    throw new InternalError('APIX_ERR_INVALID_SETTING', `${where}: the scope list is empty`);
  return { orgId, key, scopes };
}

export class StaticApiKeyStore implements ApiKeyStore {
  private readonly byHash = new Map<string, ApiKeyRecord>();
  constructor(entries: readonly string[]) {
    for (const [i, entry] of entries.entries()) {
      const { orgId, key, scopes } = parseStaticApiKey(entry, i);
      this.byHash.set(hashApiKey(key), { keyId: `static-${i + 1}`, orgId, scopes });
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
