/**
 * Creates the Redis connections of one node: a command client (shared by the broker, offline queue,
 * session store and presence) and a dedicated subscriber connection (pub/sub needs its own).
 * Components never create their own clients: node.ts calls this once and passes the result down.
 *
 * Addresses:
 * - `redis://[user:pass@]host:port[/db]` or `rediss://...` (TLS): a single Redis.
 * - `redis+cluster://[user:pass@]host1:port1,host2:port2,...` (or `rediss+cluster://`), or an array of
 *   `host:port` seeds: a Redis Cluster. Channel events then go over sharded pub/sub (SPUBLISH inside the
 *   publish script, SSUBSCRIBE on the master that owns the channel's slot), so pub/sub traffic scales with
 *   the shards instead of being broadcast to every node; `shardedPubSub: false` falls back to classic
 *   PUBLISH/SUBSCRIBE (broadcast over the cluster bus). Control messages always use classic pub/sub.
 *
 * Failure behaviour (single Redis): the command client does not queue commands while disconnected and does
 * not resend in-flight commands after a reconnect, and fails those in flight when the connection closes, so a
 * publish during an outage fails at once and is never applied twice. ioredis keeps reconnecting in the background.
 */
import { Cluster, Redis, ReplyError } from 'ioredis';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { InternalError, isInternalError } from '@apix/protocol/internal-errors';

export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  /** Shown in CLIENT LIST (`<name>` and `<name>:sub`). Default `apix`. */
  readonly connectionName?: string;
  /** A command that gets no reply within this time fails. Default 5000 ms. */
  readonly commandTimeoutMs?: number;
  /** Time to wait for the first connection in `createRedisClients`. Default 10000 ms. */
  readonly connectTimeoutMs?: number;
  /** Cluster only: sharded pub/sub for channel events (Redis 7+). Default true. */
  readonly shardedPubSub?: boolean;
  /** Passed through to ioredis as-is (overrides the above). */
  readonly redisOptions?: RedisOptions;
  readonly clusterOptions?: ClusterOptions;
}

export interface RedisClients {
  readonly mode: 'standalone' | 'cluster';
  /** Whether channel events use SPUBLISH/SSUBSCRIBE. */
  readonly sharded: boolean;
  readonly command: RedisClient;
  readonly subscriber: RedisClient;
  /** Closes both connections (QUIT, then disconnect if Redis is unreachable). */
  close(): Promise<void>;
}

interface ParsedAddress {
  readonly cluster: boolean;
  readonly tls: boolean;
  readonly nodes: readonly { host: string; port: number }[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
}

/** Parses a REDIS_URL (see the module doc) or a list of cluster seeds. Throws with a readable message. */
export function parseRedisAddress(address: string | readonly string[]): ParsedAddress {
  if (typeof address !== 'string') {
    if (address.length === 0) throw new InternalError('APIX_ERR_REDIS_URL', 'no Redis cluster nodes given');
    return {
      cluster: true,
      tls: false,
      nodes: address.map(hostPort),
      username: undefined,
      password: undefined,
      db: 0,
    };
  }
  const m = /^(rediss?)(\+cluster)?:\/\/(.*)$/.exec(address);
  if (!m) throw new InternalError('APIX_ERR_REDIS_URL', `not a Redis URL: ${address}`);
  const tls = m[1] === 'rediss';
  const cluster = m[2] !== undefined;
  let rest = m[3]!;
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at !== -1) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(':');
    const user = colon === -1 ? '' : decodeURIComponent(auth.slice(0, colon));
    const pass = decodeURIComponent(colon === -1 ? auth : auth.slice(colon + 1));
    username = user || undefined;
    password = pass || undefined;
  }
  let db = 0;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const dbText = rest.slice(slash + 1).split('?')[0]!;
    rest = rest.slice(0, slash);
    if (dbText !== '') {
      if (!/^\d+$/.test(dbText))
        throw new InternalError('APIX_ERR_REDIS_URL', `bad Redis database number: ${dbText}`);
      db = Number(dbText);
      if (cluster && db !== 0)
        throw new InternalError('APIX_ERR_REDIS_URL', 'Redis Cluster has only database 0');
    }
  }
  const nodes = (rest === '' ? ['127.0.0.1:6379'] : rest.split(',')).map(hostPort);
  if (!cluster && nodes.length > 1)
    throw new InternalError('APIX_ERR_REDIS_URL', 'several Redis hosts need redis+cluster://');
  return { cluster, tls, nodes, username, password, db };
}

