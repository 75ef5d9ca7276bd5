/**
 * What the audit trail records, from the gateway's named hooks: who (actor), which organization, when,
 * what (action, target, detail) and from where (remote address, user agent) for every connection
 * attempt accepted or refused (with its reason), authentication failure, subscription granted or denied,
 * publish, permission denial, suspension, dead letter, admin action and proxy-call decision.
 */
import type { GatewayHooks, HookBus } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import type { AuditEntryInput, AuditLogger } from './audit-logger.ts';
import type { DenialAggregator } from './denial-aggregator.ts';

/** The actions written, for `GET /v1/audit?type=` and `apix audit tail --type`. */
export const AuditAction = {
  CONNECTION_ACCEPTED: 'connection.accepted',
  CONNECTION_REFUSED: 'connection.refused',
  CONNECTION_CLOSED: 'connection.closed',
  AUTH_FAILED: 'auth.failed',
  SUBSCRIPTION_GRANTED: 'subscription.granted',
  SUBSCRIPTION_DENIED: 'subscription.denied',
  EVENT_PUBLISHED: 'event.published',
  PERMISSION_DENIED: 'permission.denied',
  SESSION_SUSPENDED: 'session.suspended',
  SESSION_UNSUSPENDED: 'session.unsuspended',
  MESSAGE_DEAD_LETTERED: 'message.dead_lettered',
  RATE_LIMITED: 'rate_limited',
  /** A proxy call allowed or refused a connect, subscribe or publish (detail: kind, source, code). */
  PROXY_ALLOWED: 'proxy.allowed',
  PROXY_DENIED: 'proxy.denied',
  /** `admin.<action>`, e.g. `admin.suspend`, `admin.kick`, `admin.keys.create`. */
  ADMIN_PREFIX: 'admin.',
} as const;

export interface AuditHookOptions {
  /** Record every publish (default true). Off for very high publish rates where the volume is unwanted. */
  readonly publishes?: boolean;
  /** Record connection closes (default true). */
  readonly disconnects?: boolean;
  /** Record rate-limit hits (default false: under abuse they would flood the trail). */
  readonly rateLimits?: boolean;
  /**
   * Aggregates denials (subscription denied, permission denied) per connection, or per principal and
   * address, and window; absent: every denial is one entry.
   */
  readonly denials?: DenialAggregator;
}

function actorOf(p: Principal): string {
  return p.kind === 'apiKey' && p.keyId ? `apikey:${p.keyId}` : p.userId;
}

function from(peer: Peer): Pick<AuditEntryInput, 'remoteAddress' | 'userAgent'> {
  return { remoteAddress: peer.remoteAddress, userAgent: peer.userAgent };
}

/** The hook handlers (exposed for tests); `attachAuditHooks` attaches them. */
export function auditHooks(audit: AuditLogger, options: AuditHookOptions = {}): GatewayHooks {
  const denials = options.denials;
  const deny = (source: string, entry: AuditEntryInput): void => {
    if (denials) denials.deny(source, entry);
    else audit.record(entry);
  };
  const hooks: GatewayHooks = {
    ...connectionHooks(audit),
    ...accessHooks(audit, deny),
    ...operatorHooks(audit),
    ...backendHooks(audit),
  };
  addOptionalHooks(hooks, audit, options);
  return hooks;
}

/** Connections accepted or refused, and authentication failures. */
function connectionHooks(
  audit: AuditLogger,
): Pick<GatewayHooks, 'onConnect' | 'onConnectRefused' | 'onAuthFailure'> {
  return {
    onConnect({ connection: c, resumed }) {
      audit.record({
        orgId: c.principal.orgId,
        actor: actorOf(c.principal),
        action: AuditAction.CONNECTION_ACCEPTED,
        target: c.sessionId,
        detail: {
          connectionId: c.connectionId,
          clientType: c.clientType,
          resumed,
          auth: c.principal.kind,
          roles: c.principal.roles,
          origin: c.peer.origin ?? null,
          // When the socket opened; the entry's own time is when the connection was accepted.
          openedAt: c.connectedAt,
        },
        ...from(c.peer),
      });
    },
    onConnectRefused({ peer, code, reason, orgId, userId }) {
      audit.record({
        orgId,
        actor: userId ?? 'anonymous',
        action: AuditAction.CONNECTION_REFUSED,
        detail: { code, reason, origin: peer.origin ?? null },
        ...from(peer),
      });
    },
    onAuthFailure({ peer, code, reason, via }) {
      audit.record({
        actor: 'anonymous',
        action: AuditAction.AUTH_FAILED,
        detail: { code, reason, via, origin: peer.origin ?? null },
        ...from(peer),
      });
    },
  };
}

