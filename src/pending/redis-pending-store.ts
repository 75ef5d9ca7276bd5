/**
 * Pending entries in Redis (see pending-store.ts).
 *
 * | key | type | what |
 * |---|---|---|
 * | `<prefix>pending:{<sessionKey>}` | hash | field `<channelKey>\n<eventId>` -> entry JSON; `~owner` -> owner JSON; `~deadline` |
 * | `<prefix>pending:deadlines` | zset | session key -> when its entries are dead-lettered unless held (ZADD GT: only ever later) |
 * | `<prefix>pending:sweep` | string (PX) | the sweep lease: the node id holding it |
 *
 * A batch is one pipeline (on a cluster: one per session, whose keys share a slot, plus the zset);
 * `take` is MULTI HGETALL + DEL on the session's hash, so two nodes never both get an entry. Each
 * session hash also expires (PX) a safety margin after its deadline, should no sweep ever run.
 */
import type { RedisClient } from '../redis/client.ts';
import { sortEntries } from './pending-store.ts';
import type {
  PendingBatch,
  PendingEntry,
  PendingOwner,
  PendingStore,
  TakenEntries,
} from './pending-store.ts';

const OWNER_FIELD = '~owner';
/** The session's deadline, beside its entries, so that the sweep's take can check it atomically. */
const DEADLINE_FIELD = '~deadline';
/** A session hash outlives its deadline by this much (the sweep normally takes it first). */
const SAFETY_MS = 3_600_000;

const LEASE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/**
 * One session's part of a batch, atomically: KEYS[1] the session hash; ARGV[1] owner JSON, ARGV[2] the
 * deadline ('' for none: it only ever moves later), ARGV[3] PX of the hash, ARGV[4] how many fields to
 * delete, then those fields, then field/value pairs to set.
 */
const WRITE_SCRIPT = `
local h = KEYS[1]
local ndel = tonumber(ARGV[4])
for i = 5, 4 + ndel do redis.call('HDEL', h, ARGV[i]) end
local first = 5 + ndel
if #ARGV >= first then
  redis.call('HSET', h, '${OWNER_FIELD}', ARGV[1], unpack(ARGV, first))
end
if ARGV[2] ~= '' then
  local d = tonumber(redis.call('HGET', h, '${DEADLINE_FIELD}'))
  if not d or tonumber(ARGV[2]) > d then redis.call('HSET', h, '${OWNER_FIELD}', ARGV[1], '${DEADLINE_FIELD}', ARGV[2]) end
end
if redis.call('EXISTS', h) == 1 and ARGV[3] ~= '' then redis.call('PEXPIRE', h, ARGV[3]) end
return 1`;

/** Takes the session's hash (HGETALL + DEL) unless its deadline is later than ARGV[1]; else nil. */
const TAKE_EXPIRED_SCRIPT = `
local d = tonumber(redis.call('HGET', KEYS[1], '${DEADLINE_FIELD}'))
if d and d > tonumber(ARGV[1]) then return false end
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all`;

export interface RedisPendingStoreOptions {
  readonly prefix: string;
  /** Cluster: one pipeline per session (keys of one pipeline must share a slot). */
  readonly cluster: boolean;
  readonly now?: () => number;
}

