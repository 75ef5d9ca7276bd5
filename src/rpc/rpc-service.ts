/**
 * RPC from clients to services (docs/protocol.md §12, docs/backend.md "RPC"). A service (API key, or a JWT
 * with the `service` role) registers methods (`rpc.register`); a client calls one (`rpc`); the call goes to
 * one connected service that registered it in the caller's organization, on any node (the registry says
 * where; node-to-node over the broker's control messages, addressed by node id), as `rpc.request`; the
 * service's `rpc.response` comes back the same way, and the caller gets `rpc.result` or `rpc.error`, with
 * its correlation id. No service: the HTTP fallback (APIX_RPC_PROXY_URL) or `UNAVAILABLE`; no answer within
 * `timeoutMs`: `TIMEOUT`; a caller without one of the method's roles: `FORBIDDEN`; the service leaving
 * mid-call: `UNAVAILABLE`.
 *
 * Bounded: calls awaiting an answer on this node (as caller, and as the service's node) are at most
 * APIX_RPC_MAX_PENDING each; a connection's call rate is APIX_RATE_RPC_PER_SEC.
 */
import { ApiXError, ErrorCode, isApiXError } from '@apix/protocol';
import type { ClientControlFrame, RpcCaller } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock, Random, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Broker, ControlMessage } from '../broker/broker.ts';
import type { RateLimitScope } from '../ratelimit/rate-limiter.ts';
import { localBucket } from '../ratelimit/rate-limiter.ts';
import type { TokenBucket } from '../ratelimit/token-bucket.ts';
import type { Connection } from '../connections/session.ts';
import { encodeControl } from '../gateway/frames.ts';
import { callBackend, isFailure } from '../backend/backend-http.ts';
import type { RpcProvider, RpcRegistration, RpcRegistry } from './registry.ts';

type Frame<T extends string> = Extract<ClientControlFrame, { type: T }>;
/** What a call ends with. */
export type RpcOutcome =
  { readonly result: unknown } | { readonly error: { code: ErrorCode; message: string } };

export interface RpcDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly broker: Broker;
  readonly registry: RpcRegistry;
  /** This node's open connections, by id (the gateway's). */
  connection(id: string): Connection | undefined;
  /** Counts a rate-limit refusal against the connection (abuse closes it). */
  refused(conn: Connection, scope: RateLimitScope): boolean;
}

/** A call this node's client made, awaiting its answer. */
interface Pending {
  readonly conn: Connection;
  readonly correlationId: string;
  readonly timer: TimerHandle;
}

/** A call one of this node's services is serving. */
interface Serving {
  readonly connectionId: string;
  readonly callerNode: string;
  readonly timer: TimerHandle;
}

const REQUEST = 'rpc.request';
const RESPONSE = 'rpc.response';

export class RpcService {
  /** Calls by outcome since start (for /metrics). */
  readonly outcomes: Record<string, number> = {};
  readonly pending = new Map<string, Pending>();
  readonly serving = new Map<string, Serving>();
  /** This node's services: connection id -> its organization and registrations. */
  readonly services = new Map<string, { orgId: string; registrations: RpcRegistration[] }>();
  private readonly buckets = new WeakMap<Connection, TokenBucket>();
  /** The calls each caller connection is waiting for (request ids; as many as `pending` holds). */
  private readonly callsOf = new Map<string, Set<string>>();
  private refreshTimer: TimerHandle | undefined;
  private seq = 0;

  constructor(private readonly deps: RpcDeps) {
    deps.broker.onControl((msg) => this.onControl(msg));
  }

  /** Refreshes this node's registrations well within their TTL, so that only a dead node's lapse. */
  start(): void {
    const ttl = this.deps.config.rpc.registrationTtlMs;
    this.refreshTimer = this.deps.clock.setInterval(() => this.refresh(), Math.floor(ttl / 3));
  }

  stop(): void {
    this.refreshTimer?.cancel();
    for (const [id, s] of this.services) {
      this.services.delete(id);
      void this.deps.registry.unregister(s.orgId, s.registrations).catch(() => {});
    }
  }

