/**
 * The `connect` handshake, as named steps: authenticate -> claim session -> restore -> catch up ->
 * establish. A step that refuses the connection answers it and returns undefined (or false); the
 * client may leave during any await, which each step after one checks.
 */
import {
  ApiXError,
  channelKey,
  ChannelType,
  CloseCode,
  ConnectionStatus,
  isApiXError,
  parseChannel,
} from '@apix/protocol';
import type { ApiXConnection, Denial } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { Broker } from '../broker/broker.ts';
import type { DrainResult } from '../queue/queue.ts';
import type { SessionStore, SessionSnapshot } from '../sessions/session-store.ts';
import type { FoundSuspension } from '../suspension/suspension-store.ts';
import type { SuspensionGuard } from '../suspension/suspension-guard.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import type { RateLimiter, RateLimitScope } from '../ratelimit/rate-limiter.ts';
import type { RateLimitedError } from '../ratelimit/rate-limiter.ts';
import type { PendingJournal } from '../retry/pending-journal.ts';
import type { PendingEntry } from '../pending/pending-store.ts';
import type { MessageQueueManager } from '../queue/message-queue-manager.ts';
import type { Replay, SubscriptionManager } from '../subscriptions/subscription-manager.ts';
import { rateLimitedDenial } from '../subscriptions/subscription-manager.ts';
import type { Rooms } from '../subscriptions/rooms.ts';
import type { HookBus } from '../hooks.ts';
import type { Principal } from '../auth/principal.ts';
import { encodeControl } from '../gateway/frames.ts';
import { Phase } from './session.ts';
import type { Connection } from './session.ts';
import type { ConnectionManager } from './connection-manager.ts';
import type { Replies } from './replies.ts';
import { Session, sessionKey } from './session.ts';
import { resumeFrom } from './resume.ts';
import type { BackendProxy } from '../backend/proxy.ts';
import { approveConnect } from '../backend/proxy-steps.ts';
import type { ConnectApproval } from '../backend/proxy-steps.ts';
import type { ResumePlan } from './resume.ts';

export interface HandshakeDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly hooks: HookBus;
  readonly broker: Broker;
  readonly authenticator: Authenticator;
  readonly suspensions: SuspensionGuard;
  readonly sessionStore: SessionStore;
  readonly limiter: RateLimiter;
  readonly pending: PendingJournal;
  readonly connections: ConnectionManager;
  readonly subscriptions: SubscriptionManager;
  readonly queue: MessageQueueManager;
  readonly rooms: Rooms;
  readonly replies: Replies;
  refused(conn: Connection, scope: RateLimitScope): boolean;
  /** The frames the client sent while `connect` was running, handled now (in order). */
  replayEarly(conn: Connection): void;
  /** The backend's proxy calls: it decides `connect` when APIX_PROXY_CONNECT_URL is set. */
  readonly proxy?: BackendProxy | undefined;
}

/** The session a connection claimed: held here before, restored from another node's snapshot, or new. */
interface Claim {
  readonly principal: Principal;
  readonly session: Session;
  readonly resumed: boolean;
  readonly snapshot: SessionSnapshot | undefined;
}

/** What the restore and the subscriptions of `connect` gathered for `connection.established`. */
interface Restored {
  readonly denied: Denial[];
  readonly recovered: Record<string, boolean>;
  readonly replays: Replay[];
  /** Subscriptions of the session that the new credentials do not allow (resume, takeover): dropped. */
  readonly revoked: string[];
  /** What the backend's connect proxy allowed. */
  readonly backend: ConnectApproval;
  /** The channels of `connect.subscriptions` granted now, for `onSubscribe` (webhooks, audit). */
  readonly added: Array<{ channel: string; channelType: ChannelType }>;
}

/** What the session missed while away: its in-flight events (pending store) and its offline queue. */
interface CaughtUp {
  readonly taken: { entries: readonly PendingEntry[] } | undefined;
  readonly queued: DrainResult | undefined;
}

export class Handshake {
  constructor(private readonly deps: HandshakeDeps) {}

