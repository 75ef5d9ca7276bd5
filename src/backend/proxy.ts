/**
 * Proxy calls (docs/backend.md "Proxy calls"; docs/protocol.md §13): before a `connect`, a new subscription
 * or a client's publish is decided, the platform's backend is asked by a signed POST, and its answer
 * decides: `{result: {...}}` allows (with optional changes), `{error: {code, message}}` refuses, and the
 * client gets that code. A backend that is down, too slow (`APIX_PROXY_TIMEOUT_MS`) or answers garbage
 * leaves the decision to `APIX_PROXY_FAILURE_POLICY`. Every decision goes to the `onProxyDecision` hook
 * (the audit trail records it), with where it came from: the backend, the cache, or the failure policy.
 *
 * The decision cache holds subscribe decisions only, per organization, user, roles and channel, for
 * `APIX_PROXY_CACHE_MS`: a subscribe decision depends on who asks for which channel, and nothing else the
 * backend is sent (a reconnecting client re-subscribing to its channels is the load it saves). Connect
 * decisions are not cached (they carry per-connection changes: data, expiry, channels, and a connect is
 * the backend's moment to see a session), nor publish decisions (each depends on its payload, which the
 * backend may replace), nor what the failure policy decided (the next call should ask the backend again).
 */
import { ErrorCode, ProxyAllowSchema } from '@apix/protocol';
import type { ClientType, ProxyAllow } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { HookBus } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import { callBackend, isFailure } from './backend-http.ts';
import type { BackendFailure } from './backend-http.ts';

export type ProxyKind = 'connect' | 'subscribe' | 'publish';
/** Where a decision came from. */
export type DecisionSource = 'backend' | 'cache' | 'policy';

export type ProxyDecision =
  | { readonly allowed: true; readonly changes: ProxyAllow; readonly source: DecisionSource }
  | {
      readonly allowed: false;
      readonly code: ErrorCode;
      readonly message: string;
      readonly source: DecisionSource;
    };

/** Who asks, from which connection: the part of every proxy call's body that says so. */
export interface ProxyCaller {
  readonly principal: Principal;
  readonly peer: Peer;
  readonly connectionId: string;
  readonly sessionId: string;
  readonly clientType: ClientType | undefined;
}

export interface ProxyDeps {
  readonly config: Config['proxy'];
  readonly clock: Clock;
  readonly hooks: HookBus;
}

interface Cached {
  readonly decision: ProxyDecision;
  readonly until: number;
}

export class BackendProxy {
  /** Calls made to the backend, by outcome (for /metrics). */
  readonly calls = { allowed: 0, refused: 0, failed: 0, cached: 0 };
  private readonly cache = new Map<string, Cached>();

  constructor(private readonly deps: ProxyDeps) {}

  private urlOf(kind: ProxyKind): string | undefined {
    const c = this.deps.config;
    return kind === 'connect' ? c.connectUrl : kind === 'subscribe' ? c.subscribeUrl : c.publishUrl;
  }

  /** Whether the backend decides this kind of request. */
  enabled(kind: ProxyKind): boolean {
    return this.urlOf(kind) !== undefined;
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * Asks the backend (or the cache) about one request. `target` is the channel (subscribe, publish) or
   * the session id (connect); `fields` are the kind's own members of the body.
   */
  async decide(
    kind: ProxyKind,
    caller: ProxyCaller,
    target: string,
    fields: Record<string, unknown>,
  ): Promise<ProxyDecision> {
    const url = this.urlOf(kind);
    if (url === undefined) return { allowed: true, changes: {}, source: 'policy' };
    const key = kind === 'subscribe' ? cacheKey(caller.principal, target) : undefined;
    const cached = key === undefined ? undefined : this.cached(key);
    const decision = cached ?? (await this.ask(kind, url, caller, fields));
    if (key !== undefined && !cached && decision.source === 'backend') this.remember(key, decision);
    this.audit(kind, caller, target, decision);
    return decision;
  }

  private async ask(
    kind: ProxyKind,
    url: string,
    caller: ProxyCaller,
    fields: Record<string, unknown>,
  ): Promise<ProxyDecision> {
    const { config, clock } = this.deps;
    const body = { kind, ...callerBody(caller), ...fields };
    const secret = config.secret ?? '';
    const answer = await callBackend(url, body, { secret, timeoutMs: config.timeoutMs, clock });
    if (isFailure(answer)) return this.failed(kind, answer);
    if ('error' in answer) {
      this.calls.refused++;
      const e = answer.error as { code: string; message?: string };
      const known = Object.prototype.hasOwnProperty.call(ErrorCode, e.code);
      return {
        allowed: false,
        code: known ? (e.code as ErrorCode) : 'FORBIDDEN',
        message: e.message ?? `${kind} refused by the backend`,
        source: 'backend',
      };
    }
    const changes = ProxyAllowSchema.safeParse(answer.result ?? {});
    if (!changes.success)
      return this.failed(kind, { failure: 'garbage', reason: 'result is not an object of known changes' });
    this.calls.allowed++;
    return { allowed: true, changes: changes.data, source: 'backend' };
  }

  /** The backend gave no usable answer: the failure policy decides. */
  private failed(kind: ProxyKind, f: BackendFailure): ProxyDecision {
    this.calls.failed++;
    if (this.deps.config.failurePolicy === 'allow') return { allowed: true, changes: {}, source: 'policy' };
    return {
      allowed: false,
      code: 'UNAVAILABLE',
      message: `the ${kind} proxy failed (${f.failure}: ${f.reason})`,
      source: 'policy',
    };
  }

  private cached(key: string): ProxyDecision | undefined {
    const hit = this.cache.get(key);
    if (!hit) return undefined;
    if (hit.until <= this.deps.clock.now()) {
      this.cache.delete(key);
      return undefined;
    }
    this.calls.cached++;
    return { ...hit.decision, source: 'cache' };
  }

  private remember(key: string, decision: ProxyDecision): void {
    const { cacheMs, cacheSize } = this.deps.config;
    if (cacheMs <= 0) return;
    this.cache.delete(key);
    // Oldest first: a Map iterates in insertion order.
    while (this.cache.size >= cacheSize) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { decision, until: this.deps.clock.now() + cacheMs });
  }

  private audit(kind: ProxyKind, caller: ProxyCaller, target: string, d: ProxyDecision): void {
    this.deps.hooks.emit('onProxyDecision', {
      kind,
      principal: caller.principal,
      peer: caller.peer,
      target,
      allowed: d.allowed,
      source: d.source,
      ...(d.allowed ? {} : { code: d.code, reason: d.message }),
    });
  }
}

function cacheKey(p: Principal, channel: string): string {
  return `${p.orgId}\n${p.userId}\n${[...p.roles].sort().join(',')}\n${channel}`;
}

/** The principal and connection, as the backend is sent them. */
function callerBody(c: ProxyCaller) {
  const p = c.principal;
  return {
    principal: {
      userId: p.userId,
      organizationId: p.orgId,
      roles: p.roles,
      kind: p.kind,
      ...(p.keyId !== undefined ? { keyId: p.keyId } : {}),
      ...(p.expiresAt !== undefined ? { expiresAt: p.expiresAt * 1000 } : {}),
    },
    connection: {
      connectionId: c.connectionId,
      sessionId: c.sessionId,
      clientType: c.clientType ?? null,
      remoteAddress: c.peer.remoteAddress ?? null,
      userAgent: c.peer.userAgent ?? null,
      origin: c.peer.origin ?? null,
    },
  };
}
