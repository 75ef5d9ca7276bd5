/**
 * The Redis StreamStore: per stream a hash (its state) and a string (its text, APPENDed), per channel a
 * hash of its streams not yet compacted, all in the channel's `{st:<key>}` slot so each Lua script
 * (src/redis/scripts/stream-*.lua) is atomic on a cluster too. Every node reads the same state: a late
 * joiner gets the same snapshot on any node, and an append answered `ok` is in Redis, whatever happens
 * to the node that sent it.
 */
import { ApiXError } from '@apix/protocol';
import type { RedisClient } from '../redis/client.ts';
import { redisFailureKind } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type {
  AppendInput,
  AppendResult,
  EndInput,
  EndResult,
  NewStream,
  StartResult,
  StreamState,
  StreamStatus,
  StreamStore,
  StreamStoreOptions,
} from './stream-store.ts';

export class RedisStreamStore implements StreamStore {
  readonly name = 'redis';

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly options: StreamStoreOptions,
  ) {}

  async start(input: NewStream): Promise<StartResult> {
    const k = this.keys;
    const [outcome, fields, text] = (await unavailable(
      runScript(
        this.client,
        'stream-start',
        [
          k.streamState(input.key, input.streamId),
          k.streamText(input.key, input.streamId),
          k.openStreams(input.key),
        ],
        [
          ...[input.streamId, input.id, input.eventType, input.dataJson],
          ...[input.owner.nodeId, input.owner.connectionId, input.userId, input.now],
          ttl(this.options.openTtlMs),
        ],
      ),
    )) as [StartResult['outcome'], string[], string];
    return { outcome, state: parseState(input.key, fields, text) };
  }

  async append(key: string, streamId: string, input: AppendInput): Promise<AppendResult> {
    const reply = (await unavailable(
      runScript(
        this.client,
        'stream-append',
        [this.keys.streamState(key, streamId), this.keys.streamText(key, streamId)],
        [
          ...[input.owner.connectionId, input.text, input.count, input.bytes],
          ...[input.maxBytes, input.now, ttl(this.options.openTtlMs)],
        ],
      ),
    )) as [string, number?, number?];
    if (reply[0] === 'ok') return { ok: true, fromSeq: Number(reply[1]), seq: Number(reply[2]) };
    return { ok: false, reason: reply[0] as 'not_open' | 'not_owner' | 'too_large' };
  }

  async end(key: string, streamId: string, input: EndInput): Promise<EndResult> {
    const reply = (await unavailable(
      runScript(
        this.client,
        'stream-end',
        [this.keys.streamState(key, streamId), this.keys.streamText(key, streamId)],
        [
          ...[input.status, input.endDataJson ?? '', input.errorJson ?? '', input.now],
          ...[input.owner?.connectionId ?? '', input.idleBefore ?? 0, ttl(this.options.endedTtlMs)],
        ],
      ),
    )) as [string, string[]?, string?];
    if (reply[0] === 'ok') return { ok: true, state: parseState(key, reply[1]!, reply[2] ?? '') };
    return { ok: false, reason: reply[0] as 'not_open' | 'not_owner' | 'not_idle' };
  }

  async compacted(key: string, streamId: string, compactedId: string): Promise<void> {
    await unavailable(
      runScript(
        this.client,
        'stream-compacted',
        [this.keys.streamState(key, streamId), this.keys.openStreams(key)],
        [streamId, compactedId],
      ),
    );
  }

  async get(key: string, streamId: string): Promise<StreamState | undefined> {
    const [[, fields], [, text]] = (await unavailable(
      this.client
        .multi()
        .hgetall(this.keys.streamState(key, streamId))
        .get(this.keys.streamText(key, streamId))
        .exec(),
    )) as [[unknown, Record<string, string>], [unknown, string | null]];
    if (Object.keys(fields).length === 0) return undefined;
    return stateOf(key, fields, text ?? '');
  }

  async listOpen(key: string): Promise<StreamState[]> {
    const ids = Object.keys(await unavailable(this.client.hgetall(this.keys.openStreams(key))));
    const states = await Promise.all(ids.map((id) => this.get(key, id)));
    const gone = ids.filter((_, i) => states[i] === undefined);
    // Streams whose state expired (their node lost and nobody ended them): off the list.
    if (gone.length > 0) await unavailable(this.client.hdel(this.keys.openStreams(key), ...gone));
    return states.filter((s): s is StreamState => s !== undefined);
  }

  async close(): Promise<void> {}
}

function ttl(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

function parseState(key: string, flat: readonly string[], text: string): StreamState {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
  return stateOf(key, fields, text);
}

function stateOf(key: string, f: Record<string, string>, text: string): StreamState {
  return {
    ...{ key, streamId: f.streamId ?? '', id: f.id ?? '', eventType: f.eventType ?? '' },
    ...{ dataJson: f.data ?? 'null', text, seq: Number(f.seq ?? 0), bytes: Number(f.bytes ?? 0) },
    status: (f.status ?? 'error') as StreamStatus,
    owner: { nodeId: f.ownerNode ?? '', connectionId: f.ownerConn ?? '' },
    ...{ userId: f.userId ?? '', startedAt: Number(f.startedAt ?? 0), lastAt: Number(f.lastAt ?? 0) },
    endDataJson: f.endData,
    errorJson: f.error,
    compactedId: f.compactedId,
  };
}

/** A Redis failure is the client's `UNAVAILABLE` (a script error stays what it is). */
async function unavailable<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const kind = redisFailureKind(err);
    if (kind === 'reply' || kind === 'internal') throw err;
    throw new ApiXError('UNAVAILABLE', 'the stream store (Redis) is unavailable', { cause: err });
  }
}
