/**
 * createNode wires one gateway node: it picks the engines from the config (memory by default; Redis
 * when REDIS_URL is set), builds every component with its dependencies, and serves WebSocket and HTTP on
 * one port. The only place where components are put together.
 */
import { nodeTracing, type Tracing } from './tracing/tracing.ts';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Config } from './config.ts';
import { systemClock } from './clock.ts';
import { createLogger } from './log.ts';
import type { Logger } from './log.ts';
import { WS_PATH } from '@apix/protocol';
import { createEngines, memoryEngines } from './engines.ts';
import type { Records } from './records.ts';
import type { Engines } from './engines.ts';
import type { Authenticator } from './auth/authenticator.ts';
import { EventRouter, type EventRouterOptions } from './router/event-router.ts';
import { ApiXGateway } from './gateway/gateway.ts';
import { WriteBatcher } from './transport/websocket/write-batcher.ts';
import {
  buildAccess,
  buildBrokerStack,
  buildHttp,
  buildStreams,
  createHttpServer,
  registerNodeGauges,
} from './node-wiring.ts';
import type { NodeBase, NodeOptions } from './node-wiring.ts';
import { buildDelivery } from './node-delivery.ts';
import { HookBus } from './hooks.ts';
import { createMetrics } from './metrics/metrics.ts';
import type { HttpRouter } from './http/router.ts';
import type { Internals } from './http/internals.ts';
import { MemorySuspensionStore } from './suspension/memory-suspension-store.ts';
import { loadTlsFiles } from './tls.ts';
import type { TlsFiles } from './tls.ts';
import type { OperatorTools } from './http/operator.ts';
import { buildProxy, registerProxyMetrics } from './backend/backend-wiring.ts';
import { publishApproval } from './backend/proxy-steps.ts';
import { RpcService } from './rpc/rpc-service.ts';
import type { Connection } from './connections/session.ts';
import { registerRpcMetrics } from './rpc/rpc-metrics.ts';
import { installBackendIntegration } from './webhooks/wiring.ts';
import type { BackendIntegration } from './webhooks/wiring.ts';

export type { NodeOptions } from './node-wiring.ts';

export interface ApiXNode {
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
  /** Webhooks and server-side subscriptions (src/webhooks/wiring.ts). */
  readonly backend: BackendIntegration;
  /** Listens on config.host:config.port; resolves with the bound port. */
  listen(): Promise<number>;
  /** `ws://host:port/v1/ws` (`wss://` with TLS) once listening. */
  readonly wsUrl: string;
  readonly httpUrl: string;
  /** Graceful shutdown: drain connections, close the engines. */
  close(): Promise<void>;
}

/** What every component of a node is built with: its config, id, clock, randomness, log and hook bus. */
function nodeBase(options: NodeOptions): NodeBase {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const nodeId = config.nodeId ?? `n${randomBytes(4).toString('hex')}`;
  const log = options.logger ?? createLogger(config.logLevel, nodeId);
  const hooks = new HookBus((name, err) => log.error({ err, hook: name }, 'hook failed'));
  for (const h of options.hooks ?? []) hooks.attach(h);
  return { config, nodeId, clock, random: options.random ?? Math.random, log, hooks };
}

export function createNode(options: NodeOptions): ApiXNode {
  const base = nodeBase(options);
  const { config, nodeId, clock, log, hooks } = base;
  const engines = options.engines ?? memoryEngines(config, clock);
  const access = buildAccess(base, options, engines);
  const { channels, deadLetters, authenticator, limiter } = access;
  const stack = buildBrokerStack(base, options, engines, channels);
  const { broker, atRest } = stack;
  const proxy = buildProxy(config, clock, hooks);
  const tracing = nodeTracing(config, nodeId, hooks, () => clock.now());
  const router = buildRouter(base, options, { broker, channels, limiter, atRest, proxy, tracing });
  const delivery = buildDelivery({
    ...base,
    broker,
    channels,
    deadLetters,
    pendingStore: engines.pendingStore,
    tracing,
  });
  const writes = new WriteBatcher(config.writeFlushMs, options.writeTimers);
  const rpc = buildRpc(base, broker, engines, () => gateway);
  const streams = buildStreams(base, {
    ...{ broker, router, channels, hub: delivery.hub, store: engines.streamStore, atRest },
    refused: (conn, scope) => gateway.sanctions.refused(conn, scope),
  });
  const gateway: ApiXGateway = new ApiXGateway({
    ...base,
    streams,
    broker,
    router,
    offlineQueue: stack.offlineQueue,
    sessionStore: engines.sessionStore,
    delivery,
    presence: engines.presence,
    authenticator,
    channels,
    deadLetters,
    limiter,
    suspensions: engines.suspensions ?? new MemorySuspensionStore(clock),
    proxy,
    rpc,
    writes,
  });
  const metrics = createMetrics(nodeId, hooks, () => gateway.stats(), config.metrics);
  registerNodeGauges(metrics, gateway, engines, stack.durableReplay);
  for (const component of [writes, streams]) component.registerMetrics(metrics);
  registerProxyMetrics(metrics, proxy);
  registerRpcMetrics(metrics, rpc);
  const state = { draining: false };
  const parts = {
    engines,
    access,
    broker,
    router,
    gateway,
    metrics,
    streams,
    isDraining: () => state.draining,
  };
  const { httpRouter, operator, internals } = buildHttp(base, options, parts);
  internals.add('rpc', rpc).add('proxy', proxy);
  const backend = installBackendIntegration(base, {
    ...{ http: httpRouter, metrics, authenticator, broker, gateway },
    // Shared engines (Redis) keep it for every node; alone, the database records keep it across restarts.
    ...{
      store: engines.broker.name === 'memory' ? (options.webhooks ?? engines.webhooks) : engines.webhooks,
    },
    occupancy: engines.occupancy,
  });
  const tls = options.tls ?? loadTlsFiles(config);
  const server = createHttpServer(options, tls, httpRouter, gateway, log);
  const built = { nodeId, config, server, gateway, router, hooks, metrics, httpRouter, engines };
  return nodeHandle(
    { ...built, authenticator, log, internals, backend },
    { tls, operator, state, rpc, tracing },
  );
}

