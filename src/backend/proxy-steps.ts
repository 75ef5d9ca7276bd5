/**
 * The proxy calls as the steps the gateway runs (docs/backend.md "Proxy calls"): the connect step of the
 * handshake, the subscribe step of the subscription manager and the publish step of the router. Each asks
 * the {@link BackendProxy} and turns its decision into what that step works with.
 */
import { ApiXError } from '@apix/protocol';
import type { ApiXConnection, Denial, ErrorCode } from '@apix/protocol';
import type { Principal } from '../auth/principal.ts';
import type { Connection } from '../connections/session.ts';
import type { PublishRequest } from '../router/event-router.ts';
import type { BackendProxy, ProxyCaller } from './proxy.ts';

/** What the connect proxy allowed: the payload (with the backend's extra channels) and principal to go on with. */
export interface ConnectApproval {
  readonly payload: ApiXConnection;
  readonly principal: Principal;
  /** `result.data`, for `connection.established.data`. */
  readonly data: unknown;
  /** The channels the backend added: the subscribe proxy is not asked about them. */
  readonly granted: ReadonlySet<string>;
}

export type ConnectRefusal = { readonly refused: ErrorCode; readonly message: string };

const NONE: ReadonlySet<string> = new Set();

export function proxyCaller(conn: Connection, principal: Principal): ProxyCaller {
  return {
    principal,
    peer: conn.peer,
    connectionId: conn.id,
    sessionId: conn.session?.sessionId ?? '',
    clientType: conn.clientType,
  };
}

/** The connect step: asks the backend when APIX_PROXY_CONNECT_URL is set. */
export async function approveConnect(
  proxy: BackendProxy | undefined,
  conn: Connection,
  payload: ApiXConnection,
  principal: Principal,
): Promise<ConnectApproval | ConnectRefusal> {
  if (!proxy?.enabled('connect')) return { payload, principal, data: undefined, granted: NONE };
  const caller = { ...proxyCaller(conn, principal), sessionId: payload.sessionId };
  const d = await proxy.decide('connect', caller, payload.sessionId, {
    subscriptions: payload.subscriptions,
    metadata: payload.metadata ?? null,
  });
  if (!d.allowed) return { refused: d.code, message: d.message };
  const extra = (d.changes.channels ?? []).filter((c) => !payload.subscriptions.includes(c));
  // The backend may shorten the connection's life, never make it outlive its token.
  const until = d.changes.expiresAt === undefined ? undefined : Math.ceil(d.changes.expiresAt / 1000);
  const expiresAt =
    until === undefined ? principal.expiresAt : Math.min(until, principal.expiresAt ?? Infinity);
  return {
    payload: extra.length > 0 ? { ...payload, subscriptions: [...payload.subscriptions, ...extra] } : payload,
    principal: expiresAt === principal.expiresAt ? principal : { ...principal, expiresAt },
    data: d.changes.data,
    granted: new Set(extra),
  };
}

/** The subscribe step: a refusal, or undefined when the backend (or APIX_PROXY_SUBSCRIBE_URL unset) allows. */
export async function approveSubscribe(
  proxy: BackendProxy | undefined,
  conn: Connection,
  channel: string,
): Promise<Denial | undefined> {
  if (!proxy?.enabled('subscribe') || !conn.principal) return undefined;
  const d = await proxy.decide('subscribe', proxyCaller(conn, conn.principal), channel, { channel });
  return d.allowed ? undefined : { channel, code: d.code, message: d.message };
}

/**
 * The publish step, for the router (`approvePublish`), when APIX_PROXY_PUBLISH_URL is set: a client's
 * publish (WebSocket or HTTP; the server's own, e.g. a stream's compacted event, are not asked) goes on with the payload
 * the backend gave (`result.data`) or its own, or is refused with the backend's code.
 */
export function publishApproval(
  proxy: BackendProxy,
): ((req: PublishRequest) => Promise<PublishRequest>) | undefined {
  if (!proxy.enabled('publish')) return undefined;
  return async (req) => {
    // Every publish of a principal is asked, over HTTP too (no connection then: `connectionId` ''): a member's
    // token may publish by HTTP, and a backend that decides publishes must see those as well.
    const caller: ProxyCaller = {
      principal: req.principal,
      peer: req.peer,
      connectionId: req.publisher?.connectionId ?? '',
      sessionId: req.connection?.sessionId ?? '',
      clientType: req.clientType,
    };
    const d = await proxy.decide('publish', caller, req.channel, {
      channel: req.channel,
      type: req.type,
      payload: req.payload ?? null,
    });
    if (!d.allowed) throw new ApiXError(d.code, d.message);
    return d.changes.data !== undefined ? { ...req, payload: d.changes.data } : req;
  };
}