  async connect(conn: Connection, payload: ApiXConnection, correlationId: string | undefined): Promise<void> {
    const authenticated = await this.authenticate(conn, payload, correlationId);
    if (!authenticated) return;
    const backend = await this.approveConnect(conn, payload, authenticated, correlationId);
    if (!backend) return;
    const claim = await this.claimSession(conn, backend.payload, backend.principal, correlationId);
    if (!claim) return;
    // Where each channel replays from: the client's last id; else the replay it asked for when it has no
    // position (a reloaded page: the session's own position is where its previous page stopped); else the
    // session's position. The replays the client asked for go out first, before queued and in-flight events.
    const resume = resumeFrom(payload.resume?.lastEventIds ?? {}, payload.resume?.replay);
    const restored: Restored = { denied: [], recovered: {}, replays: [], revoked: [], backend, added: [] };
    await this.restore(conn, claim, resume, restored);
    if (!(await this.subscribeAsked(conn, claim, backend.payload, resume, restored))) return;
    const caughtUp = await this.catchUp(claim);
    this.establish(conn, claim, resume, restored, caughtUp, correlationId);
  }

  /** Step 1: the credentials, and no suspension of the session or its user. */
  private async authenticate(
    conn: Connection,
    payload: ApiXConnection,
    correlationId: string | undefined,
  ): Promise<Principal | undefined> {
    const { hooks } = this.deps;
    let principal;
    let suspension: FoundSuspension | undefined;
    try {
      principal = await this.deps.authenticator.authenticate(
        payload.authentication.token,
        payload.authentication.organizationId,
      );
      suspension = await this.deps.suspensions.find(principal.orgId, principal.userId, payload.sessionId);
    } catch (err) {
      const e = isApiXError(err) ? err : new ApiXError('UNAUTHORIZED', 'authentication failed');
      hooks.emit('onAuthFailure', { peer: conn.peer, code: e.code, reason: e.message, via: 'ws' });
      hooks.emit('onConnectRefused', { peer: conn.peer, code: e.code, reason: e.message });
      this.deps.replies.fail(conn, e.code, e.message, true, correlationId);
      return undefined;
    }
    if (!conn.isOpen && conn.phase !== Phase.CONNECTING) return undefined;
    conn.authenticated(principal, payload.clientType);
    if (suspension) {
      hooks.emit('onConnectRefused', {
        peer: conn.peer,
        code: 'FORBIDDEN',
        reason: `${suspension.scope} suspended`,
        orgId: principal.orgId,
        userId: principal.userId,
      });
      this.deps.replies.disconnect(
        conn,
        'FORBIDDEN',
        suspension.scope === 'user' ? 'this user is suspended' : 'session is suspended',
        CloseCode.SUSPENDED,
        false,
        correlationId,
      );
      return undefined;
    }
    return principal;
  }

  /** Step 1b: the backend's connect proxy, when set: it may refuse, or add channels, data and an expiry. */
  private async approveConnect(
    conn: Connection,
    payload: ApiXConnection,
    principal: Principal,
    correlationId: string | undefined,
  ): Promise<ConnectApproval | undefined> {
    const approval = await approveConnect(this.deps.proxy, conn, payload, principal);
    if (!conn.isOpen) return undefined;
    if ('refused' in approval) {
      const { refused: code, message: reason } = approval;
      const { orgId, userId } = principal;
      this.deps.hooks.emit('onConnectRefused', { peer: conn.peer, code, reason, orgId, userId });
      this.deps.replies.fail(conn, code, reason, true, correlationId);
      return undefined;
    }
    if (approval.principal !== principal) conn.refreshed(approval.principal);
    return approval;
  }

