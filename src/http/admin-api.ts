/**
 * The operator API (role `admin`, the admin's own organization only):
 * - `GET  /v1/admin/stats`: this node's figures and the organization's (see latency/admin-stats.ts);
 * - `POST /v1/admin/sessions/<sessionId>/suspend` `{userId?, reason?}`: closes the session's live
 *   connection with 4011 and refuses it until resumed, on every node;
 * - `POST /v1/admin/sessions/<sessionId>/resume` `{userId?}`;
 * - `POST /v1/admin/users/<userId>/suspend|resume` `{reason?, ttlMs?}`: every session of the user, whatever
 *   its id (a new session id does not get past it);
 * - `POST /v1/admin/keys/<keyId>/suspend|resume` `{reason?, ttlMs?}`: every connection made with the API key;
 *   a suspension lasts `ttlMs` (at most, and by default, APIX_SUSPENSION_TTL_MS) unless resumed first;
 * - `POST /v1/admin/connections/<connectionId>/kick` `{reason?}`: closes one connection on this node
 *   (`connection.disconnected` with `reconnect: false`, then 4008);
 * - `POST /v1/admin/revocations` `{jti, expiresAt?, reason?}` or `{userId, reason?}`: revokes one token of
 *   the organization (by its `jti`), or every token of a user issued up to now; stored (shared by the
 *   nodes) and broadcast, so live connections using them are cut (4001) on every node within a second,
 *   and refused at connect, `auth.refresh` and on HTTP until the revocation lapses.
 * Sessions are per user (`<org>/<user>/<sessionId>`): without `userId`, the session must be held by this
 * node and be the organization's only one with that id. Every action emits `onAdminAction`.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { ApiXError, CloseCode, formatIssues } from '@apix/protocol';
import type { Authenticator } from '../auth/authenticator.ts';
import type { HookBus } from '../hooks.ts';
import type { Principal } from '../auth/principal.ts';
import { sessionKey, type Connection, type Session } from '../connections/session.ts';
import { encodeControl } from '../gateway/frames.ts';
import type { Clock } from '../clock.ts';
import type { Revocation, RevocationStore, StoredRevocation } from '../auth/revocation-store.ts';
import { notBeforeFor } from '../auth/revocation-store.ts';
import { apiKeyUser } from '../suspension/suspension-store.ts';
import type { SuspensionTarget } from '../suspension/suspension-store.ts';
import { authenticateRequest, peerOfRequest } from './api.ts';
import { readJson, sendJson } from './router.ts';
import type { HttpHandler, HttpRouter } from './router.ts';

/** What the admin API needs of the gateway. */
export interface AdminGateway {
  readonly connections: ReadonlyMap<string, Connection>;
  readonly sessions: ReadonlyMap<string, Session>;
  suspend(target: SuspensionTarget, suspended: boolean, reason: string, ttlMs?: number): Promise<number>;
  revokeCredentials(revocation: Revocation, reason: string): Promise<number>;
}

export interface AdminApiDeps {
  readonly authenticator: Authenticator;
  readonly hooks: HookBus;
  readonly gateway: AdminGateway;
  readonly clock: Clock;
  readonly stats: (orgId: string) => unknown;
  readonly maxBodyBytes: number;
  readonly revocations: RevocationStore;
  /** How long a revocation is kept when the request does not say when the token expires. */
  readonly tokenRevocationTtlMs: number;
  /** The longest (and default) suspension. */
  readonly suspensionTtlMs: number;
}

const SessionActionSchema = z.strictObject({
  userId: z.string().min(1).max(256).optional(),
  reason: z.string().max(200).optional(),
  ttlMs: z.number().int().min(1000).optional(),
});
const SuspendSchema = z.strictObject({
  reason: z.string().max(200).optional(),
  ttlMs: z.number().int().min(1000).optional(),
});
const KickSchema = z.strictObject({ reason: z.string().max(200).optional() });
const RevocationSchema = z.union([
  z.strictObject({
    jti: z.string().min(1).max(256),
    /** The token's `exp` (seconds since epoch): the revocation is kept until then. */
    expiresAt: z.number().int().positive().optional(),
    reason: z.string().max(200).optional(),
  }),
  z.strictObject({ userId: z.string().min(1).max(200), reason: z.string().max(200).optional() }),
]);
const ID_RE = /^[^\s/]{1,128}$/;
/** A user id (a token's `sub`: 1-200 characters), percent-decoded from the path. */
const USER_RE = /^[^\s]{1,200}$/;

