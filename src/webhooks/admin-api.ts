/**
 * The webhooks' admin API (an organization's admin, or a service; its own organization only):
 * - `POST /v1/admin/webhooks` `{url, events}` -> 201 `{id, url, events, secret, createdAt}` (the secret is
 *   shown this once); the URL passes the SSRF guard (ssrf.ts);
 * - `GET /v1/admin/webhooks` -> `{webhooks: [...]}` (no secrets);
 * - `DELETE /v1/admin/webhooks/<id>`; `POST /v1/admin/webhooks/<id>/test` sends one `webhook.test` event now;
 * - `GET /v1/admin/webhooks/dead-letters`; `POST /v1/admin/webhooks/dead-letters/<id>/replay`;
 *   `POST /v1/admin/webhooks/dead-letters/replay` (all of the organization's).
 * Every change emits `onAdminAction` (the audit trail).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { ApiXError, formatIssues, WebhookCreateSchema } from '@apix/protocol';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Principal } from '../auth/principal.ts';
import type { Clock } from '../clock.ts';
import type { HookBus } from '../hooks.ts';
import { authenticateRequest, peerOfRequest } from '../http/api.ts';
import { readJson, sendJson } from '../http/router.ts';
import type { HttpHandler, HttpRouter } from '../http/router.ts';
import { newId } from './dispatcher.ts';
import type { WebhookDispatcher } from './dispatcher.ts';
import { publicEndpoint } from './events.ts';
import type { WebhookEndpoint } from './events.ts';
import { checkDestination } from './ssrf.ts';
import type { WebhookStore } from './webhook-store.ts';

export interface WebhookApiDeps {
  readonly authenticator: Authenticator;
  readonly hooks: HookBus;
  readonly clock: Clock;
  readonly store: WebhookStore;
  readonly dispatcher: WebhookDispatcher;
  readonly maxBodyBytes: number;
  readonly allowPrivate: boolean;
  readonly endpointsPerOrg: number;
}

/** The request's principal, who must be an admin or a service of its organization. */
export async function requireAdminOrService(
  deps: Pick<WebhookApiDeps, 'authenticator' | 'hooks'>,
  req: IncomingMessage,
  what: string,
): Promise<Principal> {
  const principal = await authenticateRequest(deps, req);
  if (!principal.roles.includes('admin') && !principal.isService)
    throw new ApiXError('FORBIDDEN', `${what} needs a token with role "admin" or "service", or an API key`);
  return principal;
}

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new ApiXError('BAD_REQUEST', formatIssues(r.error));
  return r.data;
}

export function registerWebhookApi(http: HttpRouter, deps: WebhookApiDeps): void {
  const dead = /^\/v1\/admin\/webhooks\/dead-letters\/?$/;
  http.add('GET', dead, deadLettersHandler(deps));
  http.add('POST', /^\/v1\/admin\/webhooks\/dead-letters\/(?:([^/]+)\/)?replay\/?$/, replayHandler(deps));
  http.add('POST', /^\/v1\/admin\/webhooks\/?$/, createHandler(deps));
  http.add('GET', /^\/v1\/admin\/webhooks\/?$/, listHandler(deps));
  http.add('DELETE', /^\/v1\/admin\/webhooks\/([^/]+)\/?$/, removeHandler(deps));
  http.add('POST', /^\/v1\/admin\/webhooks\/([^/]+)\/test\/?$/, testHandler(deps));
}

function audit(
  deps: WebhookApiDeps,
  req: IncomingMessage,
  p: Principal,
  action: string,
  target: string,
  detail?: unknown,
) {
  deps.hooks.emit('onAdminAction', { principal: p, peer: peerOfRequest(req), action, target, detail });
}

function createHandler(deps: WebhookApiDeps): HttpHandler {
  return async ({ req, res }) => {
    const p = await requireAdminOrService(deps, req, 'managing webhooks');
    const body = parseBody(WebhookCreateSchema, await readJson(req, deps.maxBodyBytes));
    const url = await checkDestination(body.url, deps.allowPrivate);
    if ((await deps.store.endpoints(p.orgId)).length >= deps.endpointsPerOrg)
      throw new ApiXError(
        'BAD_REQUEST',
        `an organization has at most ${deps.endpointsPerOrg} webhook endpoints`,
      );
    const endpoint: WebhookEndpoint = {
      id: newId('wh'),
      orgId: p.orgId,
      url: url.toString(),
      events: [...new Set(body.events)],
      secret: `whsec_${randomBytes(24).toString('base64url')}`,
      createdAt: deps.clock.now(),
    };
    await deps.store.addEndpoint(endpoint);
    deps.dispatcher.invalidate(p.orgId);
    audit(deps, req, p, 'webhook.add', endpoint.id, { url: endpoint.url, events: endpoint.events });
    sendJson(res, 201, { ...publicEndpoint(endpoint), secret: endpoint.secret });
  };
}

function listHandler(deps: WebhookApiDeps): HttpHandler {
  return async ({ req, res }) => {
    const p = await requireAdminOrService(deps, req, 'managing webhooks');
    const list = await deps.store.endpoints(p.orgId);
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, { webhooks: list.sort((a, b) => a.createdAt - b.createdAt).map(publicEndpoint) });
  };
}

function removeHandler(deps: WebhookApiDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const p = await requireAdminOrService(deps, req, 'managing webhooks');
    const id = params[0]!;
    if (!(await deps.store.removeEndpoint(p.orgId, id)))
      throw new ApiXError('NOT_FOUND', `no webhook ${id} in your organization`);
    deps.dispatcher.invalidate(p.orgId);
    audit(deps, req, p, 'webhook.remove', id);
    sendJson(res, 200, { id, removed: true });
  };
}

function testHandler(deps: WebhookApiDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const p = await requireAdminOrService(deps, req, 'managing webhooks');
    const endpoint = await deps.store.endpoint(params[0]!);
    if (!endpoint || endpoint.orgId !== p.orgId)
      throw new ApiXError('NOT_FOUND', `no webhook ${params[0]} in your organization`);
    const failure = await deps.dispatcher.test(endpoint);
    audit(deps, req, p, 'webhook.test', endpoint.id, { delivered: failure === undefined });
    sendJson(res, 200, {
      id: endpoint.id,
      delivered: failure === undefined,
      ...(failure ? { error: failure } : {}),
    });
  };
}

function deadLettersHandler(deps: WebhookApiDeps): HttpHandler {
  return async ({ req, res }) => {
    const p = await requireAdminOrService(deps, req, 'webhook dead letters');
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, { deadLetters: await deps.store.deadLetters(p.orgId) });
  };
}

function replayHandler(deps: WebhookApiDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const p = await requireAdminOrService(deps, req, 'webhook dead letters');
    const one = params[0] ? params[0] : undefined;
    const ids = one ? [one] : (await deps.store.deadLetters(p.orgId)).map((d) => d.id);
    let replayed = 0;
    for (const id of ids) if (await deps.dispatcher.replay(p.orgId, id)) replayed++;
    if (one && replayed === 0)
      throw new ApiXError('NOT_FOUND', `no webhook dead letter ${one} in your organization`);
    audit(deps, req, p, 'webhook.replay', one ?? '*', { replayed });
    sendJson(res, 200, { replayed });
  };
}
