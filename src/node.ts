/**
 * createNode wires one gateway node: it picks the engines from the config (memory by default; Redis
 * when REDIS_URL is set), builds every component with its dependencies, and serves WebSocket and HTTP on
 * one port. The only place where components are put together.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import type { Config } from './config.ts';
import { systemClock } from './clock.ts';
import type { Clock, Random } from './clock.ts';
import { createLogger } from './log.ts';
import type { Logger } from './log.ts';
import { WS_PATH } from '@apix/protocol';
import { MemoryBroker } from './broker/memory-broker.ts';
import { memoryEngines } from './engines.ts';
import type { Engines } from './engines.ts';
import { Authenticator } from './auth/authenticator.ts';
import { ChainedApiKeyStore, StaticApiKeyStore } from './auth/api-keys.ts';
import type { ApiKeyStore } from './auth/api-keys.ts';
import { MemoryChannelRegistry } from './subscriptions/channel-registry.ts';
import type { ChannelRegistry } from './subscriptions/channel-registry.ts';
import { EventRouter } from './router/event-router.ts';
import type { DurableSink } from './router/event-router.ts';
import { DurableReplayBroker } from './broker/durable-replay-broker.ts';
import type { DurableEventSource } from './broker/durable-replay-broker.ts';
import { MemoryDeadLetterStore } from './retry/dead-letter.ts';
import type { DeadLetterStore } from './retry/dead-letter.ts';
import { ApiXGateway } from './gateway/gateway.ts';
import { buildDelivery } from './node-wiring.ts';
import { HookBus } from './hooks.ts';
import type { GatewayHooks } from './hooks.ts';
import { createMetrics } from './metrics/metrics.ts';
import { HttpRouter } from './http/router.ts';
import { registerApi } from './http/api.ts';
import { installOperatorTools } from './http/operator.ts';
import { Internals, registerInternals } from './http/internals.ts';
import { ReservedChannelRegistry } from './subscriptions/reserved-channels.ts';
import type { ReadinessCheck } from './http/api.ts';
import { MemoryRevocationStore } from './auth/memory-revocation.ts';
import { MemorySuspensionStore } from './suspension/memory-suspension-store.ts';
import { RateLimiter } from './ratelimit/rate-limiter.ts';
import { loadTlsFiles } from './tls.ts';
import { AtRestCipher } from './crypto/at-rest.ts';
import { AtRestBroker, AtRestOfflineQueue, splitChannelKey } from './crypto/at-rest-engines.ts';
import type { AtRestErrorHandler } from './crypto/at-rest-engines.ts';
import type { TlsFiles } from './tls.ts';
import { rawHttpResponse } from './security-headers.ts';

export interface NodeOptions {
  readonly config: Config;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: Logger;
  /** Engines to use instead of the ones the config selects (tests: several nodes on one MemoryBrokerBus). */
  readonly engines?: Engines;
  readonly apiKeys?: ApiKeyStore;
  readonly channels?: ChannelRegistry;
  readonly deadLetters?: DeadLetterStore;
  readonly hooks?: readonly GatewayHooks[];
  /** Where events of durable channels are recorded (the database records). */
  readonly durable?: DurableSink;
  /** Reads durable events back (the records), so replay of durable channels reaches past the history. */
  readonly durableReplay?: DurableEventSource;
  /** Extra readiness checks (the database). */
  readonly readiness?: readonly ReadinessCheck[];
  /** Inbound frame rate per connection, instead of config.rateLimits.connection. */
  readonly inboundRate?: { readonly perSec: number; readonly burst: number };
  /** The certificate and key, already read (`apix serve` reads them before opening the engines). */
  readonly tls?: TlsFiles;
  /**
   * HTTP server timeouts against slow clients (slowloris): the request head must arrive within
   * `headersTimeoutMs` (default 10 s), the whole request within `requestTimeoutMs` (default 30 s); both are
   * enforced every `checkIntervalMs` (default 1 s; Node's own default of 30 s would let a head trickle for 40 s).
   */
  readonly httpTimeouts?: {
    readonly headersTimeoutMs?: number;
    readonly requestTimeoutMs?: number;
    readonly checkIntervalMs?: number;
  };
}

