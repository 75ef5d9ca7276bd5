/**
 * Dead letters for operators (role `admin`, the admin's own organization only), over the node's
 * DeadLetterStore (src/retry/dead-letter.ts: the bounded queue of this node; with a database the
 * ApiXDeadLetter rows are the permanent record and are kept):
 * - `GET  /v1/admin/dead-letters?channel=&limit=`: the entries, newest first, without payloads;
 * - `GET  /v1/admin/dead-letters/<eventId>`: the entries of one event (one per subscriber session that
 *   failed it), with the event as it was delivered;
 * - `POST /v1/admin/dead-letters/replay` `{eventIds?, channel?, all?}`: publishes each selected event again
 *   on its channel (a new id, the same type and payload, `metadata.replay_of` = the original id), so that
 *   every subscriber of the channel now gets it, and takes the entries out of the queue;
 * - `POST /v1/admin/dead-letters/purge` `{eventIds?, channel?, all?}`: takes them out.
 * A replay or purge names `eventIds`, a `channel`, or `all: true` (never an empty selection by accident),
 * and is audited (`onAdminAction`, actions `dead-letters-replay` and `dead-letters-purge`).
 */
import { z } from 'zod';
import { ApiXError, parseChannel } from '@apix/protocol';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import type { HookBus } from '../hooks.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { DeadLetter, DeadLetterStore } from '../retry/dead-letter.ts';
import { parse, readOptionalJson, requireAdmin } from '../http/admin-api.ts';
import { peerOfRequest } from '../http/api.ts';
import { sendJson } from '../http/router.ts';
import type { HttpHandler, HttpRouter } from '../http/router.ts';

export interface DeadLetterAdminDeps {
  readonly authenticator: Authenticator;
  readonly hooks: HookBus;
  readonly router: Pick<EventRouter, 'publish'>;
  readonly deadLetters: DeadLetterStore;
  readonly maxBodyBytes: number;
}

const MAX_LIST = 1000;
const EVENT_ID_RE = /^[0-9A-Za-z_-]{1,64}$/;

const SelectionSchema = z
  .strictObject({
    eventIds: z.array(z.string().regex(EVENT_ID_RE)).min(1).max(MAX_LIST).optional(),
    channel: z.string().min(1).max(256).optional(),
    all: z.literal(true).optional(),
  })
  .refine((s) => s.eventIds !== undefined || s.channel !== undefined || s.all === true, {
    message: 'name eventIds, a channel, or all: true',
  });
type Selection = z.infer<typeof SelectionSchema>;

/** What an entry shows in a list: no payload. */
function summary(d: DeadLetter) {
  return {
    eventId: d.eventId,
    channel: channelName(d),
    type: d.type,
    sessionId: d.sessionId,
    attempts: d.attempts,
    failedAt: new Date(d.failedAt).toISOString(),
  };
}

/** The entry's channel name, relative to its organization (the store may hold the engine key). */
function channelName(d: DeadLetter): string {
  const prefix = `${d.orgId}/`;
  return d.channel.startsWith(prefix) ? d.channel.slice(prefix.length) : d.channel;
}

/** The event as delivered (the frame), or undefined when it cannot be read (sealed at rest). */
function eventOf(d: DeadLetter): { payload: unknown; metadata?: Record<string, unknown> } | undefined {
  try {
    const frame = JSON.parse(d.frame) as { payload?: unknown; metadata?: Record<string, unknown> };
    return 'payload' in frame
      ? { payload: frame.payload, ...(frame.metadata ? { metadata: frame.metadata } : {}) }
      : undefined;
  } catch {
    return undefined;
  }
}

function matcher(selection: Selection): (d: DeadLetter) => boolean {
  const ids = selection.eventIds ? new Set(selection.eventIds) : undefined;
  const channel = selection.channel;
  if (channel !== undefined && !parseChannel(channel).ok)
    throw new ApiXError('BAD_REQUEST', `invalid channel "${channel}"`);
  return (d) =>
    (ids === undefined || ids.has(d.eventId)) && (channel === undefined || channelName(d) === channel);
}

export function registerDeadLetterAdmin(http: HttpRouter, deps: DeadLetterAdminDeps): void {
  http.add('GET', /^\/v1\/admin\/dead-letters\/?$/, listHandler(deps));
  http.add('POST', /^\/v1\/admin\/dead-letters\/(replay|purge)\/?$/, actionHandler(deps));
  http.add('GET', /^\/v1\/admin\/dead-letters\/([^/]+)\/?$/, inspectHandler(deps));
}

