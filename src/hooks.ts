/**
 * Named lifecycle hooks. Audit, latency tracking, persistence and metrics attach here instead of being
 * called inline from the gateway. Handlers run synchronously on the gateway's path: they must be cheap
 * (enqueue, count) and must not throw; an exception is caught and logged, never propagated.
 */
import type { ClientType, ChannelType, ConnectionStatus, ErrorCode } from '@apix/protocol';
import type { Principal, Peer } from './auth/principal.ts';

export interface ConnectionInfo {
  readonly connectionId: string;
  readonly sessionId: string;
  readonly clientType: ClientType;
  readonly principal: Principal;
  readonly peer: Peer;
  readonly status: ConnectionStatus;
  readonly connectedAt: number;
  readonly channels: readonly string[];
  readonly metadata: Record<string, unknown> | undefined;
}

export interface HookEvents {
  /** A connection completed `connect` (resumed or new). */
  onConnect: { connection: ConnectionInfo; resumed: boolean };
  /** A connection attempt was refused (before or at `connect`), with the reason. */
  onConnectRefused: {
    peer: Peer;
    code: ErrorCode | 'ORIGIN' | 'PROTOCOL';
    reason: string;
    orgId?: string;
    userId?: string;
  };
  /** Authentication failed (bad, expired or revoked token or key), on WS or HTTP. */
  onAuthFailure: { peer: Peer; code: ErrorCode; reason: string; via: 'ws' | 'http' | 'refresh' };
  onSubscribe: {
    connection: ConnectionInfo;
    channel: string;
    channelType: ChannelType;
    granted: boolean;
    code?: ErrorCode;
    reason?: string;
  };
  onUnsubscribe: { connection: ConnectionInfo; channel: string; reason: string };
  /** An event was accepted and given an id. `connection` is absent for HTTP publishes. */
  onPublish: {
    principal: Principal;
    peer: Peer;
    connection: ConnectionInfo | undefined;
    channel: string;
    channelType: ChannelType;
    type: string;
    id: string;
    bytes: number;
  };
  /** A permission denial (publish, subscribe, history). */
  onDeny: {
    principal: Principal;
    peer: Peer;
    action: 'publish' | 'subscribe' | 'history';
    channel: string;
    reason: string;
  };
  /** One event fanned out on this node: one call per event per node, never per subscriber. */
  onDeliver: {
    /** The channel's organization; `_` for `system` channels (shared by every organization). */
    orgId: string;
    /** The channel name, relative to its organization. */
    channel: string;
    channelType: ChannelType;
    publishedAt: number;
    deliveredAt: number;
    recipients: number;
    bytes: number;
  };
  /** `orgId`: the acknowledging session's organization. */
  onAck: { orgId: string; channelType: ChannelType; publishedAt: number; ackedAt: number };
  onDeadLetter: { orgId: string; channel: string; eventId: string; sessionId: string; attempts: number };
  onHeartbeat: { connectionId: string; sessionId: string; rttMs: number | undefined; at: number };
  onDisconnect: { connection: ConnectionInfo; code: number; reason: string; status: ConnectionStatus };
  onSlowConsumer: { connection: ConnectionInfo; bufferedBytes: number };
  /** A connection entered or left degraded mode (src/connections/qos.ts). */
  onQos: { connection: ConnectionInfo; state: 'degraded' | 'normal'; reason: string };
  /** An event held for a degraded connection was replaced by a later one of the same key. */
  onCoalesced: { channelType: ChannelType };
  onRateLimited: { principal: Principal | undefined; peer: Peer; scope: string };
  /** A suspension made or lifted: of a session, or (`sessionId` empty) of every session of a user or key. */
  onSuspend: {
    orgId: string;
    sessionId: string;
    by: string;
    reason: string;
    suspended: boolean;
    userId?: string;
    scope?: 'session' | 'user' | 'key';
  };
  /** A session ended for good: its resume window passed, or it cannot outlive this node (memory engine). */
  onSessionEnd: { orgId: string; userId: string; sessionId: string; status: ConnectionStatus };
  /** A proxy call's decision (src/backend/proxy.ts): from the backend, its cache, or the failure policy. */
  onProxyDecision: {
    kind: 'connect' | 'subscribe' | 'publish';
    principal: Principal;
    peer: Peer;
    /** The channel (subscribe, publish) or the session id (connect). */
    target: string;
    allowed: boolean;
    source: 'backend' | 'cache' | 'policy';
    code?: ErrorCode;
    reason?: string;
  };
  /**
   * This node's first subscription on a channel (`occupied`) or its last one gone: the webhooks decide
   * `channel.occupied` / `vacated` cluster-wide from these. `key`: `<org>/<channel>`.
   */
  onChannelLocal: { key: string; occupied: boolean };
  /** A connection joined or left a room's presence (this node's member). */
  onPresence: {
    orgId: string;
    channel: string;
    userId: string;
    clientId: string;
    connectionId: string;
    joined: boolean;
  };
  /**
   * A stream (PROTOCOL-1.1 section 11) ended: `stream.end` or aborted. Emitted by the streams module when it
   * exists; the webhooks send it as `stream.ended`.
   */
  onStreamEnded: {
    orgId: string;
    channel: string;
    streamId: string;
    status: string;
    bytes?: number;
    appends?: number;
  };
  /** A node-to-node control message no core component handles (extensions: server-side subscriptions). */
  onClusterControl: {
    message: { readonly kind: string; readonly from: string; readonly [f: string]: unknown };
  };
  onAdminAction: { principal: Principal; peer: Peer; action: string; target: string; detail?: unknown };
}

export type HookName = keyof HookEvents;
export type GatewayHooks = { [K in HookName]?: (event: HookEvents[K]) => void };

/** Hooks called on every publish, delivery and ack: APIX_METRICS=false leaves the instrumentation's out. */
export const PER_EVENT_HOOKS = ['onPublish', 'onDeliver', 'onAck'] as const satisfies readonly HookName[];

/** `hooks` without its per-event handlers (PER_EVENT_HOOKS). */
export function withoutPerEventHooks(hooks: GatewayHooks): GatewayHooks {
  const rest: GatewayHooks = { ...hooks };
  for (const name of PER_EVENT_HOOKS) delete rest[name];
  return rest;
}

export class HookBus {
  private readonly handlers: { [K in HookName]?: Array<(event: HookEvents[K]) => void> } = {};
  constructor(private readonly onError: (name: HookName, err: unknown) => void = () => {}) {}

  /** Attaches every handler the object defines; returns a function that detaches them. */
  attach(hooks: GatewayHooks): () => void {
    const added: Array<[HookName, (e: never) => void]> = [];
    for (const name of Object.keys(hooks) as HookName[]) {
      const fn = hooks[name] as ((e: never) => void) | undefined;
      if (!fn) continue;
      ((this.handlers[name] ??= []) as Array<(e: never) => void>).push(fn);
      added.push([name, fn]);
    }
    return () => {
      for (const [name, fn] of added) {
        const list = this.handlers[name] as Array<(e: never) => void> | undefined;
        const i = list?.indexOf(fn) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
      }
    };
  }

  /** True when someone listens: lets callers skip building an event object nobody reads. */
  has(name: HookName): boolean {
    return (this.handlers[name]?.length ?? 0) > 0;
  }

  emit<K extends HookName>(name: K, event: HookEvents[K]): void {
    const list = this.handlers[name] as Array<(e: HookEvents[K]) => void> | undefined;
    if (!list) return;
    for (const fn of list) {
      try {
        fn(event);
      } catch (err) {
        this.onError(name, err);
      }
    }
  }
}