  /**
   * Step 2: the connection caps, then the session: held here (resumed, or taken over from its previous
   * connection), held by another node (its snapshot in the store), or new.
   */
  private async claimSession(
    conn: Connection,
    payload: ApiXConnection,
    principal: Principal,
    correlationId: string | undefined,
  ): Promise<Claim | undefined> {
    const { connections } = this.deps;
    const key = sessionKey(principal.orgId, principal.userId, payload.sessionId);
    const capped = connections.claimConnectionSlot(conn, principal.orgId, principal.userId, key);
    if (capped) {
      this.deps.hooks.emit('onConnectRefused', {
        peer: conn.peer,
        code: 'RATE_LIMITED',
        reason: capped,
        orgId: principal.orgId,
        userId: principal.userId,
      });
      this.deps.replies.fail(conn, 'RATE_LIMITED', capped, true, correlationId);
      return undefined;
    }
    let session = connections.sessions.get(key);
    let resumed: boolean;
    let snapshot: SessionSnapshot | undefined;
    if (session) {
      resumed = true;
      session.expiryTimer?.cancel();
      session.expiryTimer = undefined;
      const previous = session.connection;
      if (previous && previous !== conn) connections.takeOver(previous);
      session.principal = principal;
    } else {
      snapshot = await this.deps.sessionStore.load(key).catch(() => undefined);
      if (snapshot?.suspended) {
        this.deps.replies.disconnect(
          conn,
          'FORBIDDEN',
          'session is suspended',
          CloseCode.SUSPENDED,
          false,
          correlationId,
        );
        return undefined;
      }
      session = new Session(key, payload.sessionId, principal, payload.clientType);
      resumed = snapshot !== undefined;
      connections.sessions.set(key, session);
      if (snapshot && snapshot.nodeId !== this.deps.nodeId)
        this.deps.broker
          .publishControl({ kind: 'session.taken', from: this.deps.nodeId, key })
          .catch(() => {});
    }
    if (!conn.isOpen) {
      // The client left (or is closing) while we were authenticating or loading its session. A session
      // made here is forgotten (a snapshot stays in the store for its TTL); one held here before waits for
      // a resume again, its expiry timer having been cancelled above (the soak found such sessions held
      // forever, with their subscriptions).
      if (snapshot !== undefined || !resumed) {
        if (connections.sessions.get(key) === session) connections.sessions.delete(key);
      } else if (!session.isLive) connections.awaitResume(session);
      return undefined;
    }
    session.connection = conn;
    session.status = ConnectionStatus.CONNECTED;
    conn.established(session, payload.metadata);
    return { principal, session, resumed, snapshot };
  }

  /** Step 3: the session's subscriptions, as far as the new credentials allow. */
  private async restore(conn: Connection, claim: Claim, resume: ResumePlan, out: Restored): Promise<void> {
    if (claim.snapshot) await this.restoreSnapshot(conn, claim.session, claim.snapshot, resume, out);
    else if (claim.resumed) await this.recheckHeld(conn, claim.session, resume, out);
  }

  /** Restores a session from another node's snapshot, as far as the new credentials allow. */
  private async restoreSnapshot(
    conn: Connection,
    session: Session,
    snapshot: SessionSnapshot,
    { from }: ResumePlan,
    out: Restored,
  ): Promise<void> {
    const subs = this.deps.subscriptions;
    for (const s of snapshot.subscriptions) {
      const parsed = parseChannel(s.channel);
      if (!parsed.ok) continue;
      const check =
        subs.checkSubscribe(conn, session, parsed.channel, false) ??
        (await this.reapprove(conn, s.channel, out));
      if (check) {
        out.denied.push(check);
        out.revoked.push(s.channel);
        continue;
      }
      // Sent nothing yet on the other node: replay after the channel's top when it subscribed.
      const f = from(s.channel, s.lastId ?? s.attachedAt);
      const wants = f.since !== undefined || f.last !== undefined;
      const may = wants && subs.mayReplay(conn, session, parsed.channel);
      const r = await subs.attach(
        session,
        parsed.channel,
        s.ack,
        s.filters,
        may ? f.since : undefined,
        may ? f.last : undefined,
        true,
      );
      if (r.sub) {
        out.recovered[s.channel] = (!wants || may) && r.recovered;
        out.replays.push({ sub: r.sub, events: r.events });
      }
    }
  }