/** The suspension's lifetime: the one asked for, at most the configured one. */
function ttlOf(asked: number | undefined, max: number): number {
  return Math.min(asked ?? max, max);
}

export function registerAdminApi(http: HttpRouter, deps: AdminApiDeps): void {
  http.add('GET', /^\/v1\/admin\/stats\/?$/, statsHandler(deps));
  http.add('POST', /^\/v1\/admin\/sessions\/([^/]+)\/(suspend|resume)\/?$/, sessionActionHandler(deps));
  // A user's or an API key's every session, on every node (issue 12: a new session id does not get past it).
  http.add('POST', /^\/v1\/admin\/(users|keys)\/([^/]+)\/(suspend|resume)\/?$/, suspendScopeHandler(deps));
  http.add('POST', /^\/v1\/admin\/revocations\/?$/, revocationHandler(deps));
  http.add('POST', /^\/v1\/admin\/connections\/([^/]+)\/kick\/?$/, kickHandler(deps));
}

/** The request's principal, who must have the role `admin`. */
export async function requireAdmin(
  deps: Pick<AdminApiDeps, 'authenticator' | 'hooks'>,
  req: IncomingMessage,
): Promise<Principal> {
  const principal = await authenticateRequest(deps, req);
  if (!principal.roles.includes('admin'))
    throw new ApiXError('FORBIDDEN', 'the admin API needs a token with role "admin"');
  return principal;
}

/** `GET /v1/admin/stats`. */
function statsHandler(deps: AdminApiDeps): HttpHandler {
  return async ({ req, res }) => {
    const admin = await requireAdmin(deps, req);
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, deps.stats(admin.orgId));
  };
}

/** `POST /v1/admin/sessions/<sessionId>/suspend|resume`. */
function sessionActionHandler(deps: AdminApiDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const [sessionId, verb] = params as [string, 'suspend' | 'resume'];
    if (!ID_RE.test(sessionId)) throw new ApiXError('BAD_REQUEST', 'invalid session id');
    const body = parse(SessionActionSchema, await readOptionalJson(req, deps.maxBodyBytes));
    const userId = body.userId ?? findUser(deps.gateway, admin.orgId, sessionId);
    const key = sessionKey(admin.orgId, userId, sessionId);
    const suspended = verb === 'suspend';
    const reason = body.reason ?? (suspended ? 'suspended by an operator' : 'resumed by an operator');
    const disconnected = suspended && deps.gateway.sessions.get(key)?.connection !== undefined;
    await deps.gateway.suspend(
      { orgId: admin.orgId, userId, sessionId },
      suspended,
      reason,
      ttlOf(body.ttlMs, deps.suspensionTtlMs),
    );
    const peer = peerOfRequest(req);
    deps.hooks.emit('onSuspend', {
      orgId: admin.orgId,
      sessionId,
      userId,
      scope: 'session',
      by: admin.userId,
      reason,
      suspended,
    });
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer,
      action: verb,
      target: `${userId}/${sessionId}`,
      detail: { reason, ...(suspended ? { disconnected } : {}) },
    });
    sendJson(res, 200, { sessionId, userId, suspended, ...(suspended ? { disconnected } : {}) });
  };
}

/** `POST /v1/admin/users|keys/<id>/suspend|resume`. */
function suspendScopeHandler(deps: AdminApiDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const [kind, rawId, verb] = params as ['users' | 'keys', string, 'suspend' | 'resume'];
    let id: string;
    try {
      id = decodeURIComponent(rawId);
    } catch {
      throw new ApiXError('BAD_REQUEST', 'invalid percent-encoding in the path');
    }
    if (!(kind === 'users' ? USER_RE : ID_RE).test(id))
      throw new ApiXError('BAD_REQUEST', `invalid ${kind === 'users' ? 'user' : 'key'} id`);
    const body = parse(SuspendSchema, await readOptionalJson(req, deps.maxBodyBytes));
    const suspended = verb === 'suspend';
    const reason = body.reason ?? (suspended ? 'suspended by an operator' : 'resumed by an operator');
    const userId = kind === 'users' ? id : apiKeyUser(id);
    const disconnectedHere = await deps.gateway.suspend(
      { orgId: admin.orgId, userId },
      suspended,
      reason,
      ttlOf(body.ttlMs, deps.suspensionTtlMs),
    );
    const scope = kind === 'users' ? 'user' : 'key';
    deps.hooks.emit('onSuspend', {
      orgId: admin.orgId,
      sessionId: '',
      userId,
      scope,
      by: admin.userId,
      reason,
      suspended,
    });
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer: peerOfRequest(req),
      action: `${verb}-${scope}`,
      target: id,
      detail: { reason, ...(suspended ? { disconnectedHere } : {}) },
    });
    sendJson(res, 200, {
      ...(kind === 'users' ? { userId: id } : { keyId: id }),
      scope,
      suspended,
      ...(suspended ? { disconnectedHere } : {}),
    });
  };
}

