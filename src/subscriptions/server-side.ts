/**
 * Server-side subscriptions (PROTOCOL-1.1 section 13): `POST /v1/admin/subscriptions` `{userId, channels,
 * action}` (an admin or a service of the organization) subscribes or unsubscribes every session of the
 * user, on every node: this node applies it, then tells the others with a control message (the same path
 * as suspensions). A live connection gets it exactly as if its client had sent `subscribe` /
 * `unsubscribe`: the permission checks of its own credentials, then `subscription.added` (with `denied`)
 * or `subscription.removed`, and the hooks (webhooks, audit). A session whose client is away gets it in
 * its saved subscriptions (it resumes with them). Audited with `onAdminAction`.
 *
 * Limit: a session saved in the shared store by a node that has shut down (no node holds it) gets the
 * change only when it is resumed and changed again.
 */
import type { IncomingMessage } from 'node:http';
import { ServerSubscriptionSchema } from '@apix/protocol';
import type { ServerSubscription } from '@apix/protocol';
import type { Logger } from '../log.ts';
import type { Broker, ControlMessage } from '../broker/broker.ts';
import type { GatewayHooks, HookBus } from '../hooks.ts';
import type { Session } from '../connections/session.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import { peerOfRequest } from '../http/api.ts';
import { readJson, sendJson } from '../http/router.ts';
import type { HttpRouter } from '../http/router.ts';
import { parseBody, requireAdminOrService } from '../webhooks/admin-api.ts';
import type { SubscriptionManager } from './subscription-manager.ts';

const CONTROL_KIND = 'subscriptions.server';

export interface ServerSubscriptionsDeps {
  readonly nodeId: string;
  readonly log: Logger;
  readonly broker: Broker;
  readonly sessions: ReadonlyMap<string, Session>;
  readonly subscriptions: SubscriptionManager;
}

type Change = ServerSubscription & { readonly orgId: string };

export class ServerSubscriptions {
  constructor(private readonly deps: ServerSubscriptionsDeps) {}

  /** Applies the change here and sends it to every other node; answers the sessions changed here. */
  async change(change: Change): Promise<number> {
    const here = this.apply(change);
    await this.deps.broker.publishControl({ kind: CONTROL_KIND, from: this.deps.nodeId, ...change });
    return here;
  }

  /** Changes the subscriptions of the user's sessions held by this node; answers how many. */
  apply({ orgId, userId, channels, action }: Change): number {
    let n = 0;
    for (const session of this.deps.sessions.values()) {
      if (session.orgId !== orgId || session.userId !== userId) continue;
      n++;
      const subs = this.deps.subscriptions;
      const conn = session.connection;
      if (conn) {
        // In order with the connection's own subscription frames, as if it had sent this one.
        subs.inOrder(conn, () => {
          if (action === 'unsubscribe') return subs.unsubscribe(conn, channels, undefined, 'server');
          const fresh = channels.filter(
            (c) => ![...session.subscriptions.values()].some((s) => s.name === c),
          );
          if (fresh.length > 0)
            return subs.subscribe(conn, { channels: fresh, acknowledgment: false }, undefined);
        });
      } else if (action === 'subscribe')
        subs
          .subscribeAway(session, channels)
          .catch((err: unknown) =>
            this.deps.log.warn(
              { err, session: session.key },
              'server-side subscribe of an away session failed',
            ),
          );
      else subs.unsubscribeAway(session, channels);
    }
    return n;
  }

  /** The control messages of the other nodes (`onClusterControl`). */
  hooks(): GatewayHooks {
    return {
      onClusterControl: ({ message }) => {
        const change = parseControl(message);
        if (change) this.apply(change);
      },
    };
  }
}

function parseControl(msg: ControlMessage): Change | undefined {
  if (msg.kind !== CONTROL_KIND || typeof msg.orgId !== 'string') return undefined;
  const r = ServerSubscriptionSchema.safeParse({
    userId: msg.userId,
    channels: msg.channels,
    action: msg.action,
  });
  return r.success ? { ...r.data, orgId: msg.orgId } : undefined;
}

/** `POST /v1/admin/subscriptions`. */
export function registerServerSubscriptionsApi(
  http: HttpRouter,
  deps: {
    readonly authenticator: Authenticator;
    readonly hooks: HookBus;
    readonly maxBodyBytes: number;
    readonly server: ServerSubscriptions;
  },
): void {
  http.add('POST', /^\/v1\/admin\/subscriptions\/?$/, async ({ req, res }) => {
    const p = await requireAdminOrService(deps, req, 'server-side subscriptions');
    const body = parseBody(
      ServerSubscriptionSchema,
      await readJson(req as IncomingMessage, deps.maxBodyBytes),
    );
    const sessionsHere = await deps.server.change({ ...body, orgId: p.orgId });
    deps.hooks.emit('onAdminAction', {
      principal: p,
      peer: peerOfRequest(req),
      action: `subscriptions.${body.action}`,
      target: body.userId,
      detail: { channels: body.channels, sessionsHere },
    });
    sendJson(res, 200, { userId: body.userId, action: body.action, channels: body.channels, sessionsHere });
  });
}
