/**
 * ConnectionManager: the connections and sessions of this node. It opens and closes connections, holds
 * the session registry (a session outlives its connection and waits `sessionTtlMs` for a resume), hands a
 * session over on takeover, saves session snapshots to the shared store, enforces the connection caps,
 * cuts expired tokens, and drains the node on shutdown.
 */
import { CloseCode, ConnectionStatus } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { SessionStore } from '../sessions/session-store.ts';
import type { RateLimiter } from '../ratelimit/rate-limiter.ts';
import { localBucket } from '../ratelimit/rate-limiter.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import type { RetryManager } from '../retry/retry-manager.ts';
import type { PendingJournal } from '../retry/pending-journal.ts';
import type { PendingEntry, PendingOwner } from '../pending/pending-store.ts';
import type { HookBus } from '../hooks.ts';
import type { Peer } from '../auth/principal.ts';
import type { ClientTransport } from '../transport/transport.ts';
import type { Rooms } from '../subscriptions/rooms.ts';
import type { MessageQueueManager } from '../queue/message-queue-manager.ts';
import { Connection, Phase } from './session.ts';
import type { Session } from './session.ts';
import type { Replies } from './replies.ts';

export interface ConnectionManagerDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly hooks: HookBus;
  readonly sessionStore: SessionStore;
  readonly limiter: RateLimiter;
  readonly hub: LocalHub;
  readonly retry: RetryManager;
  readonly pending: PendingJournal;
  readonly queue: MessageQueueManager;
  readonly replies: Replies;
  /** Rooms the sessions' connections are members of (left when a connection leaves its session). */
  readonly rooms: () => Rooms;
  deadLetterStored(owner: PendingOwner, entries: readonly PendingEntry[]): void;
}

export class ConnectionManager {
  /** Every open connection, by id. */
  readonly connections = new Map<string, Connection>();
  /** Sessions held by this node (live or waiting for their client), by session key. */
  readonly sessions = new Map<string, Session>();
  /**
   * Connection caps (APIX_MAX_CONNECTIONS_PER_ADDRESS / _USER / _ORG): open connections per remote
   * address, and connections past `connect` per user (`org/user`) and per organization, on this node.
   * A key is deleted when its count drops to 0; a map is only filled while its cap is on.
   */
  readonly perAddress = new Map<string, number>();
  readonly perUser = new Map<string, number>();
  readonly perOrg = new Map<string, number>();
  /** Session snapshots being written: a draining node waits for them before its store closes. */
  private readonly snapshotsInFlight = new Set<Promise<void>>();
  private seq = 0;
  draining = false;

  constructor(private readonly deps: ConnectionManagerDeps) {}

  // ---------------------------------------------------------------- lifecycle

  /** A client's transport is open: its connection, counted against its address's cap. */
  open(transport: ClientTransport, peer: Peer): Connection {
    const now = this.deps.clock.now();
    const limits = this.deps.limiter.limits;
    const conn = new Connection(
      `${this.deps.nodeId}-${(++this.seq).toString(36)}`,
      transport,
      peer,
      now,
      localBucket(limits.connection, now),
      localBucket(limits.publish, now),
    );
    this.connections.set(conn.id, conn);
    // Counted here, in the same tick as the check in the upgrade (ws completes the upgrade synchronously).
    if (this.deps.config.connectionCaps.perAddress > 0 && peer.remoteAddress !== undefined) {
      conn.countUnder('address', peer.remoteAddress);
      increment(this.perAddress, peer.remoteAddress);
    }
    return conn;
  }

  /** A connection's transport closed: its counts are released, its session waits for a resume. */
  closed(conn: Connection, code: number, reason: string): void {
    const wasConnected = conn.closed();
    this.connections.delete(conn.id);
    const counted = conn.releaseCaps();
    if (counted.address !== undefined) decrement(this.perAddress, counted.address);
    if (counted.user !== undefined) decrement(this.perUser, counted.user);
    if (counted.org !== undefined) decrement(this.perOrg, counted.org);
    const session = conn.session;
    if (session && session.connection === conn) this.detach(conn);
    if (wasConnected && conn.principal && this.deps.hooks.has('onDisconnect'))
      this.deps.hooks.emit('onDisconnect', {
        connection: conn.info(),
        code,
        reason,
        status: session?.status ?? ConnectionStatus.DISCONNECTED,
      });
  }