/** `POST /v1/admin/revocations`. */
function revocationHandler(deps: AdminApiDeps): HttpHandler {
  return async ({ req, res }) => {
    const admin = await requireAdmin(deps, req);
    const body = parse(RevocationSchema, await readJson(req, deps.maxBodyBytes));
    const now = deps.clock.now();
    const fallback = now + deps.tokenRevocationTtlMs;
    let revocation: StoredRevocation;
    if ('jti' in body) {
      // Kept until the token expires (plus the verifier's clock tolerance), or the configured time.
      const expiresAt = body.expiresAt !== undefined ? body.expiresAt * 1000 + 60_000 : fallback;
      revocation = { kind: 'token', orgId: admin.orgId, jti: body.jti, expiresAt };
    } else {
      revocation = {
        kind: 'user',
        orgId: admin.orgId,
        userId: body.userId,
        notBefore: notBeforeFor(now),
        expiresAt: fallback,
      };
    }
    const reason = body.reason ?? 'credentials revoked by an operator';
    // Stored before the broadcast: a node that cuts a connection also refuses its reconnect.
    await deps.revocations.revoke(revocation);
    const disconnected = await deps.gateway.revokeCredentials(revocation, reason);
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer: peerOfRequest(req),
      action: revocation.kind === 'token' ? 'revoke-token' : 'revoke-user-tokens',
      target: revocation.kind === 'token' ? revocation.jti : revocation.userId,
      detail: { reason, expiresAt: revocation.expiresAt, disconnectedHere: disconnected },
    });
    sendJson(res, 200, { revoked: revocation, disconnectedHere: disconnected });
  };
}

/** `POST /v1/admin/connections/<connectionId>/kick`. */
function kickHandler(deps: AdminApiDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const connectionId = params[0]!;
    const body = parse(KickSchema, await readOptionalJson(req, deps.maxBodyBytes));
    const conn = deps.gateway.connections.get(connectionId);
    // Another organization's connection answers exactly like a missing one.
    if (conn === undefined || conn.principal?.orgId !== admin.orgId || !conn.isOpen)
      throw new ApiXError(
        'NOT_FOUND',
        `no open connection ${connectionId} of your organization on this node`,
      );
    const reason = body.reason ?? 'disconnected by an operator';
    const now = deps.clock.now();
    conn.send(encodeControl('connection.disconnected', { code: 'FORBIDDEN', reason, reconnect: false }, now));
    conn.close(CloseCode.POLICY_VIOLATION, reason, now);
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer: peerOfRequest(req),
      action: 'kick',
      target: connectionId,
      detail: { reason, userId: conn.principal.userId, sessionId: conn.session?.sessionId },
    });
    sendJson(res, 200, { connectionId, kicked: true });
  };
}

/** The user of the organization's only session `sessionId` on this node; else `userId` is required. */
function findUser(gateway: AdminGateway, orgId: string, sessionId: string): string {
  const users = new Set<string>();
  for (const s of gateway.sessions.values())
    if (s.sessionId === sessionId && s.orgId === orgId) users.add(s.userId);
  if (users.size === 1) return [...users][0]!;
  throw new ApiXError(
    'BAD_REQUEST',
    users.size === 0
      ? `session ${sessionId} is not held by this node: give its userId`
      : `several users have a session ${sessionId}: give the userId`,
  );
}

export function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new ApiXError('BAD_REQUEST', formatIssues(r.error));
  return r.data;
}

/** A JSON object body, or `{}` when the request has none. */
export async function readOptionalJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const length = req.headers['content-length'];
  if ((length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined) return {};
  return readJson(req, limit);
}
