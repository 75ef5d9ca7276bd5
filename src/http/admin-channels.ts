/**
 * A running node's channel delivery settings for operators (role `admin`, the admin's own organization),
 * through the node's ChannelRegistry (memory, or the database registry that every node reloads):
 * - `GET  /v1/admin/channels/<channel>/settings`: the channel's settings (`{}` when none);
 * - `POST /v1/admin/channels/<channel>/settings` `{coalesceKey?: "<payload field>" | null, durable?,
 *   encrypted?}`: changes the settings given (a `null` coalesceKey clears it), keeping the others;
 * - `PUT  /v1/admin/channels/<channel>/permissions` `{permissions}`: replaces the channel's permission rules
 *   (`{}` removes them), keeping its other settings.
 * What `apix channels set|set-permissions` write in the database of a stopped node (the CLI sends them here
 * when given `--url`). Audited (`onAdminAction`: `channels.set_settings`, `channels.set_permissions`).
 */
import { z } from 'zod';
import { ApiXError, parseChannel } from '@apix/protocol';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Principal } from '../auth/principal.ts';
import type { HookBus } from '../hooks.ts';
import { COALESCE_KEY_RE } from '../subscriptions/channel-registry.ts';
import { ChannelPermissionsSchema } from '../store/channel-records.ts';
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
  /** APIX_ENCRYPTION_KEYS is set: without it a channel cannot be made encrypted (its publishes would fail). */
  readonly encryptionConfigured: boolean;
}

const SettingsChangeSchema = z
  .strictObject({
    coalesceKey: z
      .string()
      .regex(COALESCE_KEY_RE, 'coalesceKey must be a payload field name ([A-Za-z_][A-Za-z0-9_]{0,63})')
      .nullable()
      .optional(),
    durable: z.boolean().optional(),
    encrypted: z.boolean().optional(),
  })
  .refine((c) => Object.keys(c).length > 0, 'give coalesceKey, durable or encrypted');
const PermissionsChangeSchema = z.strictObject({ permissions: ChannelPermissionsSchema });

const PATH = /^\/v1\/admin\/channels\/([^/]+)\/settings\/?$/;
const PERMISSIONS_PATH = /^\/v1\/admin\/channels\/([^/]+)\/permissions\/?$/;

export function registerAdminChannels(http: HttpRouter, deps: AdminChannelsDeps): void {
  http.add('GET', PATH, getHandler(deps));
  http.add('POST', PATH, setHandler(deps));
  http.add('PUT', PERMISSIONS_PATH, permissionsHandler(deps));
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
    if (change.encrypted === true && !deps.encryptionConfigured)
      throw new ApiXError(
        'UNAVAILABLE',
        'encrypted needs APIX_ENCRYPTION_KEYS on the nodes; without them publishing to the channel is refused',
      );
    const { coalesceKey, ...flags } = change;
    const { coalesceKey: previous, ...rest } = deps.channels.get(admin.orgId, channel) ?? {};
    const key = coalesceKey === undefined ? previous : (coalesceKey ?? undefined);
    const settings: ChannelSettings = {
      ...rest,
      ...flags,
      ...(key !== undefined ? { coalesceKey: key } : {}),
    };
    await deps.channels.set(admin.orgId, channel, settings);
    audit(deps, req, admin, 'channels.set_settings', channel, change);
    sendJson(res, 200, { channel, settings });
  };
}

function permissionsHandler(deps: AdminChannelsDeps): HttpHandler {
  return async ({ req, res, params }) => {
    const admin = await requireAdmin(deps, req);
    const channel = channelOf(params[0]!);
    const { permissions } = parse(PermissionsChangeSchema, await readOptionalJson(req, deps.maxBodyBytes));
    const { permissions: _old, ...rest } = deps.channels.get(admin.orgId, channel) ?? {};
    // `{}` removes the rules, as `apix channels set-permissions --json '{}'` does.
    const settings: ChannelSettings = Object.keys(permissions).length === 0 ? rest : { ...rest, permissions };
    await deps.channels.set(admin.orgId, channel, settings);
    audit(deps, req, admin, 'channels.set_permissions', channel, { permissions });
    sendJson(res, 200, { channel, settings });
  };
}

function audit(
  deps: AdminChannelsDeps,
  req: Parameters<HttpHandler>[0]['req'],
  admin: Principal,
  action: string,
  target: string,
  detail: unknown,
): void {
  deps.hooks.emit('onAdminAction', { principal: admin, peer: peerOfRequest(req), action, target, detail });
}
