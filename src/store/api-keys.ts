/**
 * API keys in the database. `ApiKeys` manages them (create prints the key once; only its sha256 is
 * stored); `PrismaApiKeyStore` verifies them for the gateway with a short in-memory cache (valid and
 * invalid answers alike, so a flood of bad keys does not reach the database) and records `lastUsedAt`
 * in batches, at most one write per key per flush.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, ApiKeyStore } from '../auth/api-keys.ts';
import { hashApiKey, looksLikeApiKey } from '../auth/api-keys.ts';
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { ApiKey } from '../generated/prisma/client.ts';
import type { PrismaClient } from './database.ts';

const KEY_RE = /^apix_([a-z0-9]{8,32})_([A-Za-z0-9_-]{16,128})$/;

/** The key id inside `apix_<keyId>_<secret>`, or undefined when the string is not shaped like a key. */
export function apiKeyId(key: string): string | undefined {
  return KEY_RE.exec(key)?.[1];
}

export interface CreatedApiKey {
  /** The full key; shown once, never stored. */
  readonly key: string;
  readonly record: ApiKey;
}

/** The key's row without the hash: what listing commands print. */
export type ApiKeyInfo = Omit<ApiKey, 'hash'>;

export class ApiKeys {
  constructor(private readonly prisma: PrismaClient) {}

  /** Creates a key for the organization (creating the organization if needed). */
  async create(
    orgId: string,
    options: { scopes?: readonly string[]; name?: string; createdBy?: string } = {},
  ) {
    const keyId = randomBytes(6).toString('hex');
    const key = `apix_${keyId}_${randomBytes(32).toString('base64url')}`;
    const record = await this.prisma.apiKey.create({
      data: {
        id: keyId,
        hash: hashApiKey(key),
        scopes: [...(options.scopes ?? ['*'])],
        name: options.name ?? null,
        createdBy: options.createdBy ?? null,
        organization: { connectOrCreate: { where: { id: orgId }, create: { id: orgId } } },
      },
    });
    return { key, record } satisfies CreatedApiKey;
  }

  list(orgId: string, options: { includeRevoked?: boolean } = {}): Promise<ApiKeyInfo[]> {
    return this.prisma.apiKey.findMany({
      where: { organizationId: orgId, ...(options.includeRevoked ? {} : { revokedAt: null }) },
      omit: { hash: true },
      orderBy: { createdAt: 'asc' },
    });
  }

  /** Revokes the key; false when the organization has no such active key. */
  async revoke(orgId: string, keyId: string, at: Date = new Date()): Promise<boolean> {
    const r = await this.prisma.apiKey.updateMany({
      where: { id: keyId, organizationId: orgId, revokedAt: null },
      data: { revokedAt: at },
    });
    return r.count > 0;
  }
}

export interface PrismaApiKeyStoreOptions {
  readonly clock?: Clock;
  /** How long an answer is reused (default 5 s): the longest a revoked key keeps working. */
  readonly cacheMs?: number;
  readonly maxCacheEntries?: number;
}

export class PrismaApiKeyStore implements ApiKeyStore {
  private readonly cache = new Map<string, { record: ApiKeyRecord | undefined; expiresAt: number }>();
  private lastUsed = new Map<string, number>();
  /** Keys revoked by another process (a control message), refused until their cached answers are gone. */
  private readonly revokedIds = new Map<string, number>();
  private readonly clock: Clock;
  private readonly cacheMs: number;
  private readonly maxCacheEntries: number;

  constructor(
    private readonly prisma: PrismaClient,
    options: PrismaApiKeyStoreOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.cacheMs = options.cacheMs ?? 5_000;
    this.maxCacheEntries = options.maxCacheEntries ?? 10_000;
  }

  get pendingCount(): number {
    return this.lastUsed.size;
  }

  async verify(key: string): Promise<ApiKeyRecord | undefined> {
    if (!looksLikeApiKey(key) || apiKeyId(key) === undefined) return undefined;
    const hash = hashApiKey(key);
    const now = this.clock.now();
    let hit = this.cache.get(hash);
    if (!hit || hit.expiresAt <= now) {
      hit = { record: await this.load(hash), expiresAt: now + this.cacheMs };
      // Bounded: a flood of distinct bad keys costs one clear, not unbounded memory.
      if (this.cache.size >= this.maxCacheEntries) this.cache.clear();
      this.cache.set(hash, hit);
    }
    // Checked after the load, with no await after it: a load that raced a revocation is not believed.
    if (hit.record && (this.revokedIds.get(hit.record.keyId) ?? 0) > this.clock.now()) return undefined;
    if (hit.record) this.lastUsed.set(hit.record.keyId, now);
    return hit.record;
  }

  /** The key was revoked (here or by another process): its cached answers go, now. */
  forget(keyId: string): void {
    for (const [hash, hit] of this.cache) if (hit.record?.keyId === keyId) this.cache.delete(hash);
    this.revokedIds.delete(keyId);
    this.revokedIds.set(keyId, this.clock.now() + Math.max(10_000, 2 * this.cacheMs));
    if (this.revokedIds.size > this.maxCacheEntries)
      this.revokedIds.delete(this.revokedIds.keys().next().value as string);
  }

  /** Forgets cached answers (after a revoke in this process). */
  invalidate(): void {
    this.cache.clear();
  }

  /** Writes the batched `lastUsedAt` values (one statement). */
  async flush(): Promise<void> {
    if (this.lastUsed.size === 0) return;
    const batch = this.lastUsed;
    this.lastUsed = new Map();
    try {
      await this.prisma.$executeRawUnsafe(
        `UPDATE "ApiKey" AS k SET "lastUsedAt" = GREATEST(COALESCE(k."lastUsedAt", r."at"), r."at")
         FROM jsonb_to_recordset($1::jsonb) AS r("id" text, "at" timestamp(3)) WHERE k."id" = r."id"`,
        JSON.stringify([...batch].map(([id, at]) => ({ id, at: new Date(at).toISOString() }))),
      );
    } catch (err) {
      for (const [id, at] of batch) if (!this.lastUsed.has(id)) this.lastUsed.set(id, at);
      throw err;
    }
  }

  private async load(hash: string): Promise<ApiKeyRecord | undefined> {
    const row = await this.prisma.apiKey.findUnique({
      where: { hash },
      select: { id: true, hash: true, organizationId: true, scopes: true, revokedAt: true },
    });
    if (!row || row.revokedAt !== null) return undefined;
    if (!timingSafeEqual(Buffer.from(row.hash), Buffer.from(hash))) return undefined;
    return { keyId: row.id, orgId: row.organizationId, scopes: row.scopes };
  }
}
