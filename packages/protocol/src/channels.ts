/**
 * Channel names (docs/protocol.md §5): segments of [A-Za-z0-9_-] joined by ':', at most 200 characters, always
 * relative to the caller's organization. The first segment gives the channel type.
 */
import { ChannelType } from './constants.ts';

export const MAX_CHANNEL_LENGTH = 200;
const CHANNEL_RE = /^[A-Za-z0-9_-]+(?::[A-Za-z0-9_-]+)*$/;

const TYPE_BY_PREFIX: Readonly<Record<string, ChannelType>> = {
  agent: ChannelType.AGENT_EVENTS,
  tool: ChannelType.TOOL_EVENTS,
  workflow: ChannelType.WORKFLOW_EVENTS,
  provider: ChannelType.PROVIDER_EVENTS,
  system: ChannelType.SYSTEM_EVENTS,
  user: ChannelType.PRIVATE_USER,
  org: ChannelType.ORGANIZATION,
  room: ChannelType.ROOM,
};

export interface ParsedChannel {
  /** The name as the client spells it (relative to its organization). */
  readonly name: string;
  readonly type: ChannelType;
  /** The first segment: agent, tool, workflow, provider, system, user, org or room. */
  readonly prefix: string;
  /** For `user:<id>`: the user id; for `room:<id>`: the room id. */
  readonly subject: string | undefined;
}

export type ChannelParseResult = { ok: true; channel: ParsedChannel } | { ok: false; reason: string };

export function parseChannel(name: unknown): ChannelParseResult {
  if (typeof name !== 'string' || name.length === 0)
    return { ok: false, reason: 'channel must be a non-empty string' };
  if (name.length > MAX_CHANNEL_LENGTH)
    return { ok: false, reason: `channel is longer than ${MAX_CHANNEL_LENGTH}` };
  if (!CHANNEL_RE.test(name))
    return { ok: false, reason: 'channel must be segments of [A-Za-z0-9_-] joined by ":"' };
  const colon = name.indexOf(':');
  const prefix = colon === -1 ? name : name.slice(0, colon);
  const type = Object.prototype.hasOwnProperty.call(TYPE_BY_PREFIX, prefix)
    ? TYPE_BY_PREFIX[prefix]
    : undefined;
  if (type === undefined)
    return {
      ok: false,
      reason: `unknown channel type "${prefix}" (use agent, tool, workflow, provider, system, user, org or room)`,
    };
  const rest = colon === -1 ? undefined : name.slice(colon + 1);
  let subject: string | undefined;
  if (type === ChannelType.PRIVATE_USER || type === ChannelType.ROOM) {
    subject = rest === undefined ? undefined : (rest.split(':')[0] as string);
    if (subject === undefined)
      return { ok: false, reason: `"${prefix}" channels need an id: ${prefix}:<id>` };
  }
  return { ok: true, channel: { name, type, prefix, subject } };
}

/**
 * Organization ids (the `org` claim, an API key's organization) share the segment alphabet, so no org id
 * can contain a separator; `_` is reserved: it is the namespace every organization shares (`_/system:...`).
 */
const ORG_RE = /^[A-Za-z0-9_-]{1,64}$/;
export function isValidOrgId(org: unknown): org is string {
  return typeof org === 'string' && ORG_RE.test(org) && org !== '_';
}

/**
 * The engine-wide key of a channel. '/' appears in no channel name and no organization id, so the key of
 * one organization's channel can never equal another's. `system` channels are shared by every organization.
 */
export function channelKey(orgId: string, channel: ParsedChannel): string {
  return channel.type === ChannelType.SYSTEM_EVENTS ? `_/${channel.name}` : `${orgId}/${channel.name}`;
}

/** The channel name relative to its organization, from an engine key. */
export function channelNameFromKey(key: string): string {
  return key.slice(key.indexOf('/') + 1);
}