export class RedisPendingStore implements PendingStore {
  private readonly now: () => number;
  constructor(
    private readonly client: RedisClient,
    private readonly options: RedisPendingStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  private hash(sessionKey: string): string {
    return `${this.options.prefix}pending:{${escapeTag(sessionKey)}}`;
  }
  private get deadlinesKey(): string {
    return `${this.options.prefix}pending:deadlines`;
  }
  private get leaseKey(): string {
    return `${this.options.prefix}pending:sweep`;
  }

  async write(batch: PendingBatch): Promise<void> {
    type Cmds = { set: string[]; del: string[]; owner: PendingOwner | undefined; at: number | undefined };
    const bySession = new Map<string, Cmds>();
    const of = (k: string): Cmds => {
      let c = bySession.get(k);
      if (!c) bySession.set(k, (c = { set: [], del: [], owner: undefined, at: undefined }));
      return c;
    };
    for (const { owner, entry } of batch.puts) {
      const c = of(owner.sessionKey);
      c.owner = owner;
      c.set.push(`${entry.key}\n${entry.id}`, JSON.stringify(entry));
    }
    for (const r of batch.removes) of(r.sessionKey).del.push(`${r.key}\n${r.id}`);
    for (const { owner, at } of batch.deadlines) {
      const c = of(owner.sessionKey);
      c.owner ??= owner;
      c.at = at;
    }
    const now = this.now();
    const zadd: Array<string | number> = [];
    const fill = (p: ReturnType<RedisClient['pipeline']>, sessionKey: string, c: Cmds) => {
      // Entries and the deadline covering them land together (one script per session).
      p.eval(
        WRITE_SCRIPT,
        1,
        this.hash(sessionKey),
        JSON.stringify(c.owner ?? null),
        c.at === undefined ? '' : String(c.at),
        c.at === undefined ? '' : String(Math.max(1000, c.at - now + SAFETY_MS)),
        c.del.length,
        ...c.del,
        ...c.set,
      );
      if (c.at !== undefined) zadd.push(c.at, sessionKey);
    };
    if (!this.options.cluster) {
      const p = this.client.pipeline();
      for (const [k, c] of bySession) fill(p, k, c);
      if (zadd.length) p.zadd(this.deadlinesKey, 'GT', ...zadd);
      await execOrThrow(p);
      return;
    }
    await Promise.all(
      [...bySession].map(([k, c]) => {
        const p = this.client.pipeline();
        fill(p, k, c);
        return execOrThrow(p);
      }),
    );
    if (zadd.length) await this.client.zadd(this.deadlinesKey, 'GT', ...zadd);
  }

  async take(sessionKey: string): Promise<TakenEntries> {
    const h = this.hash(sessionKey);
    const res = await this.client.multi().hgetall(h).del(h).exec();
    await this.client.zrem(this.deadlinesKey, sessionKey).catch(() => {});
    const [err, all] = res?.[0] ?? [null, {}];
    if (err) throw err;
    return decode(Object.entries((all ?? {}) as Record<string, string>));
  }

  async takeExpired(sessionKey: string, now: number): Promise<TakenEntries | undefined> {
    const flat = (await this.client.eval(TAKE_EXPIRED_SCRIPT, 1, this.hash(sessionKey), now)) as
      string[] | null;
    if (flat === null) {
      // Held again meanwhile (a later deadline): the index follows the hash.
      const d = await this.client.hget(this.hash(sessionKey), DEADLINE_FIELD);
      if (d !== null) await this.client.zadd(this.deadlinesKey, 'GT', Number(d), sessionKey);
      return undefined;
    }
    await this.client.zrem(this.deadlinesKey, sessionKey).catch(() => {});
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
    return decode(pairs);
  }

  async expired(now: number, limit: number): Promise<string[]> {
    return this.client.zrangebyscore(this.deadlinesKey, '-inf', now, 'LIMIT', 0, limit);
  }

  async lease(nodeId: string, ms: number): Promise<boolean> {
    return (await this.client.eval(LEASE_SCRIPT, 1, this.leaseKey, nodeId, Math.max(1, ms))) === 1;
  }
}

function decode(fields: ReadonlyArray<[string, string]>): TakenEntries {
  let owner: PendingOwner | undefined;
  const entries: PendingEntry[] = [];
  for (const [field, value] of fields) {
    if (field === DEADLINE_FIELD) continue;
    try {
      if (field === OWNER_FIELD) owner = JSON.parse(value) as PendingOwner;
      else entries.push(JSON.parse(value) as PendingEntry);
    } catch {
      // not written by this store: ignore
    }
  }
  return { owner, entries: sortEntries(entries) };
}

async function execOrThrow(p: ReturnType<RedisClient['pipeline']>): Promise<void> {
  const res = await p.exec();
  for (const [err] of res ?? []) if (err) throw err;
}

/** Ids made safe inside a hash tag: `{`, `}` and `%` percent-escaped (as src/redis/keys.ts does). */
function escapeTag(id: string): string {
  return id.replace(/[{}%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