  onFrame(
    conn: Connection,
    frame: Frame<'rpc.register' | 'rpc' | 'rpc.response'>,
    correlationId: string | undefined,
  ): void {
    const done = (p: Promise<void>) =>
      p.catch((err: unknown) => {
        this.deps.log.error({ err }, 'rpc frame failed');
      });
    if (frame.type === 'rpc.register') void done(this.register(conn, frame.payload, correlationId));
    else if (frame.type === 'rpc') void done(this.call(conn, frame.payload, correlationId));
    else this.respond(conn, frame.payload);
  }

  // ------------------------------------------------------------------ the service side

  private async register(
    conn: Connection,
    payload: Frame<'rpc.register'>['payload'],
    correlationId: string | undefined,
  ): Promise<void> {
    const principal = conn.principal!;
    if (!principal.isService)
      return this.fail(
        conn,
        correlationId,
        'FORBIDDEN',
        'only a service (API key or service role) registers methods',
      );
    const { nodeId, config, clock } = this.deps;
    const own = this.services.get(conn.id) ?? { orgId: principal.orgId, registrations: [] };
    const names = new Set(payload.methods.map((m) => m.name));
    const replaced = own.registrations.filter((r) => names.has(r.method));
    const added = payload.methods.map((m) => ({
      method: m.name,
      roles: m.roles ?? [],
      nodeId,
      connectionId: conn.id,
    }));
    const ttl = config.rpc.registrationTtlMs;
    try {
      if (replaced.length > 0) await this.deps.registry.unregister(own.orgId, replaced);
      await this.deps.registry.register(own.orgId, added, clock.now() + ttl, ttl);
    } catch (err) {
      const e = isApiXError(err) ? err : new ApiXError('UNAVAILABLE', 'the RPC registry is unavailable');
      return this.fail(conn, correlationId, e.code, e.message);
    }
    if (!conn.isOpen) return void this.deps.registry.unregister(own.orgId, added).catch(() => {});
    own.registrations = [...own.registrations.filter((r) => !names.has(r.method)), ...added];
    this.services.set(conn.id, own);
    const methods = own.registrations.map((r) => ({ name: r.method, roles: [...r.roles] }));
    conn.send(encodeControl('rpc.registered', { methods }, clock.now(), correlationId));
  }

  /** An `rpc.response` from a service: sent on to the caller's node. A late or unknown one is dropped. */
  private respond(conn: Connection, payload: Frame<'rpc.response'>['payload']): void {
    const s = this.serving.get(payload.requestId);
    if (!s || s.connectionId !== conn.id) return this.count('late');
    this.serving.delete(payload.requestId);
    s.timer.cancel();
    const outcome: RpcOutcome = payload.error ? { error: payload.error } : { result: payload.result ?? null };
    this.answer(s.callerNode, payload.requestId, outcome);
  }

  /** A request for one of this node's services (from this node or another). */
  private deliver(msg: {
    requestId: string;
    connectionId: string;
    method: string;
    payload: unknown;
    caller: RpcCaller;
    callerNode: string;
    timeoutMs: number;
  }): void {
    const conn = this.deps.connection(msg.connectionId);
    if (!conn?.isOpen || !this.services.has(msg.connectionId))
      return this.answer(
        msg.callerNode,
        msg.requestId,
        unavailable(`the service serving ${msg.method} left`),
      );
    if (this.serving.size >= this.deps.config.rpc.maxPending)
      return this.answer(msg.callerNode, msg.requestId, {
        error: { code: 'RATE_LIMITED', message: 'the node of the service has too many calls in flight' },
      });
    // Forgotten a little after the caller stops waiting: an answer after that has nobody to go to.
    const timer = this.deps.clock.setTimeout(() => this.serving.delete(msg.requestId), msg.timeoutMs + 1_000);
    this.serving.set(msg.requestId, { connectionId: conn.id, callerNode: msg.callerNode, timer });
    const { requestId, method, payload, caller } = msg;
    conn.send(encodeControl(REQUEST, { requestId, method, payload, caller }, this.deps.clock.now()));
  }

  /** A connection closed: its registrations go, and the calls it was serving fail now (not at their timeout). */
  closed(connectionId: string): void {
    this.callerLeft(connectionId);
    const own = this.services.get(connectionId);
    if (!own) return;
    this.services.delete(connectionId);
    void this.deps.registry.unregister(own.orgId, own.registrations).catch((err: unknown) => {
      this.deps.log.warn(
        { err },
        'rpc registrations not removed; they lapse after APIX_RPC_REGISTRATION_TTL_MS',
      );
    });
    for (const [requestId, s] of this.serving) {
      if (s.connectionId !== connectionId) continue;
      this.serving.delete(requestId);
      s.timer.cancel();
      this.answer(s.callerNode, requestId, unavailable('the service disconnected before answering'));
    }
  }

