/**
 * The HTTP API (docs/protocol.md §9): publish, history, health, readiness and metrics.
 */
import type { IncomingMessage } from 'node:http';
import {
  ApiXError,
  channelKey,
  formatIssues,
  HttpPublishSchema,
  isApiXError,
  isEventId,
  parseChannel,
} from '@apix/protocol';
import type { EnvelopeMetadata } from '@apix/protocol';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Broker } from '../broker/broker.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import { authorize } from '../subscriptions/permissions.ts';
import type { HookBus } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import type { Registry } from 'prom-client';
import type { Presence } from '../presence/presence.ts';
import { bearerToken, readJson, sendJson } from './router.ts';
import { historyPage, sendHistoryPage } from './history-page.ts';
import { credentialClientType } from '../auth/client-type.ts';
import type { HttpHandler, HttpRouter } from './router.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<void>;
}

export interface HttpApiDeps {
  readonly authenticator: Authenticator;
  readonly broker: Broker;
  readonly router: EventRouter;
  readonly channels: ChannelRegistry;
  readonly hooks: HookBus;
  readonly metrics: Registry;
  readonly maxBodyBytes: number;
  /** The byte budget of one history answer (APIX_HISTORY_PAGE_BYTES). */
  readonly historyPageBytes: number;
  readonly readiness: readonly ReadinessCheck[];
  readonly isDraining: () => boolean;
  readonly presence: Presence;
  /** Streams (docs/protocol.md §14): the `stream.snapshot` frames of a channel's open streams. */
  readonly openStreams?: (key: string, channelName: string) => Promise<string[]>;
}

export function peerOfRequest(req: IncomingMessage): Peer {
  const ua = req.headers['user-agent'];
  return {
    remoteAddress: req.socket.remoteAddress,
    userAgent: typeof ua === 'string' ? ua.slice(0, 256) : undefined,
    origin: typeof req.headers.origin === 'string' ? req.headers.origin : undefined,
  };
}

export async function authenticateRequest(
  deps: Pick<HttpApiDeps, 'authenticator' | 'hooks'>,
  req: IncomingMessage,
): Promise<Principal> {
  try {
    return await deps.authenticator.authenticate(bearerToken(req));
  } catch (err) {
    const e = isApiXError(err) ? err : new ApiXError('UNAUTHORIZED', 'authentication failed');
    deps.hooks.emit('onAuthFailure', {
      peer: peerOfRequest(req),
      code: e.code,
      reason: e.message,
      via: 'http',
    });
    throw e;
  }
}

export function registerApi(http: HttpRouter, deps: HttpApiDeps): void {
  http.add('POST', /^\/v1\/publish\/?$/, publishHandler(deps));
  http.add('GET', /^\/v1\/channels\/([^/]+)\/history\/?$/, historyHandler(deps));
  http.add('GET', /^\/v1\/channels\/([^/]+)\/presence\/?$/, presenceHandler(deps));
  http.add('GET', /^\/healthz\/?$/, ({ res }) => sendJson(res, 200, { status: 'ok' }));
  http.add('GET', /^\/readyz\/?$/, readinessHandler(deps));
  http.add('GET', /^\/metrics\/?$/, async ({ res }) => {
    const text = await deps.metrics.metrics();
    res.writeHead(200, { 'Content-Type': deps.metrics.contentType });
    res.end(text);
  });
}

/**
 * The W3C `traceparent` header goes into the event's metadata (unless the body's metadata has one), so
 * that it travels with the event (and, with tracing on, parents the publish span).
 */
function withTraceHeader(
  metadata: EnvelopeMetadata | undefined,
  header: string | string[] | undefined,
): EnvelopeMetadata | undefined {
  if (typeof header !== 'string' || header.length > 55 || metadata?.traceparent !== undefined)
    return metadata;
  return { ...metadata, traceparent: header };
}