  /** Same node (a resume or a takeover): the new credentials decide which subscriptions stay. */
  private async recheckHeld(
    conn: Connection,
    session: Session,
    { from, asked }: ResumePlan,
    out: Restored,
  ): Promise<void> {
    const subs = this.deps.subscriptions;
    for (const sub of [...session.subscriptions.values()]) {
      const check =
        subs.checkSubscribe(conn, session, sub.channel, false) ?? (await this.reapprove(conn, sub.name, out));
      // Gone while the backend was asked (an unsubscribe, a server-side change): nothing to revoke.
      if (!check || session.subscriptions.get(sub.key) !== sub) continue;
      subs.remove(sub, 'resumed with credentials that do not allow it');
      out.denied.push(check);
      out.revoked.push(sub.name);
    }
    // The others are still in the hub; catch up plain ones from history.
    for (const sub of session.subscriptions.values()) {
      if (sub.queuesWhileAway && !asked(sub.name)) continue;
      const f = from(sub.name, sub.lastId);
      const missedFrom = f.since === undefined && f.last === undefined ? sub.missedFrom : undefined;
      sub.missedFrom = undefined;
      if (f.since === undefined && f.last === undefined && missedFrom === undefined) continue;
      if (!subs.mayReplay(conn, session, sub.channel)) {
        out.recovered[sub.name] = false;
        continue;
      }
      sub.pending = [];
      const h =
        missedFrom === undefined
          ? await subs.readHistory(sub.key, f.since, f.last)
          : await subs.readHistoryFrom(sub.key, missedFrom);
      out.recovered[sub.name] = h.recovered;
      out.replays.push({ sub, events: h.events });
    }
  }

  /**
   * A subscription a resume keeps is asked of the backend's subscribe proxy again, as a new one is (its
   * decision cache answers when it can): the backend may have changed its mind while the client was away,
   * and a resume must not keep what a fresh subscribe would be refused. Channels its connect proxy granted
   * just now are not asked (as in `subscribeAsked`).
   */
  private reapprove(conn: Connection, name: string, out: Restored): Promise<Denial | undefined> {
    if (out.backend.granted.has(name)) return Promise.resolve(undefined);
    return this.deps.subscriptions.approve(conn, name);
  }

  /** Step 3, continued: the subscriptions asked for in `connect`. False when the connection is gone. */
  private async subscribeAsked(
    conn: Connection,
    claim: Claim,
    payload: ApiXConnection,
    { from }: ResumePlan,
    out: Restored,
  ): Promise<boolean> {
    const { principal, session } = claim;
    const subs = this.deps.subscriptions;
    let limited: RateLimitedError | undefined;
    for (const name of payload.subscriptions) {
      const parsed = parseChannel(name);
      if (!parsed.ok) {
        out.denied.push({ channel: name, code: 'BAD_REQUEST', message: parsed.reason });
        continue;
      }
      if (session.subscriptions.has(channelKey(principal.orgId, parsed.channel))) continue;
      if (out.revoked.includes(name)) continue;
      const check =
        subs.checkSubscribe(conn, session, parsed.channel) ??
        (out.backend.granted.has(name) ? undefined : await subs.approve(conn, name));
      if (check) {
        out.denied.push(check);
        continue;
      }
      limited ??= await this.deps.limiter.checkSubscribe(principal, conn.peer);
      if (limited) {
        out.denied.push(rateLimitedDenial(name, limited));
        continue;
      }
      const f = from(name, undefined);
      const may =
        (f.since !== undefined || f.last !== undefined) && subs.mayReplay(conn, session, parsed.channel);
      const r = await subs.attach(
        session,
        parsed.channel,
        false,
        undefined,
        may ? f.since : undefined,
        may ? f.last : undefined,
        false,
      );
      if (r.sub) {
        if (f.since !== undefined) out.recovered[name] = may && r.recovered;
        out.replays.push({ sub: r.sub, events: r.events });
        out.added.push({ channel: name, channelType: parsed.channel.type });
      }
    }
    if (limited && this.deps.refused(conn, limited.scope)) return false;
    return conn.isOpen;
  }

  /** Step 4: what a resumed session missed: its in-flight events when its node died (or left), its queue. */
  private async catchUp(claim: Claim): Promise<CaughtUp> {
    const { session, resumed } = claim;
    // In-flight events the session had when its node died (or left): taken over, redelivered first.
    const taken =
      resumed && [...session.subscriptions.values()].some((s) => s.ack)
        ? await this.deps.pending.take(session.key).catch(() => undefined)
        : undefined;
    const queued = resumed ? await this.deps.queue.drain(session.key) : undefined;
    this.deps.connections.saveSnapshot(session);
    return { taken, queued };
  }