export interface ApixNode {
  readonly nodeId: string;
  readonly config: Config;
  readonly server: Server;
  readonly gateway: ApiXGateway;
  readonly router: EventRouter;
  readonly hooks: HookBus;
  readonly metrics: Registry;
  readonly httpRouter: HttpRouter;
  readonly engines: Engines;
  readonly authenticator: Authenticator;
  readonly log: Logger;
  /** What `GET /v1/admin/internals` reports the collection sizes of (add more roots with `add`). */
  readonly internals: Internals;
  /** Listens on config.host:config.port; resolves with the bound port. */
  listen(): Promise<number>;
  /** `ws://host:port/v1/ws` (`wss://` with TLS) once listening. */
  readonly wsUrl: string;
  readonly httpUrl: string;
  /** Graceful shutdown: drain connections, close the engines. */
  close(): Promise<void>;
}

export function createNode(options: NodeOptions): ApixNode {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const nodeId = config.nodeId ?? `n${randomBytes(4).toString('hex')}`;
  const log = options.logger ?? createLogger(config.logLevel, nodeId);
  const hooks = new HookBus((name, err) => log.error({ err, hook: name }, 'hook failed'));
  for (const h of options.hooks ?? []) hooks.attach(h);

  const engines = options.engines ?? memoryEngines(config, clock);
  // The admin dashboard's channel has fixed permissions in every organization.
  const channels = new ReservedChannelRegistry(options.channels ?? new MemoryChannelRegistry());
  const deadLetters = options.deadLetters ?? new MemoryDeadLetterStore(config.deadLetterSize);
  const apiKeys = new ChainedApiKeyStore([
    new StaticApiKeyStore(config.auth.apiKeys),
    ...(options.apiKeys ? [options.apiKeys] : []),
  ]);
  const revocations = engines.revocations ?? new MemoryRevocationStore(clock);
  let revocationErrorLogged = 0;
  const authenticator = new Authenticator({
    ...config.auth,
    apiKeys,
    now: () => clock.now(),
    revocations,
    onRevocationCheckError: (err) => {
      // Fail open (Redis down is a wider outage, /readyz says so), and say so at most once a minute.
      if (clock.now() - revocationErrorLogged < 60_000) return;
      revocationErrorLogged = clock.now();
      log.warn(
        { err },
        'revocation store unavailable: revoked tokens are only refused on the nodes that heard of them',
      );
    },
  });
  const tls = options.tls ?? loadTlsFiles(config);
  let storeErrorLogged = 0;
  const limiter = new RateLimiter(
    engines.rateLimits,
    { ...config.rateLimits, connection: options.inboundRate ?? config.rateLimits.connection },
    hooks,
    (err) => {
      // Fail open, and say so at most once a minute.
      if (clock.now() - storeErrorLogged < 60_000) return;
      storeErrorLogged = clock.now();
      log.warn({ err }, 'rate-limit store unavailable: shared limits not enforced');
    },
  );
  // One broker stack for the whole node: AtRest(DurableReplay(engine)), given to the router, the gateway,
  // the HTTP API and the operator tools alike. Each layer only changes reads and hands the rest over as is:
  // - DurableReplay: history reads of durable channels reach past the engine's history into the records.
  // - AtRest: history and delivered events of channels encrypted at rest are opened once, on this node.
  // Publishing goes straight through both (ForwardingBroker.publish), so the router, which seals an
  // encrypted channel's frame itself before it publishes, seals it once, and the engine stores it sealed.
  // The broker readiness check and the memory engine's gauges look at the engine itself (engines.broker).
  const durableReplay = options.durableReplay
    ? new DurableReplayBroker(engines.broker, {
        source: options.durableReplay,
        channels,
        clock,
        maxEvents: config.durableReplayMax,
        // With shared engines other nodes write their durable events within one flush interval.
        peerFlushWaitMs: engines.broker.name === 'memory' ? 0 : config.recordsFlushIntervalMs + 1_000,
        onError: (err, key) => log.warn({ err, key }, 'durable replay failed; answering from history only'),
      })
    : undefined;
  // Channels encrypted at rest: the engines store sealed frames (sealed once, by the router); this node
  // opens each one once, when the engine hands it over, and the queue keeps them sealed.
  const atRest = config.encryption ? new AtRestCipher(config.encryption) : undefined;
  const onAtRestError: AtRestErrorHandler = (err, key, id) =>
    log.error({ err, key, id }, 'encrypted entry cannot be opened: not delivered');
  const broker = new AtRestBroker(durableReplay ?? engines.broker, atRest, onAtRestError);
  const offlineQueue = new AtRestOfflineQueue(
    engines.offlineQueue,
    atRest,
    (key) => {
      const [org, name] = splitChannelKey(key);
      return channels.get(org, name)?.encrypted === true;
    },
    onAtRestError,
  );
  const router = new EventRouter(broker, channels, hooks, clock, {
    maxMessageBytes: config.maxMessageBytes,
    shape: { maxDepth: config.jsonBounds.payloadMaxDepth, maxWidth: config.jsonBounds.payloadMaxWidth },
    history: { size: config.history.size, ttlMs: config.history.ttlMs },
    idempotencyWindowMs: config.idempotencyWindowMs,
    durable: options.durable,
    limiter,
    atRest,
  });
  const delivery = buildDelivery({
    config,
    nodeId,
    clock,
    random,
    log,
    hooks,
    broker,
    channels,
    deadLetters,
    pendingStore: engines.pendingStore,
  });
  const gateway = new ApiXGateway({
    config,
    nodeId,
    clock,
    random,
    log,
    hooks,
    broker,
    router,
    offlineQueue,
    sessionStore: engines.sessionStore,
    delivery,
    presence: engines.presence,
    authenticator,
    channels,
    deadLetters,
    limiter,
    suspensions: engines.suspensions ?? new MemorySuspensionStore(clock),
  });
  const metrics = createMetrics(nodeId, hooks, () => gateway.stats(), config.metrics);
  const pendingGauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [metrics],
      collect() {
        this.set(read());
      },
    });
  pendingGauge(
    'apix_pending_buffered',
    'In-flight state changes waiting for the next pending-store write',
    () => gateway.pending.buffered,
  );
  pendingGauge(
    'apix_pending_writes',
    'Pending-store batches written (since start)',
    () => gateway.pending.writes,
  );
  pendingGauge(
    'apix_publish_read_pauses',
    'Times a connection stopped being read because too many of its publishes were in flight (since start)',
    () => gateway.publishPauses,
  );
  pendingGauge(
    'apix_pending_write_failures',
    'Pending-store batches that failed (retried)',
    () => gateway.pending.failures,
  );
  pendingGauge(
    'apix_pending_dropped',
    'In-flight entries not persisted: the write buffer was full',
    () => gateway.pending.dropped,
  );
  pendingGauge(
    'apix_pending_swept',
    'Pending entries of expired sessions dead-lettered by this node',
    () => gateway.pending.swept,
  );
  if (durableReplay) {
    pendingGauge(
      'apix_durable_replays',
      'Replays of durable channels that reached past the history into the records',
      () => durableReplay.replays,
    );
    pendingGauge(
      'apix_durable_replayed_events',
      'Events replayed from the records (past the history)',
      () => durableReplay.replayedFromRecords,
    );
  }
  const stateLog = engines.stateLog;
  if (stateLog) {
    pendingGauge(
      'apix_state_log_bytes',
      'Memory engine: bytes of the state log in the data dir',
      () => stateLog.bytes,
    );
    pendingGauge(
      'apix_state_log_buffered',
      'Memory engine: changes waiting for the next state-log write',
      () => stateLog.buffered,
    );
    pendingGauge(
      'apix_state_log_overflows',
      'Memory engine: times the state-log buffer was full (the next write was a full snapshot)',
      () => stateLog.counters.overflows,
    );
  }
  if (engines.broker instanceof MemoryBroker) {
    const history = engines.broker.bus.history;
    pendingGauge(
      'apix_history_bytes',
      'Memory engine: estimated bytes of retained channel history (bounded by APIX_HISTORY_MAX_BYTES)',
      () => history.bytes,
    );
    pendingGauge(
      'apix_history_channels',
      'Memory engine: channels with retained history',
      () => history.channelCount,
    );
  }
  let draining = false;
  const httpRouter = new HttpRouter(config.allowedOrigins);
  registerApi(httpRouter, {
    authenticator,
    broker,
    router,
    channels,
    hooks,
    metrics,
    maxBodyBytes: config.maxMessageBytes,
    historyPageBytes: config.historyPageBytes,
    readiness: [
      { name: 'broker', check: () => engines.broker.ping() },
      ...engines.readiness,
      ...(options.readiness ?? []),
    ],
    isDraining: () => draining,
    presence: engines.presence,
  });

  const operator = installOperatorTools({
    nodeId,
    clock,
    log,
    hooks,
    metrics,
    http: httpRouter,
    authenticator,
    broker,
    gateway,
    maxBodyBytes: config.maxMessageBytes,
    revocations,
    tokenRevocationTtlMs: config.tokenRevocationTtlMs,
    suspensionTtlMs: config.suspensionTtlMs,
    perEventMetrics: config.metrics,
  });
  const internals = new Internals()
    .add('engines', engines)
    .add('gateway', gateway)
    .add('router', router)
    .add('limiter', limiter)
    .add('operator', operator)
    .add('channels', channels)
    .add('deadLetters', deadLetters)
    .add('authenticator', authenticator);
  registerInternals(httpRouter, {
    nodeId,
    authenticator,
    hooks,
    internals,
    counters: () => {
      let awaySessions = 0;
      for (const session of gateway.sessions.values()) if (!session.isLive) awaySessions++;
      return { ...gateway.stats(), awaySessions };
    },
  });

  const serverOptions = {
    headersTimeout: options.httpTimeouts?.headersTimeoutMs ?? 10_000,
    requestTimeout: options.httpTimeouts?.requestTimeoutMs ?? 30_000,
    connectionsCheckingInterval: options.httpTimeouts?.checkIntervalMs ?? 1_000,
    maxHeaderSize: 16 * 1024,
  };
  const onRequest: Parameters<typeof createServer>[1] = (req, res) => {
    httpRouter
      .handle(req, res, (err) => log.error({ err, path: req.url?.split('?')[0] }, 'http handler failed'))
      .catch(() => {});
  };
  // With TLS: HTTPS and WSS on the same port, with the same handlers.
  const server: Server = tls
    ? createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key }, onRequest)
    : createServer(serverOptions, onRequest);
  server.keepAliveTimeout = 5_000;
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH) {
      const json = JSON.stringify({
        code: 'NOT_FOUND',
        message: `WebSocket upgrades are served at ${WS_PATH}`,
      });
      socket.end(rawHttpResponse(404, { json }));
      socket.destroy();
      return;
    }
    gateway.handleUpgrade(req, socket, head);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    if (socket.writable) socket.end(rawHttpResponse(status));
    socket.destroy();
  });

  let port = 0;
  const node: ApixNode = {
    nodeId,
    config,
    server,
    gateway,
    router,
    hooks,
    metrics,
    httpRouter,
    engines,
    authenticator,
    log,
    internals,
    async listen() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      port = (server.address() as AddressInfo).port;
      gateway.start();
      operator.start();
      log.info(
        { port, host: config.host, engine: engines.broker.name, tls: tls !== undefined },
        'APIX gateway listening',
      );
      return port;
    },
    get wsUrl() {
      return `${tls ? 'wss' : 'ws'}://${hostFor(config.host)}:${port}${WS_PATH}`;
    },
    get httpUrl() {
      return `${tls ? 'https' : 'http'}://${hostFor(config.host)}:${port}`;
    },
    async close() {
      draining = true;
      operator.stop();
      await gateway.drain();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      await engines.close();
    },
  };
  return node;
}

function hostFor(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}