function hostPort(text: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(text.trim());
  if (!m || m[1] === '') throw new InternalError('APIX_ERR_REDIS_URL', `bad Redis host: ${text}`);
  return { host: m[1]!, port: m[2] === undefined ? 6379 : Number(m[2]) };
}

/** Connects both clients and resolves once both are ready (rejects, closing them, if they are not in time). */
export async function createRedisClients(
  address: string | readonly string[],
  options: RedisClientOptions = {},
): Promise<RedisClients> {
  const a = parseRedisAddress(address);
  const name = options.connectionName ?? 'apix';
  const common: RedisOptions = {
    username: a.username,
    password: a.password,
    commandTimeout: options.commandTimeoutMs ?? 5000,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    ...(a.tls ? { tls: {} } : {}),
    lazyConnect: true,
  };
  let command: RedisClient;
  let subscriber: RedisClient;
  let sharded = false;
  if (a.cluster) {
    sharded = options.shardedPubSub ?? true;
    const clusterOptions = (connectionName: string, subscriberRole: boolean): ClusterOptions => ({
      lazyConnect: true,
      shardedSubscribers: subscriberRole && sharded,
      // Nodes that restart without a slot change (a crashed master coming back) are reconnected too.
      clusterNodeRetryStrategy: (times: number) => Math.min(50 * times, 2000),
      redisOptions: { ...common, connectionName },
      ...options.clusterOptions,
    });
    command = new Cluster([...a.nodes], clusterOptions(name, false));
    subscriber = new Cluster([...a.nodes], clusterOptions(`${name}:sub`, true));
  } else {
    const node = a.nodes[0]!;
    const base: RedisOptions = { ...common, host: node.host, port: node.port, db: a.db };
    command = new Redis({
      ...base,
      connectionName: name,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      // Commands in flight when the connection closes fail at once. Without this ioredis keeps them past
      // the close, drops them unanswered on the reconnect, and they only fail at `commandTimeout` (a
      // publish in flight at a Redis crash hung 5 s).
      maxRetriesPerRequest: 0,
      ...options.redisOptions,
    });
    // The broker re-subscribes itself on every 'ready' (it knows which topics it wants, including those asked
    // for while Redis was away), so ioredis's own resubscription is off.
    subscriber = new Redis({
      ...base,
      connectionName: `${name}:sub`,
      enableOfflineQueue: false,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      ...options.redisOptions,
    });
  }
  // Errors are also reported by the failing commands; without a listener ioredis would log each one.
  command.on('error', () => {});
  subscriber.on('error', () => {});
  const close = async (): Promise<void> => {
    await Promise.all([quit(command), quit(subscriber)]);
  };
  try {
    await withTimeout(
      Promise.all([command.connect(), subscriber.connect()]),
      options.connectTimeoutMs ?? 10_000,
    );
  } catch (err) {
    command.disconnect();
    subscriber.disconnect();
    throw new InternalError(
      'APIX_ERR_REDIS_UNAVAILABLE',
      `cannot connect to Redis at ${describe(a)}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return { mode: a.cluster ? 'cluster' : 'standalone', sharded, command, subscriber, close };
}

async function quit(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await withTimeout(client.quit(), 1000);
  } catch {
    client.disconnect();
  }
}

function describe(a: ParsedAddress): string {
  return a.nodes.map((n) => `${n.host}:${n.port}`).join(',');
}

export function withTimeout<T>(p: Promise<T>, ms: number, what = 'Redis'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new InternalError('APIX_ERR_TIMEOUT', `${what} did not answer within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * ioredis's own errors for a command it never wrote: no connection and no offline queue, or a client that
 * ended. ioredis builds them as plain Errors and tells them apart by these exact messages itself
 * (its `CONNECTION_CLOSED_ERROR_MSG`); they are ioredis's, never ours.
 */
const IOREDIS_NOT_WRITTEN: ReadonlySet<string> = new Set([
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Connection is closed.',
]);

/**
 * What a failed Redis command means, by the error's type: `reply` (Redis refused it: a ReplyError),
 * `not-sent` (it never left the node), `unknown` (it failed after it was written: it may have been
 * applied), or `internal` (one of ours, e.g. a missing Lua script: not a Redis failure).
 */
export function redisFailureKind(err: unknown): 'reply' | 'not-sent' | 'unknown' | 'internal' {
  if (err instanceof ReplyError) return 'reply';
  if (isInternalError(err)) return isInternalError(err, 'APIX_ERR_TIMEOUT') ? 'unknown' : 'internal';
  if (err instanceof Error && IOREDIS_NOT_WRITTEN.has(err.message)) return 'not-sent';
  return 'unknown';
}
