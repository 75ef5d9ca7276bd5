/**
 * Durable records of a node: the database (PostgreSQL with DATABASE_URL, else embedded PGlite in the
 * data dir), migrated at start, and what writes to it — connection/channel/key records and the audit
 * trail, attached through hooks and written off the hot path in batches.
 */
import { gaugesOn } from './metrics/read-gauge.ts';
import type { Config } from './config.ts';
import type { Clock, Random } from './clock.ts';
import type { Logger } from './log.ts';
import type { GatewayHooks } from './hooks.ts';
import type { ApiKeyStore } from './auth/api-keys.ts';
import type { ChannelRegistry } from './subscriptions/channel-registry.ts';
import type { DeadLetterStore } from './retry/dead-letter.ts';
import type { ReadinessCheck } from './http/api.ts';
import type { DurableSink } from './router/event-router.ts';
import type { DurableEventSource } from './broker/durable-replay-broker.ts';
import {
  createDatabase,
  createRecordRepositories,
  migrate,
  PrismaChannelRegistry,
  PrismaDeadLetterStore,
  recordHooks,
} from './store/index.ts';
import type { Database, RecordRepositories } from './store/index.ts';
import { AuditLogger, auditHooks, DenialAggregator } from './audit/index.ts';

import type { Registry } from 'prom-client';
import type { HttpRouter } from './http/router.ts';
import type { Authenticator } from './auth/authenticator.ts';
import type { HookBus } from './hooks.ts';
import { registerAuditRoutes } from './http/audit.ts';
import { registerAdminKeys } from './http/admin-keys.ts';
import type { AdminGateway } from './http/admin-api.ts';
import { ApiKeys } from './store/api-keys.ts';
import { InternalError } from '@apix/protocol/internal-errors';
import type { WebhookStore } from './webhooks/webhook-store.ts';
import { PrismaWebhookStore } from './store/prisma-webhook-store.ts';

export interface Records {
  readonly db: Database;
  readonly repos: RecordRepositories;
  readonly audit: AuditLogger;
  readonly apiKeys: ApiKeyStore;
  readonly channels: ChannelRegistry;
  readonly deadLetters: DeadLetterStore;
  /** Webhook endpoints, queued batches and dead letters, kept across restarts (used without Redis). */
  readonly webhooks: WebhookStore;
  readonly hooks: readonly GatewayHooks[];
  readonly readiness: readonly ReadinessCheck[];
  readonly durable: DurableSink;
  /** Reads durable events back, for replay past the stream's retention. */
  readonly durableReplay: DurableEventSource;
  /** Adds the audit API and the records' gauges to a node. */
  attach(node: {
    httpRouter: HttpRouter;
    metrics: Registry;
    authenticator: Authenticator;
    hooks: HookBus;
    /** API key revocations cut the key's connections on every node. */
    gateway: Pick<AdminGateway, 'revokeCredentials'>;
  }): void;
  close(): Promise<void>;
}

export async function openRecords(
  config: Config,
  deps: { clock: Clock; random: Random; log: Logger },
): Promise<Records> {
  const { clock, random, log } = deps;
  const db = await openMigratedDatabase(config, log);
  const repos = createRecordRepositories(db.prisma, {
    clock,
    random,
    logger: log,
    flushIntervalMs: config.recordsFlushIntervalMs,
    cacheMs: config.apiKeyCacheMs,
    execute: (sql, params) => db.withRawSession((session) => session.query(sql, params)),
  });
  const channels = await new PrismaChannelRegistry(db.prisma, {
    clock,
    logger: log,
    // The refresh picks up changes made by other processes. None can reach an embedded database while this
    // node runs (its directory is locked to this process; `apix channels` opens it only when no node does),
    // and a poll would keep the engine from ever shutting down while idle.
    refreshMs: db.kind === 'pglite' ? 0 : 5_000,
  }).start();
  const audit = new AuditLogger({
    db,
    dataDir: config.dataDir,
    clock,
    random,
    logger: log,
    flushIntervalMs: config.audit.flushIntervalMs,
    maxQueue: config.audit.maxQueue,
    maxSpillBytes: config.audit.maxSpillBytes,
  });
  const denials = new DenialAggregator({
    clock,
    windowMs: config.audit.denialWindowMs,
    record: (entry) => audit.record(entry),
  });
  return {
    db,
    repos,
    audit,
    apiKeys: repos.apiKeyStore,
    channels,
    deadLetters: new PrismaDeadLetterStore(repos.events, config.deadLetterSize),
    webhooks: new PrismaWebhookStore(db.prisma),
    hooks: [recordHooks(repos), auditHooks(audit, { publishes: config.audit.publishes, denials })],
    readiness: [
      {
        name: 'database',
        async check() {
          if (!(await db.ping()))
            throw new InternalError('APIX_ERR_DB_UNAVAILABLE', `${db.kind} unreachable`);
        },
      },
    ],
    durable: (e) => {
      repos.events.append(e);
    },
    durableReplay: {
      range: (key, fromId, bound, limit) => repos.events.range(key, fromId, bound, limit),
      // Only this node's buffer matters here; write it now when it holds anything.
      flush: () => (repos.events.pendingCount > 0 ? repos.flush() : Promise.resolve(true)),
    },
    attach(node) {
      attachRecords(node, db, audit, repos, config.maxMessageBytes);
    },
    async close() {
      denials.flush();
      await audit.close();
      await repos.close();
      channels.close();
      await db.close();
    },
  };
}

/** Opens the database and migrates it; closes it again when the migration fails. */
async function openMigratedDatabase(config: Config, log: Logger): Promise<Database> {
  const db = await createDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    embeddedBuffersMb: config.embeddedDbBuffersMb,
    embeddedIdleCloseMs: config.embeddedDbIdleCloseMs,
    logger: log,
  });
  try {
    await migrate(db, { onProgress: (line: string) => log.info(line) });
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

/** Adds the audit API, the API key admin API and the records' gauges to a node. */
function attachRecords(
  node: Parameters<Records['attach']>[0],
  db: Database,
  audit: AuditLogger,
  repos: RecordRepositories,
  maxBodyBytes: number,
): void {
  registerAuditRoutes(node.httpRouter, {
    prisma: db.prisma,
    authenticator: node.authenticator,
    hooks: node.hooks,
  });
  registerAdminKeys(node.httpRouter, {
    authenticator: node.authenticator,
    hooks: node.hooks,
    keys: new ApiKeys(db.prisma),
    gateway: node.gateway,
    maxBodyBytes,
  });
  const gauge = gaugesOn(node.metrics);
  gauge('apix_audit_queued', 'Audit entries waiting to be written', () => audit.counters.queued);
  gauge('apix_audit_written', 'Audit entries committed (since start)', () => audit.counters.written);
  gauge(
    'apix_audit_spilled',
    'Audit entries spilled to disk while the database was away',
    () => audit.counters.spilled,
  );
  gauge(
    'apix_audit_dropped',
    'Audit entries refused: queue and spill file full',
    () => audit.counters.dropped,
  );
  gauge(
    'apix_records_pending',
    'Connection/channel/key records waiting for the next flush',
    () => repos.counters.pending,
  );
  gauge('apix_records_dropped', 'Records refused by a full buffer', () => repos.counters.dropped);
}