/** Subscriptions granted or denied, and permission denials (`deny`: aggregated or recorded). */
function accessHooks(
  audit: AuditLogger,
  deny: (source: string, entry: AuditEntryInput) => void,
): Pick<GatewayHooks, 'onSubscribe' | 'onDeny'> {
  return {
    onSubscribe({ connection: c, channel, channelType, granted, code, reason }) {
      const entry: AuditEntryInput = {
        orgId: c.principal.orgId,
        actor: actorOf(c.principal),
        action: granted ? AuditAction.SUBSCRIPTION_GRANTED : AuditAction.SUBSCRIPTION_DENIED,
        target: channel,
        detail: { channelType, sessionId: c.sessionId, ...(granted ? {} : { code, reason }) },
        ...from(c.peer),
      };
      if (granted) audit.record(entry);
      else deny(`connection ${c.connectionId}`, entry);
    },
    onDeny({ principal, peer, action, channel, reason }) {
      deny(`${principal.orgId}\n${actorOf(principal)}\n${peer.remoteAddress ?? ''}`, {
        orgId: principal.orgId,
        actor: actorOf(principal),
        action: AuditAction.PERMISSION_DENIED,
        target: channel,
        detail: { action, reason },
        ...from(peer),
      });
    },
  };
}

/** Suspensions, dead letters and admin actions. */
function operatorHooks(
  audit: AuditLogger,
): Pick<GatewayHooks, 'onSuspend' | 'onDeadLetter' | 'onAdminAction'> {
  return {
    onSuspend({ orgId, sessionId, userId, scope, by, reason, suspended }) {
      audit.record({
        orgId,
        actor: by,
        action: suspended ? AuditAction.SESSION_SUSPENDED : AuditAction.SESSION_UNSUSPENDED,
        target: sessionId || userId || orgId,
        detail: { reason, ...(scope ? { scope } : {}), ...(userId && sessionId ? { userId } : {}) },
      });
    },
    onDeadLetter({ orgId, channel, eventId, sessionId, attempts }) {
      audit.record({
        orgId,
        actor: 'gateway',
        action: AuditAction.MESSAGE_DEAD_LETTERED,
        target: channel,
        detail: { eventId, sessionId, attempts },
      });
    },
    onAdminAction({ principal, peer, action, target, detail }) {
      audit.record({
        orgId: principal.orgId,
        actor: actorOf(principal),
        action: `${AuditAction.ADMIN_PREFIX}${action}`,
        target,
        detail: detail === undefined ? {} : { detail },
        ...from(peer),
      });
    },
  };
}

/** The backend's proxy decisions: every one is recorded, with where it came from. */
function backendHooks(audit: AuditLogger): Pick<GatewayHooks, 'onProxyDecision'> {
  return {
    onProxyDecision({ kind, principal, peer, target, allowed, source, code, reason }) {
      audit.record({
        orgId: principal.orgId,
        actor: actorOf(principal),
        action: allowed ? AuditAction.PROXY_ALLOWED : AuditAction.PROXY_DENIED,
        target,
        detail: { kind, source, ...(allowed ? {} : { code, reason }) },
        ...from(peer),
      });
    },
  };
}

/** Publishes, disconnects and rate-limit hits, as the options ask. */
function addOptionalHooks(hooks: GatewayHooks, audit: AuditLogger, options: AuditHookOptions): void {
  if (options.publishes !== false)
    hooks.onPublish = ({ principal, peer, connection, channel, channelType, type, id, bytes }) => {
      audit.record({
        orgId: principal.orgId,
        actor: actorOf(principal),
        action: AuditAction.EVENT_PUBLISHED,
        target: channel,
        detail: {
          id,
          type,
          channelType,
          bytes,
          via: connection ? 'ws' : 'http',
          sessionId: connection?.sessionId ?? null,
        },
        ...from(peer),
      });
    };
  if (options.disconnects !== false)
    hooks.onDisconnect = ({ connection: c, code, reason, status }) => {
      audit.record({
        orgId: c.principal.orgId,
        actor: actorOf(c.principal),
        action: AuditAction.CONNECTION_CLOSED,
        target: c.sessionId,
        detail: { connectionId: c.connectionId, code, reason, status },
        ...from(c.peer),
      });
    };
  if (options.rateLimits)
    hooks.onRateLimited = ({ principal, peer, scope }) => {
      audit.record({
        orgId: principal?.orgId,
        actor: principal ? actorOf(principal) : 'anonymous',
        action: AuditAction.RATE_LIMITED,
        target: scope,
        ...from(peer),
      });
    };
}

/** Attaches the audit trail to the gateway's hooks; returns a function that detaches it. */
export function attachAuditHooks(
  bus: HookBus,
  audit: AuditLogger,
  options: AuditHookOptions = {},
): () => void {
  return bus.attach(auditHooks(audit, options));
}
