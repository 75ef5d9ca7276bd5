/**
 * The steps of node.ts's createNode that build groups of components. Only node.ts calls them: together they
 * are the one place where a node is wired.
 */
import { gaugesOn } from './metrics/read-gauge.ts';
import { Streams } from './streams/streams.ts';
import { MemoryStreamStore } from './streams/memory-stream-store.ts';
import { MEMORY_MAX_STREAMS, streamStoreTtls } from './streams/stream-store.ts';
import type { StreamStore } from './streams/stream-store.ts';
import type { Config } from './config.ts';
import type { Clock, Random } from './clock.ts';
import type { Logger } from './log.ts';
import type { Broker } from './broker/broker.ts';
import type { Connection } from './connections/session.ts';
import type { DeadLetterStore } from './retry/dead-letter.ts';
import type { LocalHub } from './subscriptions/hub.ts';
import type { ChannelRegistry } from './subscriptions/channel-registry.ts';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';

import type { IncomingMessage } from 'node:http';
import type { TransportHost } from './transport/transport.ts';
import { WS_PATH } from '@apix/protocol';
import { MemoryBroker } from './broker/memory-broker.ts';
import type { Engines } from './engines.ts';
import { Authenticator } from './auth/authenticator.ts';
import { ChainedApiKeyStore, StaticApiKeyStore } from './auth/api-keys.ts';
import type { ApiKeyStore } from './auth/api-keys.ts';
import { MemoryChannelRegistry } from './subscriptions/channel-registry.ts';
import type { EventRouter } from './router/event-router.ts';
import type { DurableSink } from './router/event-router.ts';
import { DurableReplayBroker } from './broker/durable-replay-broker.ts';
import { ControlFanoutBroker } from './broker/control-fanout.ts';
import type { DurableEventSource } from './broker/durable-replay-broker.ts';
import { MemoryDeadLetterStore } from './retry/dead-letter.ts';
import type { ApiXGateway } from './gateway/gateway.ts';
import type { NodeBase } from './node-base.ts';
import type { GatewayHooks } from './hooks.ts';
import { HttpRouter } from './http/router.ts';
import { registerApi } from './http/api.ts';
import { installOperatorTools } from './http/operator.ts';
import { Internals, registerInternals } from './http/internals.ts';
import { ReservedChannelRegistry } from './subscriptions/reserved-channels.ts';
import type { ReadinessCheck } from './http/api.ts';
import { MemoryRevocationStore } from './auth/memory-revocation.ts';
import { RateLimiter } from './ratelimit/rate-limiter.ts';
import { AtRestCipher } from './crypto/at-rest.ts';
import { AtRestBroker, AtRestOfflineQueue, splitChannelKey } from './crypto/at-rest-engines.ts';
import type { AtRestErrorHandler } from './crypto/at-rest-engines.ts';
import type { TlsFiles } from './tls.ts';
import { rawHttpResponse } from './security-headers.ts';
import { HttpTransports } from './transport/http/http-transports.ts';
import { authenticateRequest } from './http/api.ts';
import type { WebhookStore } from './webhooks/webhook-store.ts';

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
  /** Where webhook state is kept when the engines are not shared (the database records); else the engines'. */
  readonly webhooks?: WebhookStore;
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
  /** The write batcher's window timers (default real ones, not `clock`): a test closes windows itself. */
  readonly writeTimers?: Pick<Clock, 'setTimeout'>;
}

/**
 * Streams (docs/protocol.md §14) over the engines' StreamStore (a memory store of this node without one);
 * `refused` is late-bound to the gateway's sanctions.
 */
export function buildStreams(
  base: NodeBase,
  parts: {
    readonly broker: Broker;
    readonly router: EventRouter;
    readonly channels: ChannelRegistry;
    readonly hub: LocalHub;
    readonly store: StreamStore | undefined;
    readonly atRest: AtRestCipher | undefined;
    refused(conn: Connection, scope: 'publish'): boolean;
  },
): Streams {
  const { config, clock } = base;
  const store =
    parts.store ??
    new MemoryStreamStore({
      ...streamStoreTtls(config),
      maxStreams: MEMORY_MAX_STREAMS,
      now: () => clock.now(),
    });
  return new Streams({ ...base, ...parts, store });
}

export type { NodeBase } from './node-base.ts';

/** Channel settings, dead letters, API keys, revocations, the authenticator and the rate limiter. */
export function buildAccess(base: NodeBase, options: NodeOptions, engines: Engines) {
  const { config, clock, log, hooks } = base;
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
  return { channels, deadLetters, revocations, authenticator, limiter };
}