function listHandler(deps: DeadLetterAdminDeps): HttpHandler {
  return async ({ req, res, url }) => {
    const admin = await requireAdmin(deps, req);
    const limitText = url.searchParams.get('limit') ?? '100';
    const limit = Number(limitText);
    if (!/^\d{1,4}$/.test(limitText) || limit < 1 || limit > MAX_LIST)
      throw new ApiXError('BAD_REQUEST', `limit must be 1..${MAX_LIST}`);
    const channel = url.searchParams.get('channel') ?? undefined;
    const match = matcher({ channel, all: true });
    const entries = deps.deadLetters.list(admin.orgId, MAX_LIST).filter(match).slice(0, limit);
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, {
      deadLetters: entries.map(summary),
      node: { queued: deps.deadLetters.size, dropped: deps.deadLetters.dropped },
    });
  };
}

function inspectHandler(deps: DeadLetterAdminDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const eventId = params[0]!;
    if (!EVENT_ID_RE.test(eventId)) throw new ApiXError('BAD_REQUEST', 'invalid event id');
    const entries = deps.deadLetters.list(admin.orgId, MAX_LIST).filter((d) => d.eventId === eventId);
    // Another organization's dead letter answers exactly like a missing one.
    if (entries.length === 0)
      throw new ApiXError(
        'NOT_FOUND',
        `no dead letter of event ${eventId} in your organization on this node`,
      );
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, {
      eventId,
      channel: channelName(entries[0]!),
      type: entries[0]!.type,
      event: eventOf(entries[0]!) ?? null,
      failures: entries.map(summary),
    });
  };
}

function actionHandler(deps: DeadLetterAdminDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const verb = params[0] as 'replay' | 'purge';
    const selection = parse(SelectionSchema, await readOptionalJson(req, deps.maxBodyBytes));
    const match = matcher(selection);
    const peer = peerOfRequest(req);
    const taken = deps.deadLetters.remove(admin.orgId, match);
    const result = verb === 'purge' ? { purged: taken.length } : await replay(deps, admin, peer, taken);
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer,
      action: `dead-letters-${verb}`,
      target: selection.eventIds?.join(',') ?? selection.channel ?? '*',
      detail: result,
    });
    sendJson(res, 200, result);
  };
}

/** Publishes each distinct event of `taken` again; entries that cannot be are put back and reported. */
async function replay(
  deps: DeadLetterAdminDeps,
  admin: Principal,
  peer: Peer,
  taken: readonly DeadLetter[],
): Promise<{ replayed: Array<{ eventId: string; channel: string; id: string }>; failed: unknown[] }> {
  const byEvent = new Map<string, DeadLetter[]>();
  for (const d of taken) byEvent.set(d.eventId, [...(byEvent.get(d.eventId) ?? []), d]);
  const replayed: Array<{ eventId: string; channel: string; id: string }> = [];
  const failed: Array<{ eventId: string; code: string; message: string }> = [];
  for (const [eventId, entries] of byEvent) {
    const first = entries[0]!;
    const channel = channelName(first);
    const event = eventOf(first);
    try {
      if (event === undefined)
        throw new ApiXError('BAD_REQUEST', 'the dead letter holds no readable event (sealed at rest?)');
      const { payload, metadata = {} } = event;
      // The original's custom metadata (trace ids...) goes along; its delivery bookkeeping does not.
      const { timestamp: _t, version: _v, retryCount: _r, idempotency_key: _i, ...custom } = metadata;
      const published = await deps.router.publish({
        // Replayed as the organization's service: the original publisher was allowed to publish it.
        principal: { ...admin, roles: [...admin.roles, 'service'], isService: true },
        clientType: 'INTERNAL_SERVICE',
        peer,
        connection: undefined,
        publisher: undefined,
        channel,
        type: first.type,
        payload,
        metadata: { ...custom, replay_of: eventId },
      });
      replayed.push({ eventId, channel, id: published.id });
    } catch (err) {
      for (const d of entries) deps.deadLetters.add(d);
      const e = err instanceof ApiXError ? err : new ApiXError('INTERNAL', String(err));
      failed.push({ eventId, code: e.code, message: e.message });
    }
  }
  return { replayed, failed };
}