  /**
   * Counts an authenticated connection against its user's and organization's caps, or says why it is
   * refused. A connection resuming a session that is live here replaces that session's connection (closed
   * with 4009 right after): it is not refused, so a client whose old socket the server has not yet seen die
   * can always come back. The counts are released in closed(), whatever the path to it.
   */
  claimConnectionSlot(conn: Connection, orgId: string, userId: string, key: string): string | undefined {
    const { perUser, perOrg } = this.deps.config.connectionCaps;
    if (perUser <= 0 && perOrg <= 0) return undefined;
    const takesOver = this.sessions.get(key)?.connection !== undefined;
    const userKey = `${orgId}/${userId}`;
    if (!takesOver) {
      if (perUser > 0 && (this.perUser.get(userKey) ?? 0) >= perUser)
        return `too many connections for this user (limit ${perUser} per node)`;
      if (perOrg > 0 && (this.perOrg.get(orgId) ?? 0) >= perOrg)
        return `too many connections for this organization (limit ${perOrg} per node)`;
    }
    if (perUser > 0) {
      conn.countUnder('user', userKey);
      increment(this.perUser, userKey);
    }
    if (perOrg > 0) {
      conn.countUnder('org', orgId);
      increment(this.perOrg, orgId);
    }
    return undefined;
  }

  /** A connected client whose token expired: `connection.disconnected` TOKEN_EXPIRED, close 4002. */
  expireToken(conn: Connection, now: number): boolean {
    const exp = conn.principal?.expiresAt;
    if (exp === undefined || exp * 1000 > now) return false;
    this.deps.hooks.emit('onAuthFailure', {
      peer: conn.peer,
      code: 'TOKEN_EXPIRED',
      reason: 'token expired in session',
      via: 'ws',
    });
    this.deps.replies.disconnect(
      conn,
      'TOKEN_EXPIRED',
      'token expired; refresh it and reconnect',
      CloseCode.TOKEN_EXPIRED,
      true,
    );
    return true;
  }

  // ---------------------------------------------------------------- sessions

  /** The connection leaves its session; the session waits `sessionTtlMs` for a resume. */
  detach(conn: Connection): void {
    const session = conn.session;
    if (!session || session.connection !== conn) return;
    session.connection = undefined;
    for (const sub of session.subscriptions.values())
      if (sub.presenceConnectionId !== undefined) this.deps.rooms().leave(sub);
    this.deps.retry.suspend(session);
    if (session.status === ConnectionStatus.SUSPENDED) {
      this.endSession(session, true);
      return;
    }
    session.status = ConnectionStatus.RECONNECTING;
    if (this.draining) {
      // Leaving with the node: the session lives on in a shared store for another node; in this node's
      // memory it ends here.
      if (!this.deps.sessionStore.outlivesNode) return this.endSession(session, true);
      this.saveSnapshot(session);
      this.endSession(session, false);
      return;
    }
    const ttl = this.deps.config.sessionTtlMs;
    if (ttl <= 0) return this.endSession(session, true);
    this.saveSnapshot(session);
    session.expiryTimer = this.deps.clock.setTimeout(() => {
      if (!session.isLive) this.endSession(session, true);
    }, ttl);
  }

  /** A session without a connection waits `sessionTtlMs` for a resume, then ends. */
  awaitResume(session: Session): void {
    const ttl = this.deps.config.sessionTtlMs;
    if (ttl <= 0) return this.endSession(session, true);
    session.expiryTimer?.cancel();
    session.expiryTimer = this.deps.clock.setTimeout(() => {
      if (!session.isLive) this.endSession(session, true);
    }, ttl);
  }