/** The router of publishes: validation, limits, the backend's publish proxy, history, fan-out. */
function buildRouter(
  base: NodeBase,
  options: NodeOptions,
  parts: Pick<EventRouterOptions, 'limiter' | 'atRest' | 'tracing'> & {
    readonly broker: ConstructorParameters<typeof EventRouter>[0];
    readonly channels: ConstructorParameters<typeof EventRouter>[1];
    readonly proxy: ReturnType<typeof buildProxy>;
  },
): EventRouter {
  const { config, hooks, clock } = base;
  return new EventRouter(parts.broker, parts.channels, hooks, clock, {
    maxMessageBytes: config.maxMessageBytes,
    shape: { maxDepth: config.jsonBounds.payloadMaxDepth, maxWidth: config.jsonBounds.payloadMaxWidth },
    history: { size: config.history.size, ttlMs: config.history.ttlMs },
    idempotencyWindowMs: config.idempotencyWindowMs,
    durable: options.durable,
    limiter: parts.limiter,
    atRest: parts.atRest,
    approvePublish: publishApproval(parts.proxy),
    tracing: parts.tracing,
  });
}

/** RPC from clients to services; `gateway` is read when a call needs a connection (built after this). */
function buildRpc(
  base: NodeBase,
  broker: ConstructorParameters<typeof RpcService>[0]['broker'],
  engines: Engines,
  gateway: () => ApiXGateway,
): RpcService {
  const rpc = new RpcService({
    ...base,
    broker,
    registry: engines.rpcRegistry,
    connection: (id): Connection | undefined => gateway().connections.get(id),
    refused: (conn, scope) => gateway().sanctions.refused(conn, scope),
  });
  base.hooks.attach({ onDisconnect: ({ connection }) => rpc.closed(connection.connectionId) });
  return rpc;
}

/** The node as its users see it: its components, listen, its URLs, and a graceful close. */
function nodeHandle(
  parts: Omit<ApiXNode, 'listen' | 'wsUrl' | 'httpUrl' | 'close'>,
  own: {
    readonly tls: TlsFiles | undefined;
    readonly operator: OperatorTools;
    readonly state: { draining: boolean };
    readonly rpc: RpcService;
    readonly tracing: Tracing | undefined;
  },
): ApiXNode {
  const { config, server, gateway, engines, log } = parts;
  const { tls, operator } = own;
  let port = 0;
  const node: ApiXNode = {
    ...parts,
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
      own.rpc.start();
      parts.backend.start();
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
      own.state.draining = true;
      operator.stop();
      own.rpc.stop();
      await gateway.drain();
      // After the drain (its connection.closed events), before the engines: what is buffered is queued.
      await parts.backend.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      await engines.close();
      // Exports the spans still batched; an unreachable collector does not fail the close.
      await own.tracing
        ?.shutdown()
        .catch((err: unknown) => log.warn({ err }, 'trace export at close failed'));
    },
  };
  return node;
}

/** `openNode` could not open the engines or the records (`message` says which; `cause` is why). */
export class NodeOpenError extends Error {}

/**
 * What `apix serve` runs: the engines the config selects, the records when APIX_RECORDS is on (loaded
 * only then), and the node over both, with the records' audit API and gauges attached.
 */
export async function openNode(
  config: Config,
  deps: { readonly log: Logger; readonly tls?: TlsFiles },
): Promise<{ readonly node: ApiXNode; readonly records: Records | undefined }> {
  // Both at once: the database's start (PGlite's, or PostgreSQL's connect and migration check) does not
  // wait for Redis's connect, nor the other way round.
  const [enginesOpen, recordsOpen] = await Promise.allSettled([
    createEngines(config, { nodeId: config.nodeId!, logger: deps.log }),
    config.records
      ? import('./records.ts').then(({ openRecords }) =>
          openRecords(config, { clock: systemClock, random: Math.random, log: deps.log }),
        )
      : Promise.resolve(undefined),
  ]);
  if (enginesOpen.status === 'rejected') {
    if (recordsOpen.status === 'fulfilled') await recordsOpen.value?.close();
    throw new NodeOpenError('cannot start the engines', { cause: enginesOpen.reason });
  }
  const engines: Engines = enginesOpen.value;
  if (recordsOpen.status === 'rejected') {
    await engines.close();
    throw new NodeOpenError('cannot open the database', { cause: recordsOpen.reason });
  }
  const records: Records | undefined = recordsOpen.value;
  const node = createNode({
    config,
    engines,
    logger: deps.log,
    ...(deps.tls ? { tls: deps.tls } : {}),
    ...(records
      ? {
          apiKeys: records.apiKeys,
          channels: records.channels,
          deadLetters: records.deadLetters,
          webhooks: records.webhooks,
          hooks: records.hooks,
          readiness: records.readiness,
          durable: records.durable,
          durableReplay: records.durableReplay,
        }
      : {}),
  });
  records?.attach(node);
  if (records) node.internals.add('records', records);
  return { node, records };
}

function hostFor(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}
