/**
 * What the gateway is given by the composition root (node.ts): its collaborators, among them the
 * delivery components (retry manager, pending journal, hub) whose callbacks it binds.
 */
import type { NodeBase } from '../node-base.ts';
import type { Broker } from '../broker/broker.ts';
import type { OfflineQueue } from '../queue/queue.ts';
import type { SessionStore } from '../sessions/session-store.ts';
import type { SuspensionStore } from '../suspension/suspension-store.ts';
import type { Presence } from '../presence/presence.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { DeadLetterStore } from '../retry/dead-letter.ts';
import type { RateLimiter } from '../ratelimit/rate-limiter.ts';
import type { Delivery } from './delivery.ts';
import type { BackendProxy } from '../backend/proxy.ts';
import type { RpcService } from '../rpc/rpc-service.ts';
import type { Streams } from '../streams/streams.ts';
import type { WriteBatcher } from '../transport/websocket/write-batcher.ts';

export interface GatewayDeps extends NodeBase {
  readonly broker: Broker;
  readonly router: EventRouter;
  readonly offlineQueue: OfflineQueue;
  readonly sessionStore: SessionStore;
  readonly presence: Presence;
  readonly authenticator: Authenticator;
  readonly channels: ChannelRegistry;
  readonly deadLetters: DeadLetterStore;
  /** Rate limits: the per-connection ones (`limiter.limits`) and the shared ones. */
  readonly limiter: RateLimiter;
  /** The retry manager, pending journal and hub, built by node.ts; the gateway binds their callbacks. */
  readonly delivery: Delivery;
  /** Suspensions of sessions, users and API keys, shared by the nodes. */
  readonly suspensions: SuspensionStore;
  /** The backend's proxy calls (connect, subscribe; publish goes through the router). */
  readonly proxy?: BackendProxy;
  /** RPC from clients to services: the `rpc.*` frames go to it. */
  readonly rpc?: Pick<RpcService, 'onFrame'>;
  /** Streams (docs/protocol.md §14); absent: `stream.*` frames are refused. */
  readonly streams?: Streams | undefined;
  /** Batches each socket's writes per flush window (`APIX_WRITE_FLUSH_MS`; disabled at 0). */
  readonly writes: WriteBatcher;
}