/** The node's one broker stack, AtRest(DurableReplay(engine)), and the offline queue over the engine's. */
export function buildBrokerStack(
  base: NodeBase,
  options: NodeOptions,
  engines: Engines,
  channels: ChannelRegistry,
) {
  const { config, clock, log } = base;
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
  // Outermost: every listener of control messages (the gateway, RPC routing) gets each one.
  const broker = new ControlFanoutBroker(
    new AtRestBroker(durableReplay ?? engines.broker, atRest, onAtRestError),
  );
  const offlineQueue = new AtRestOfflineQueue(
    engines.offlineQueue,
    atRest,
    (key) => {
      const [org, name] = splitChannelKey(key);
      return channels.get(org, name)?.encrypted === true;
    },
    onAtRestError,
  );
  return { broker, durableReplay, offlineQueue, atRest };
}

/** The node's own gauges: the pending journal, publish pauses, durable replay, the memory engine. */
export function registerNodeGauges(
  metrics: Registry,
  gateway: ApiXGateway,
  engines: Engines,
  durableReplay: DurableReplayBroker | undefined,
): void {
  const pendingGauge = gaugesOn(metrics);
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
  registerEngineGauges(pendingGauge, engines);
}

/** The memory engine's gauges: its state log in the data dir, its retained history. */
function registerEngineGauges(
  pendingGauge: (name: string, help: string, read: () => number) => unknown,
  engines: Engines,
): void {
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
}

/** The HTTP API, the operator tools and the internals report, on one HttpRouter. */
export function buildHttp(
  base: NodeBase,
  options: NodeOptions,
  parts: {
    readonly engines: Engines;
    readonly access: ReturnType<typeof buildAccess>;
    readonly broker: Broker;
    readonly router: EventRouter;
    readonly gateway: ApiXGateway;
    readonly metrics: Registry;
    readonly isDraining: () => boolean;
    readonly streams?: Streams;
  },
) {
  const { config, nodeId, clock, log, hooks } = base;
  const { engines, broker, router, gateway, metrics } = parts;
  const { authenticator, channels, revocations, deadLetters } = parts.access;
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
    isDraining: parts.isDraining,
    presence: engines.presence,
    ...(parts.streams ? { openStreams: parts.streams.snapshots.bind(parts.streams) } : {}),
  });

  const httpTransports = config.httpTransports.enabled
    ? installHttpTransports(base, httpRouter, gateway, parts.access, metrics)
    : undefined;

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
    encryptionConfigured: config.encryption !== undefined,
    ...{ router, deadLetters, channels },
  });
  const internals = installInternals(base, httpRouter, { ...parts, operator, httpTransports });
  return { httpRouter, operator, internals };
}

/** The internals report (`GET /v1/admin/internals`): the sizes of every component's collections. */
function installInternals(
  base: NodeBase,
  httpRouter: HttpRouter,
  parts: {
    readonly engines: Engines;
    readonly access: ReturnType<typeof buildAccess>;
    readonly router: EventRouter;
    readonly gateway: ApiXGateway;
    readonly streams?: Streams;
    readonly operator: object;
    readonly httpTransports: object | undefined;
  },
): Internals {
  const { nodeId, hooks } = base;
  const { engines, router, gateway, operator, httpTransports } = parts;
  const { authenticator, channels, limiter, deadLetters } = parts.access;
  const internals = new Internals()
    .add('engines', engines)
    .add('gateway', gateway)
    .add('httpTransports', httpTransports ?? {})
    .add('router', router)
    .add('limiter', limiter)
    .add('operator', operator)
    .add('channels', channels)
    .add('deadLetters', deadLetters)
    .add('authenticator', authenticator);
  if (parts.streams) internals.add('streams', parts.streams);
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

  return internals;
}

/** HTTP streaming and SSE (src/transport/http/): their routes, on the gateway as host, and their gauges. */
function installHttpTransports(
  base: NodeBase,
  httpRouter: HttpRouter,
  gateway: ApiXGateway,
  access: ReturnType<typeof buildAccess>,
  metrics: Registry,
): HttpTransports<unknown> {
  const connections = gateway.connectionManager;
  const load = {
    get draining() {
      return connections.draining;
    },
    get connectionCount() {
      return connections.connections.size;
    },
    connectionsFrom: (address: string) => connections.perAddress.get(address) ?? 0,
  };
  const deps = {
    ...base,
    limiter: access.limiter,
    load,
    now: () => base.clock.now(),
    authenticate: (req: IncomingMessage) => authenticateRequest({ ...access, hooks: base.hooks }, req),
  };
  const transports = new HttpTransports<unknown>(deps, gateway as TransportHost<unknown>);
  transports.register(httpRouter);
  const gauge = gaugesOn(metrics);
  gauge(
    'apix_http_streams',
    'Open HTTP streaming and SSE streams on this node',
    () => transports.streams.size,
  );
  gauge(
    'apix_sse_tickets',
    'SSE tickets issued and not yet redeemed or expired',
    () => transports.tickets.size,
  );
  return transports;
}

/** The HTTP(S) server: requests to the router, upgrades on the WebSocket path to the gateway. */
export function createHttpServer(
  options: NodeOptions,
  tls: TlsFiles | undefined,
  httpRouter: HttpRouter,
  gateway: ApiXGateway,
  log: Logger,
): Server {
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

  return server;
}
