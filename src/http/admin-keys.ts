/**
 * API keys of a running node's database, for operators (role `admin`, the admin's own organization), so a
 * node need not be stopped to manage them (the CLI cannot open an embedded database a node holds):
 * - `GET  /v1/admin/keys[?all=true]`: the organization's keys (no hash, no secret), revoked ones with `all`;
 * - `POST /v1/admin/keys` `{scopes?, name?}`: creates one; the answer holds the key, shown only this once;
 * - `POST /v1/admin/keys/<keyId>/revoke`: revokes it, and every node drops it from its cache and cuts the
 *   connections made with it (4001), as `apix keys revoke` does with Redis.
 * Registered by the records (src/records.ts): without a database there are no stored keys. Audited as
 * `admin.keys.create` and `admin.keys.revoke`, as the CLI's.
 */
import { z } from 'zod';
import { ApiXError } from '@apix/protocol';
import type { Authenticator } from '../auth/authenticator.ts';
import type { HookBus } from '../hooks.ts';
import type { ApiKeys } from '../store/api-keys.ts';
import type { AdminGateway } from './admin-api.ts';
import { parse, readOptionalJson, requireAdmin } from './admin-api.ts';
import { peerOfRequest } from './api.ts';
import { sendJson } from './router.ts';
import type { HttpHandler, HttpRouter } from './router.ts';

export interface AdminKeysDeps {
  readonly authenticator: Authenticator;
  readonly hooks: HookBus;
  readonly keys: Pick<ApiKeys, 'create' | 'list' | 'revoke'>;
  readonly gateway: Pick<AdminGateway, 'revokeCredentials'>;
  readonly maxBodyBytes: number;
}

/** The scope syntax of APIX_API_KEYS and `apix keys create --scopes` (security.md#api-keys). */
const SCOPE_RE = /^[A-Za-z0-9_.:*-]{1,128}$/;
const CreateSchema = z.strictObject({
  scopes: z
    .array(z.string().regex(SCOPE_RE, 'a scope is 1-128 of [A-Za-z0-9_.:*-]'))
    .min(1)
    .max(64)
    .optional(),
  name: z.string().min(1).max(200).optional(),
});
const KEY_ID_RE = /^[a-z0-9]{8,32}$/;

export function registerAdminKeys(http: HttpRouter, deps: AdminKeysDeps): void {
  http.add('GET', /^\/v1\/admin\/keys\/?$/, listHandler(deps));
  http.add('POST', /^\/v1\/admin\/keys\/?$/, createHandler(deps));
  http.add('POST', /^\/v1\/admin\/keys\/([^/]+)\/revoke\/?$/, revokeHandler(deps));
}

function listHandler(deps: AdminKeysDeps): HttpHandler {
  return async ({ req, res, url }) => {
    const admin = await requireAdmin(deps, req);
    const all = url.searchParams.get('all');
    const keys = await deps.keys.list(admin.orgId, { includeRevoked: all === 'true' || all === '1' });
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, { keys });
  };
}

function createHandler(deps: AdminKeysDeps): HttpHandler {
  return async ({ req, res }) => {
    const admin = await requireAdmin(deps, req);
    const body = parse(CreateSchema, await readOptionalJson(req, deps.maxBodyBytes));
    const scopes = body.scopes ?? ['*'];
    const { key, record } = await deps.keys.create(admin.orgId, {
      scopes,
      ...(body.name !== undefined ? { name: body.name } : {}),
      createdBy: admin.userId,
    });
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer: peerOfRequest(req),
      action: 'keys.create',
      target: record.id,
      detail: { scopes, name: body.name ?? null },
    });
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 201, { key, keyId: record.id, scopes: record.scopes, name: record.name });
  };
}

function revokeHandler(deps: AdminKeysDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const keyId = params[0]!;
    if (!KEY_ID_RE.test(keyId)) throw new ApiXError('BAD_REQUEST', 'not a key id ([a-z0-9]{8,32})');
    if (!(await deps.keys.revoke(admin.orgId, keyId)))
      throw new ApiXError('NOT_FOUND', `the organization has no active key ${keyId}`);
    const disconnectedHere = await deps.gateway.revokeCredentials(
      { kind: 'apiKey', orgId: admin.orgId, keyId },
      'API key revoked',
    );
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer: peerOfRequest(req),
      action: 'keys.revoke',
      target: keyId,
    });
    sendJson(res, 200, { keyId, revoked: true, disconnectedHere });
  };
}