  private refresh(): void {
    const ttl = this.deps.config.rpc.registrationTtlMs;
    const until = this.deps.clock.now() + ttl;
    for (const own of this.services.values())
      this.deps.registry.register(own.orgId, own.registrations, until, ttl).catch((err: unknown) => {
        this.deps.log.warn({ err }, 'rpc registrations not refreshed');
      });
  }

  // ------------------------------------------------------------------ the caller side

  private async call(
    conn: Connection,
    payload: Frame<'rpc'>['payload'],
    correlationId: string | undefined,
  ): Promise<void> {
    if (correlationId === undefined)
      return this.fail(conn, undefined, 'BAD_REQUEST', 'an rpc needs metadata.correlation_id');
    const refusal = this.admit(conn);
    if (refusal) return this.fail(conn, correlationId, 'RATE_LIMITED', refusal);
    const principal = conn.principal!;
    const { config, clock, registry } = this.deps;
    let providers: RpcProvider[];
    try {
      providers = await registry.providers(principal.orgId, payload.method, clock.now());
    } catch {
      return this.fail(conn, correlationId, 'UNAVAILABLE', 'the RPC registry is unavailable');
    }
    const timeoutMs = payload.timeoutMs ?? config.rpc.timeoutMs;
    const requestId = `${this.deps.nodeId}.${(++this.seq).toString(36)}.${Math.floor(this.deps.random() * 1e9).toString(36)}`;
    const caller: RpcCaller = {
      userId: principal.userId,
      organizationId: principal.orgId,
      roles: [...principal.roles],
      clientType: conn.clientType ?? 'API_CLIENT',
      connectionId: conn.id,
    };
    if (providers.length === 0) {
      if (config.rpc.proxyUrl === undefined)
        return this.fail(conn, correlationId, 'UNAVAILABLE', `no service serves ${payload.method}`);
      return this.callOverHttp(
        conn,
        correlationId,
        { requestId, method: payload.method, payload: payload.payload ?? null, caller },
        timeoutMs,
      );
    }
    const allowed = providers.filter(
      (p) => p.roles.length === 0 || p.roles.some((r) => principal.roles.includes(r)),
    );
    if (allowed.length === 0)
      return this.fail(
        conn,
        correlationId,
        'FORBIDDEN',
        `calling ${payload.method} needs one of the roles ${providers[0]!.roles.join(', ')}`,
      );
    // Any of them; this node's own first (no hop).
    const local = allowed.filter((p) => p.nodeId === this.deps.nodeId);
    const pool = local.length > 0 ? local : allowed;
    const provider = pool[Math.floor(this.deps.random() * pool.length)]!;
    this.await(conn, correlationId, requestId, timeoutMs);
    const request = {
      requestId,
      connectionId: provider.connectionId,
      method: payload.method,
      payload: payload.payload ?? null,
      caller,
      callerNode: this.deps.nodeId,
      timeoutMs,
    };
    if (provider.nodeId === this.deps.nodeId) return this.deliver(request);
    this.deps.broker
      .publishControl({ kind: REQUEST, from: this.deps.nodeId, to: provider.nodeId, ...request })
      .catch(() => this.settle(requestId, unavailable('the service node cannot be reached')));
  }

  /** The connection's call rate and this node's bound on calls in flight; a refusal's reason. */
  private admit(conn: Connection): string | undefined {
    const now = this.deps.clock.now();
    let bucket = this.buckets.get(conn);
    if (!bucket) this.buckets.set(conn, (bucket = localBucket(this.deps.config.rateLimits.rpc, now)));
    if (!bucket.take(now)) {
      this.deps.refused(conn, 'rpc');
      return `too many rpc calls on this connection; retry after ${bucket.retryAfterMs(now)} ms`;
    }
    if (this.pending.size >= this.deps.config.rpc.maxPending)
      return 'too many rpc calls in flight on this node';
    return undefined;
  }