/** `POST /v1/publish`. */
function publishHandler(deps: HttpApiDeps): HttpHandler {
  return async ({ req, res }) => {
    const principal = await authenticateRequest(deps, req);
    const body = await readJson(req, deps.maxBodyBytes);
    const r = HttpPublishSchema.safeParse(body);
    if (!r.success) throw new ApiXError('BAD_REQUEST', formatIssues(r.error));
    const result = await deps.router.publish({
      principal,
      clientType: credentialClientType(principal) ?? 'API_CLIENT',
      peer: peerOfRequest(req),
      connection: undefined,
      publisher: undefined,
      channel: r.data.channel,
      type: r.data.type,
      payload: r.data.payload,
      metadata: withTraceHeader(r.data.metadata, req.headers.traceparent),
    });
    sendJson(res, 200, { id: result.id });
  };
}

/** `GET /v1/channels/<channel>/history?since&limit`. */
function historyHandler(deps: HttpApiDeps): HttpHandler {
  return async ({ req, res, url, params }) => {
    const principal = await authenticateRequest(deps, req);
    const parsed = parseChannel(params[0]);
    if (!parsed.ok) throw new ApiXError('BAD_REQUEST', parsed.reason);
    const settings = deps.channels.get(principal.orgId, parsed.channel.name);
    const decision = authorize(
      'history',
      principal,
      credentialClientType(principal),
      parsed.channel,
      settings?.permissions,
    );
    if (!decision.allowed) {
      deps.hooks.emit('onDeny', {
        principal,
        peer: peerOfRequest(req),
        action: 'history',
        channel: parsed.channel.name,
        reason: decision.reason,
      });
      throw new ApiXError('FORBIDDEN', `history of ${parsed.channel.name} denied: ${decision.reason}`);
    }
    const since = url.searchParams.get('since') ?? undefined;
    const limitText = url.searchParams.get('limit');
    const limit = limitText === null ? undefined : Number(limitText);
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 10_000))
      throw new ApiXError('BAD_REQUEST', 'limit must be an integer from 1 to 10000');
    if (since !== undefined && !isEventId(since)) {
      sendJson(res, 200, { events: [], recovered: false, hasMore: false });
      return;
    }
    const key = channelKey(principal.orgId, parsed.channel);
    const h = await deps.broker.history(key, {
      since,
      limit,
      last: since === undefined ? limit : undefined,
      maxBytes: deps.historyPageBytes,
    });
    // The stored frames as they are, up to the byte budget: no parse, no stringify (history-page.ts).
    const page = historyPage(h.events, h.top, deps.historyPageBytes);
    // The last page also carries the channel's open streams, as snapshots (after every ended one).
    const streams = !page.hasMore && deps.openStreams ? await deps.openStreams(key, parsed.channel.name) : [];
    await sendHistoryPage(res, page, h.recovered, streams);
  };
}

/** `GET /v1/channels/<room>/presence`. */
function presenceHandler(deps: HttpApiDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const principal = await authenticateRequest(deps, req);
    const parsed = parseChannel(params[0]);
    if (!parsed.ok) throw new ApiXError('BAD_REQUEST', parsed.reason);
    if (parsed.channel.type !== 'ROOM')
      throw new ApiXError('BAD_REQUEST', 'presence is kept for room: channels');
    const settings = deps.channels.get(principal.orgId, parsed.channel.name);
    const decision = authorize(
      'subscribe',
      principal,
      credentialClientType(principal),
      parsed.channel,
      settings?.permissions,
    );
    if (!decision.allowed)
      throw new ApiXError('FORBIDDEN', `presence of ${parsed.channel.name} denied: ${decision.reason}`);
    const members = await deps.presence.list(channelKey(principal.orgId, parsed.channel));
    sendJson(res, 200, {
      members: members.map(({ userId, clientId, connectionId, info }) => ({
        userId,
        clientId,
        connectionId,
        info,
      })),
    });
  };
}

/** `GET /readyz`: 503 while draining or while a readiness check fails. */
function readinessHandler(deps: HttpApiDeps): HttpHandler {
  return async ({ res }) => {
    const results: Record<string, string> = {};
    let ok = !deps.isDraining();
    if (!ok) results.gateway = 'draining';
    await Promise.all(
      deps.readiness.map(async (c) => {
        try {
          await withTimeout(c.check(), 2000);
          results[c.name] = 'ok';
        } catch (err) {
          ok = false;
          results[c.name] = `unavailable: ${(err as Error).message}`;
        }
      }),
    );
    sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : 'unavailable', checks: results });
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new InternalError('APIX_ERR_TIMEOUT', `no answer in ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
