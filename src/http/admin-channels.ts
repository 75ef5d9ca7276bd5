/**
 * A running node's channel delivery settings for operators (role `admin`, the admin's own organization),
 * through the node's ChannelRegistry (memory, or the database registry that every node reloads):
 * - `GET  /v1/admin/channels/<channel>/settings`: the channel's settings (`{}` when none);
 * - `POST /v1/admin/channels/<channel>/settings` `{coalesceKey: "<payload field>" | null}`: sets or clears
 *   the channel's `coalesceKey` (docs/protocol.md, quality of service), keeping its other settings.
 * A change is audited (`onAdminAction`, action `channels.set_settings`). `apix channels set
 * --coalesce-key` writes the same setting in the database of a stopped node.
 */
import { z } from 'zod';
import { ApiXError, parseChannel } from '@apix/protocol';
import type { Authenticator } from '../auth/authenticator.ts';
import type { HookBus } from '../hooks.ts';
import { COALESCE_KEY_RE } from '../subscriptions/channel-registry.ts';
import type { ChannelRegistry, ChannelSettings } from '../subscriptions/channel-registry.ts';
import { parse, readOptionalJson, requireAdmin } from './admin-api.ts';
import { peerOfRequest } from './api.ts';
import { sendJson } from './router.ts';
import type { HttpHandler, HttpRouter } from './router.ts';

export interface AdminChannelsDeps {
  readonly authenticator: Authenticator;
  readonly hooks: HookBus;
  readonly channels: ChannelRegistry;
  readonly maxBodyBytes: number;
}

const SettingsChangeSchema = z.strictObject({
  coalesceKey: z
    .string()
    .regex(COALESCE_KEY_RE, 'coalesceKey must be a payload field name ([A-Za-z_][A-Za-z0-9_]{0,63})')
    .nullable(),
});

const PATH = /^\/v1\/admin\/channels\/([^/]+)\/settings\/?$/;

export function registerAdminChannels(http: HttpRouter, deps: AdminChannelsDeps): void {
  http.add('GET', PATH, getHandler(deps));
  http.add('POST', PATH, setHandler(deps));
}

function channelOf(raw: string): string {
  const parsed = parseChannel(raw);
  if (!parsed.ok) throw new ApiXError('BAD_REQUEST', parsed.reason);
  return parsed.channel.name;
}

function getHandler(deps: AdminChannelsDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const channel = channelOf(params[0]!);
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, { channel, settings: deps.channels.get(admin.orgId, channel) ?? {} });
  };
}

function setHandler(deps: AdminChannelsDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const channel = channelOf(params[0]!);
    const change = parse(SettingsChangeSchema, await readOptionalJson(req, deps.maxBodyBytes));
    const { coalesceKey: _old, ...rest } = deps.channels.get(admin.orgId, channel) ?? {};
    const settings: ChannelSettings =
      change.coalesceKey === null ? rest : { ...rest, coalesceKey: change.coalesceKey };
    await deps.channels.set(admin.orgId, channel, settings);
    deps.hooks.emit('onAdminAction', {
      principal: admin,
      peer: peerOfRequest(req),
      action: 'channels.set_settings',
      target: channel,
      detail: change,
    });
    sendJson(res, 200, { channel, settings });
  };
}