  private await(conn: Connection, correlationId: string, requestId: string, timeoutMs: number): void {
    const timer = this.deps.clock.setTimeout(
      () =>
        this.settle(requestId, { error: { code: 'TIMEOUT', message: `no answer within ${timeoutMs} ms` } }),
      timeoutMs,
    );
    this.pending.set(requestId, { conn, correlationId, timer });
    let calls = this.callsOf.get(conn.id);
    if (!calls) this.callsOf.set(conn.id, (calls = new Set()));
    calls.add(requestId);
  }

  /** A caller left: nobody waits for its calls' answers any more (a late answer is dropped). */
  private callerLeft(connectionId: string): void {
    const calls = this.callsOf.get(connectionId);
    if (!calls) return;
    this.callsOf.delete(connectionId);
    for (const requestId of calls) {
      this.pending.get(requestId)?.timer.cancel();
      this.pending.delete(requestId);
    }
  }

  private async callOverHttp(
    conn: Connection,
    correlationId: string,
    body: { requestId: string; method: string; payload: unknown; caller: RpcCaller },
    timeoutMs: number,
  ): Promise<void> {
    const { config, clock } = this.deps;
    this.await(conn, correlationId, body.requestId, timeoutMs + 1_000);
    const answer = await callBackend(
      config.rpc.proxyUrl!,
      { kind: 'rpc', ...body },
      {
        secret: config.proxy.secret ?? '',
        timeoutMs,
        clock,
      },
    );
    this.count('http');
    if (isFailure(answer)) {
      const code: ErrorCode =
        answer.failure === 'timeout' ? 'TIMEOUT' : answer.failure === 'down' ? 'UNAVAILABLE' : 'INTERNAL';
      return this.settle(body.requestId, {
        error: { code, message: `the RPC backend failed (${answer.failure}: ${answer.reason})` },
      });
    }
    if ('error' in answer) {
      const e = answer.error as { code: string; message?: string };
      const code = Object.prototype.hasOwnProperty.call(ErrorCode, e.code)
        ? (e.code as ErrorCode)
        : 'INTERNAL';
      return this.settle(body.requestId, { error: { code, message: e.message ?? `${body.method} failed` } });
    }
    this.settle(body.requestId, { result: answer.result ?? null });
  }

  /** The answer to a call of this node's client: `rpc.result` or `rpc.error`, with its correlation id. */
  private settle(requestId: string, outcome: RpcOutcome): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    p.timer.cancel();
    const calls = this.callsOf.get(p.conn.id);
    calls?.delete(requestId);
    if (calls?.size === 0) this.callsOf.delete(p.conn.id);
    const now = this.deps.clock.now();
    this.count('error' in outcome ? outcome.error.code : 'result');
    if (!p.conn.isOpen) return;
    if ('error' in outcome) p.conn.send(encodeControl('rpc.error', outcome.error, now, p.correlationId));
    else p.conn.send(encodeControl('rpc.result', { result: outcome.result }, now, p.correlationId));
  }

  /** An outcome for a caller on `callerNode`: settled here, or sent to its node. */
  private answer(callerNode: string, requestId: string, outcome: RpcOutcome): void {
    if (callerNode === this.deps.nodeId) return this.settle(requestId, outcome);
    this.deps.broker
      .publishControl({ kind: RESPONSE, from: this.deps.nodeId, to: callerNode, requestId, ...outcome })
      .catch((err: unknown) => this.deps.log.warn({ err }, 'rpc answer not sent; the caller times out'));
  }

  private onControl(msg: ControlMessage): void {
    if (msg.to !== this.deps.nodeId || msg.from === this.deps.nodeId) return;
    if (msg.kind === REQUEST) this.deliver(msg as unknown as Parameters<RpcService['deliver']>[0]);
    else if (msg.kind === RESPONSE) {
      const { requestId, error, result } = msg as unknown as {
        requestId: string;
        error?: RpcErrorBody;
        result?: unknown;
      };
      this.settle(requestId, error ? { error } : { result: result ?? null });
    }
  }

  private fail(conn: Connection, correlationId: string | undefined, code: ErrorCode, message: string): void {
    this.count(code);
    conn.send(encodeControl('rpc.error', { code, message }, this.deps.clock.now(), correlationId));
  }

  private count(outcome: string): void {
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
  }
}

type RpcErrorBody = { code: ErrorCode; message: string };

function unavailable(message: string): RpcOutcome {
  return { error: { code: 'UNAVAILABLE', message } };
}
