/**
 * The record repositories of one node, sharing one flush loop: the hooks and the gateway only enqueue;
 * every `flushIntervalMs` (or on `flush()`) each repository writes its batch; a failing repository is
 * retried with backoff without holding up the others' buffers. `close()` makes a last flush.
 */
import type { Clock, Random } from '../clock.ts';
import { systemClock } from '../clock.ts';
import { PrismaApiKeyStore } from './api-keys.ts';
import { ApiKeys } from './api-keys.ts';
import { ChannelRecords } from './channel-records.ts';
import { ConnectionRecords, type RawExecute } from './connection-records.ts';
import type { PrismaClient } from './database.ts';
import { EventRecords } from './event-records.ts';
import { FlushLoop } from './flush-loop.ts';
import { silentLogger, type StoreLogger } from './log.ts';
import { Organizations } from './organizations.ts';

export interface RecordRepositoriesOptions {
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: StoreLogger;
  /** How often buffered records are written (default 5 s). Heartbeats never cause more writes than this. */
  readonly flushIntervalMs?: number;
  /** How long API-key answers are cached (default 5 s): the longest a revoked key keeps working. */
  readonly cacheMs?: number;
  /** Runs the connection records' batch statements without Prisma (see ConnectionRecordsOptions). */
  readonly execute?: RawExecute | undefined;
}

export interface RecordCounters {
  /** Records waiting for the next flush. */
  readonly pending: number;
  /** Records refused because a bounded buffer was full. */
  readonly dropped: number;
  /** Consecutive failed flushes (0 when healthy). */
  readonly consecutiveFailures: number;
}

export interface RecordRepositories {
  readonly clock: Clock;
  readonly connections: ConnectionRecords;
  readonly channels: ChannelRecords;
  readonly events: EventRecords;
  readonly organizations: Organizations;
  readonly apiKeys: ApiKeys;
  /** The gateway's database-backed ApiKeyStore (chain it after the static one). */
  readonly apiKeyStore: PrismaApiKeyStore;
  readonly counters: RecordCounters;
  /** Writes everything buffered now; resolves false when some write failed (it will be retried). */
  flush(): Promise<boolean>;
  /** Stops the timer and makes a last flush. */
  close(): Promise<boolean>;
}

export function createRecordRepositories(
  prisma: PrismaClient,
  options: RecordRepositoriesOptions = {},
): RecordRepositories {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const connections = new ConnectionRecords(prisma, { execute: options.execute });
  const channels = new ChannelRecords(prisma, { clock });
  const events = new EventRecords(prisma);
  const organizations = new Organizations(prisma);
  const apiKeyStore = new PrismaApiKeyStore(prisma, { clock, cacheMs: options.cacheMs });
  // Organizations first: nothing references them by foreign key today, but listing should see them early.
  const writers = [organizations, connections, channels, events, apiKeyStore];
  const loop = new FlushLoop(
    async () => {
      let firstError: unknown;
      for (const w of writers) {
        try {
          await w.flush();
        } catch (err) {
          firstError ??= err;
        }
      }
      if (firstError !== undefined) throw firstError;
    },
    { name: 'records', clock, intervalMs: options.flushIntervalMs ?? 5_000, logger, random: options.random },
  ).start();

  return {
    clock,
    connections,
    channels,
    events,
    organizations,
    apiKeys: new ApiKeys(prisma),
    apiKeyStore,
    counters: {
      get pending() {
        return writers.reduce((n, w) => n + w.pendingCount, 0);
      },
      get dropped() {
        return connections.dropped + channels.dropped + events.dropped;
      },
      get consecutiveFailures() {
        return loop.consecutiveFailures;
      },
    },
    flush: () => loop.flush(),
    close: () => loop.close(),
  };
}