  /** Step 5: `connection.established`, then what was missed, replays, rooms, hooks, early frames. */
  private establish(
    conn: Connection,
    claim: Claim,
    { asked }: ResumePlan,
    restored: Restored,
    caughtUp: CaughtUp,
    correlationId: string | undefined,
  ): void {
    const { principal, session, resumed } = claim;
    const { denied, recovered, replays, revoked } = restored;
    const { hooks } = this.deps;
    const now = this.deps.clock.now();
    conn.send(
      encodeControl(
        'connection.established',
        {
          connectionId: conn.id,
          sessionId: session.sessionId,
          resumed,
          heartbeatIntervalMs: this.deps.config.heartbeatIntervalMs,
          subscriptions: [...session.subscriptions.values()].map((s) => s.name),
          denied,
          recovered,
          userId: principal.userId,
          organizationId: principal.orgId,
          ...(principal.expiresAt !== undefined ? { expiresAt: principal.expiresAt * 1000 } : {}),
          ...(conn.transport.sessionToken !== undefined ? { sessionToken: conn.transport.sessionToken } : {}),
          ...(restored.backend.data !== undefined ? { data: restored.backend.data } : {}),
        },
        now,
        correlationId,
      ),
    );
    if (revoked.length > 0) {
      // `denied` in connection.established says, per channel, who refused it (its code and message).
      const reason = 'the credentials of this connection, or the backend, no longer allow it';
      conn.send(encodeControl('subscription.removed', { channels: revoked, reason }, now));
      for (const channel of revoked)
        hooks.emit('onUnsubscribe', { connection: conn.info(), channel, reason });
    }
    const sent = new Set<string>();
    const { taken, queued } = caughtUp;
    const subs = this.deps.subscriptions;
    const first = replays.filter((r) => asked(r.sub.name));
    for (const r of first) subs.flushReplay(r.sub, r.events, sent);
    if (taken && taken.entries.length > 0) this.deps.queue.sendPending(session, taken.entries, sent);
    if (queued) this.deps.queue.sendQueued(session, queued.frames, sent);
    for (const r of replays) if (!asked(r.sub.name)) subs.flushReplay(r.sub, r.events, sent);
    // Every subscription (replayed or kept in the hub) gets the open streams of its channel as snapshots.
    const replayed = new Map(replays.map((r) => [r.sub, r.events]));
    for (const sub of session.subscriptions.values()) subs.joinStreams(sub, replayed.get(sub) ?? []);
    for (const sub of session.subscriptions.values())
      if (sub.type === ChannelType.ROOM) void this.deps.rooms.join(conn, sub);
    // Not when the client already left during the awaits above: onClose has emitted onDisconnect, and a
    // late onConnect would leave it counted as connected (the latency tracker, the records).
    if ((conn.phase as Phase) !== Phase.CLOSED) {
      hooks.emit('onConnect', { connection: conn.info(), resumed });
      // Granted as a `subscribe` would be: the same hook (docs/backend.md: subscription.added covers these).
      for (const a of restored.added)
        hooks.emit('onSubscribe', { connection: conn.info(), ...a, granted: true });
    }
    for (const d of denied) this.deps.subscriptions.emitSubscribeDenied(conn, d);
    this.deps.replayEarly(conn);
  }

  /** `auth.refresh`: a new token for the same user; what it no longer allows is revoked. */
  async refresh(conn: Connection, token: string, correlationId: string | undefined): Promise<void> {
    const session = conn.session!;
    try {
      const p = await this.deps.authenticator.authenticate(token);
      if (p.orgId !== session.orgId || p.userId !== session.userId)
        throw new ApiXError('UNAUTHORIZED', 'refreshed token is for another user or organization');
      session.principal = p;
      conn.refreshed(p);
      conn.send(
        encodeControl(
          'auth.refreshed',
          { expiresAt: (p.expiresAt ?? 0) * 1000 },
          this.deps.clock.now(),
          correlationId,
        ),
      );
      // The new token may carry other roles: what it no longer allows is revoked.
      this.deps.subscriptions.revokeDenied(
        [...session.subscriptions.values()],
        'refreshed token no longer allows it',
      );
    } catch (err) {
      const e = isApiXError(err) ? err : new ApiXError('UNAUTHORIZED', 'refresh failed');
      this.deps.hooks.emit('onAuthFailure', {
        peer: conn.peer,
        code: e.code,
        reason: e.message,
        via: 'refresh',
      });
      this.deps.replies.fail(conn, e.code, e.message, false, correlationId);
    }
  }
}