  /** Forgets a session on this node; `forget` also deletes it from the shared store and its queue. */
  endSession(session: Session, forget: boolean): void {
    session.expiryTimer?.cancel();
    session.expiryTimer = undefined;
    for (const sub of session.subscriptions.values()) this.deps.hub.remove(sub);
    session.subscriptions.clear();
    this.deps.retry.drop(session);
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (session.status !== ConnectionStatus.SUSPENDED) session.status = ConnectionStatus.DISCONNECTED;
    if (forget) {
      this.deps.hooks.emit('onSessionEnd', {
        orgId: session.orgId,
        userId: session.userId,
        sessionId: session.sessionId,
        status: session.status,
      });
      this.deps.sessionStore.delete(session.key).catch(() => {});
      this.deps.queue.clear(session.key);
      // Its un-acked events are dead letters now, not silently gone.
      const owner = { sessionKey: session.key, orgId: session.orgId, sessionId: session.sessionId };
      this.deps.pending
        .take(session.key)
        .then((t) => t.entries.length > 0 && this.deps.deadLetterStored(owner, t.entries))
        .catch((err) => this.deps.log.warn({ err }, 'pending entries of an ended session not dead-lettered'));
    }
  }

  /** Closes a session's connection that a newer one replaces (here or on another node). */
  takeOver(conn: Connection): void {
    this.detach(conn);
    this.deps.replies.disconnect(
      conn,
      'CONFLICT',
      'session taken over by a newer connection',
      CloseCode.SESSION_TAKEN_OVER,
      false,
    );
  }

  /** Another node took a session over: its connection here is closed, the session forgotten here. */
  takenElsewhere(key: string): void {
    const session = this.sessions.get(key);
    if (!session) return;
    const conn = session.connection;
    if (conn) this.takeOver(conn);
    this.endSession(session, false);
  }

  saveSnapshot(session: Session): void {
    const ttl = this.deps.config.sessionTtlMs;
    if (ttl <= 0) return;
    const saving: Promise<void> = this.deps.sessionStore
      .save({
        sessionId: session.key,
        orgId: session.orgId,
        userId: session.userId,
        clientType: session.clientType,
        subscriptions: [...session.subscriptions.values()].map((s) => ({
          channel: s.name,
          ack: s.ack,
          filters: s.filters,
          lastId: s.lastId,
          attachedAt: s.attachedAt,
        })),
        nodeId: this.deps.nodeId,
        expiresAt: this.deps.clock.now() + ttl + (session.isLive ? 86_400_000 : 0),
        suspended: session.status === ConnectionStatus.SUSPENDED,
        live: session.isLive,
      })
      .catch((err) => this.deps.log.warn({ err }, 'session snapshot failed'))
      .finally(() => this.snapshotsInFlight.delete(saving));
    this.snapshotsInFlight.add(saving);
  }

  // ---------------------------------------------------------------- shutdown

  /** Resolves once every connection has closed, or after `ms`. */
  private async connectionsGone(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /**
   * Graceful shutdown: refuse new connections, tell every client to go elsewhere
   * (`connection.disconnected`, close 1001), wait for them to leave up to the drain timeout, then cut.
   * `stopTimers` stops the sweep and the heartbeat once the connections are gone.
   */
  async drain(stopTimers: () => void): Promise<void> {
    this.draining = true;
    const now = this.deps.clock.now();
    for (const conn of this.connections.values()) {
      if (conn.phase === Phase.CONNECTED)
        this.deps.replies.disconnect(
          conn,
          'UNAVAILABLE',
          'server shutting down; reconnect',
          CloseCode.GOING_AWAY,
          true,
        );
      else conn.close(CloseCode.GOING_AWAY, 'server shutting down', now);
    }
    await this.connectionsGone(this.deps.config.drainTimeoutMs);
    for (const conn of this.connections.values()) conn.terminate();
    // A terminated socket's close (and so its session's snapshot) comes a moment later: wait for it, so
    // that every session is saved before the node closes its store (they were lost with the Redis client).
    await this.connectionsGone(2_000);
    await Promise.all([...this.snapshotsInFlight]);
    stopTimers();
    // The detached sessions' in-flight entries are written before the sessions are let go.
    await this.deps.pending.flush();
    // Sessions waiting for a resume live on in a shared store (another node resumes them); in this node's
    // memory they end here, and their records say so.
    const outlive = this.deps.sessionStore.outlivesNode;
    for (const session of [...this.sessions.values()]) this.endSession(session, !outlive);
    await this.deps.pending.close();
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
