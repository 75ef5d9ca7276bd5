/**
 * What cuts connections for what their credentials or their behaviour earned, on every node: revoked
 * credentials (close 4001), suspensions of a session, a user or an API key (4011), and rate-limit abuse
 * (4008, or a suspension with `APIX_SUSPEND_ON_ABUSE`).
 */
import { CloseCode, ConnectionStatus } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Broker } from '../broker/broker.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Revocation } from '../auth/revocation-store.ts';
import { revocationControlMessage, revokes } from '../auth/revocation-store.ts';
import type { Suspension, SuspensionTarget } from '../suspension/suspension-store.ts';
import { suspensionControlMessage } from '../suspension/suspension-store.ts';
import type { SuspensionGuard } from '../suspension/suspension-guard.ts';
import type { RateLimitScope } from '../ratelimit/rate-limiter.ts';
import type { HookBus } from '../hooks.ts';
import { Phase } from './session.ts';
import type { Connection } from './session.ts';
import type { ConnectionManager } from './connection-manager.ts';
import type { Replies } from './replies.ts';
import { sessionKey } from './session.ts';
import type { Session } from './session.ts';

export interface SanctionsDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly hooks: HookBus;
  readonly broker: Broker;
  readonly authenticator: Authenticator;
  readonly suspensions: SuspensionGuard;
  readonly connections: ConnectionManager;
  readonly replies: Replies;
}

export class Sanctions {
  constructor(private readonly deps: SanctionsDeps) {}

  /**
   * Cuts, on every node, the live connections authenticated with revoked credentials (store them first:
   * the store refuses them at the next connect). Answers how many were cut on this node.
   */
  async revokeCredentials(revocation: Revocation, reason: string): Promise<number> {
    const cut = this.applyRevocation(revocation, reason);
    await this.deps.broker.publishControl(revocationControlMessage(revocation, this.deps.nodeId, reason));
    return cut;
  }

  /** `connection.disconnected` UNAUTHORIZED and close 4001 for every connection the revocation covers. */
  applyRevocation(revocation: Revocation, reason: string): number {
    this.deps.authenticator.noteRevocation(revocation);
    let cut = 0;
    for (const conn of this.deps.connections.connections.values()) {
      if (conn.phase === Phase.CLOSING || conn.phase === Phase.CLOSED) continue;
      if (conn.principal === undefined || !revokes(revocation, conn.principal)) continue;
      this.deps.hooks.emit('onAuthFailure', { peer: conn.peer, code: 'UNAUTHORIZED', reason, via: 'ws' });
      this.deps.replies.disconnect(conn, 'UNAUTHORIZED', reason, CloseCode.UNAUTHORIZED, false);
      cut++;
    }
    return cut;
  }

  /**
   * Suspends (or lifts the suspension of) a session, or of every session of a user or an API key
   * (`sessionId` absent), on every node: stored (every node refuses it at connect) and broadcast (every
   * node cuts the connections it covers, 4011). Answers how many were cut on this node.
   */
  async suspend(
    target: SuspensionTarget,
    suspended: boolean,
    reason: string,
    ttlMs: number = this.deps.config.suspensionTtlMs,
  ): Promise<number> {
    const expiresAt = this.deps.clock.now() + ttlMs;
    const s: Suspension = { ...target, reason, expiresAt };
    // Here first (cut, and remembered: a reconnect here is refused even if the store fails), then stored
    // (nodes that did not hear of it read it at connect), then told to the other nodes, even if storing failed.
    const cut = this.applySuspension(s, suspended);
    try {
      await this.deps.suspensions.record(s, suspended);
    } finally {
      await this.deps.broker.publishControl(
        suspensionControlMessage(this.deps.nodeId, target, suspended, reason, expiresAt),
      );
    }
    return cut;
  }

  /** Remembers (or forgets) a suspension and cuts what it covers on this node; answers how many were cut. */
  applySuspension(s: Suspension, suspended: boolean): number {
    this.deps.suspensions.heardOf(s, suspended);
    if (!suspended) return 0;
    const { sessions, connections } = this.deps.connections;
    const hit: Session[] = [];
    if (s.sessionId !== undefined) {
      const session = sessions.get(sessionKey(s.orgId, s.userId, s.sessionId));
      if (session) hit.push(session);
    } else
      for (const session of sessions.values())
        if (session.orgId === s.orgId && session.userId === s.userId) hit.push(session);
    let cut = 0;
    for (const session of hit) {
      session.status = ConnectionStatus.SUSPENDED;
      const conn = session.connection;
      if (conn) {
        this.deps.replies.disconnect(conn, 'FORBIDDEN', s.reason, CloseCode.SUSPENDED, false);
        cut++;
      } else this.deps.connections.endSession(session, true);
    }
    // A user's connections still in `connect` (their session not made yet) go too.
    if (s.sessionId === undefined)
      for (const conn of connections.values()) {
        const p = conn.principal;
        if (conn.phase !== Phase.CONNECTING || p?.orgId !== s.orgId || p.userId !== s.userId) continue;
        this.deps.replies.disconnect(conn, 'FORBIDDEN', s.reason, CloseCode.SUSPENDED, false);
        cut++;
      }
    return cut;
  }

  /**
   * Counts a refusal of a rate limit against the connection. `APIX_RATE_ABUSE_REFUSALS` of them within
   * `APIX_RATE_ABUSE_WINDOW_MS` are abuse: the connection is closed with 4008, or, with
   * `APIX_SUSPEND_ON_ABUSE`, its session is suspended on every node (4011). True when it was closed.
   */
  refused(conn: Connection, scope: RateLimitScope): boolean {
    if (conn.phase === Phase.CLOSING || conn.phase === Phase.CLOSED) return true;
    const { refusals, windowMs, suspend } = this.deps.config.rateLimits.abuse;
    const now = this.deps.clock.now();
    const count = conn.countRefusal(now, windowMs);
    if (count < refusals) return false;
    const reason = `rate limit (${scope}) exceeded repeatedly: ${count} refusals in ${windowMs} ms`;
    const session = conn.session;
    if (suspend && session && session.connection === conn) {
      this.deps.log.warn({ sessionKey: session.key, scope }, 'session suspended for rate-limit abuse');
      this.deps.hooks.emit('onSuspend', {
        orgId: session.orgId,
        userId: session.userId,
        sessionId: session.sessionId,
        by: 'rate-limit',
        reason,
        suspended: true,
      });
      const target = { orgId: session.orgId, userId: session.userId, sessionId: session.sessionId };
      this.suspend(target, true, `suspended for abuse: ${reason}`).catch((err) =>
        this.deps.log.warn({ err }, 'suspension not sent to the other nodes'),
      );
      return true;
    }
    this.deps.replies.disconnect(conn, 'RATE_LIMITED', reason, CloseCode.POLICY_VIOLATION, false);
    return true;
  }
}
