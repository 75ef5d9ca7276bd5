/** Building blocks for running the engine contracts against Redis. */
import { Redis } from 'ioredis';
import type { RedisClientOptions, RedisClients } from '../../src/redis/client.ts';
import { createRedisClients } from '../../src/redis/client.ts';

/** Clients that are closed together by `closeAll()`. */
export class ClientPool {
  private readonly open: RedisClients[] = [];
  constructor(
    readonly url: string | readonly string[],
    private readonly options: RedisClientOptions = {},
  ) {}
  async create(): Promise<RedisClients> {
    const c = await createRedisClients(this.url, this.options);
    this.open.push(c);
    return c;
  }
  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.close()));
  }
}

/** Deletes every key under `prefix` (a test's unique prefix; it contains no glob characters). */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  r.on('error', () => {});
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

/** Number of keys under `prefix` (leak checks). */
export async function countPrefix(url: string, prefix: string): Promise<number> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  r.on('error', () => {});
  try {
    await r.connect();
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  } finally {
    r.disconnect();
  }
}
