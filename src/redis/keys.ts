/**
 * Every Redis key and pub/sub topic APIX uses, from one place (the way BullMQ's QueueKeys does it), so
 * that a prefix separates deployments and tests, and so that the cluster layout is decided here.
 *
 * Cluster layout: the keys that one Lua script touches share a hash tag (`{...}`), so they land in one
 * slot. A channel's stream, its meta hash and its pub/sub topic are tagged with the channel key; a
 * session's queue keys with the session id; a room's presence keys with the room key. A tag is the text
 * between the first `{` and the next `}`, so any `{`/`}` in user data would move it: channel and room
 * keys (`[A-Za-z0-9_:/-]`) cannot contain them, and other ids are escaped (`tag()`) when they could.
 */
import { InternalError } from '@apix/protocol/internal-errors';

/** Characters that appear in channel engine keys (`<org>/<name>`); no glob or hash-tag metacharacters. */
const SAFE_KEY_RE = /^[A-Za-z0-9_:/.-]+$/;

export const DEFAULT_KEY_PREFIX = 'apix:';

export class RedisKeys {
  constructor(readonly prefix: string = DEFAULT_KEY_PREFIX) {
    if (/[{}]/.test(prefix))
      throw new InternalError(
        'APIX_ERR_REDIS_KEY',
        'the Redis key prefix must not contain "{" or "}" (hash tags)',
      );
  }

  /** The stream holding a channel's history (its ids are the event ids). */
  stream(channelKey: string): string {
    return `${this.prefix}{ch:${safe(channelKey)}}:stream`;
  }

  /** The channel's meta hash: `floor` = the id of the last event trimmed from the stream. */
  meta(channelKey: string): string {
    return `${this.prefix}{ch:${safe(channelKey)}}:meta`;
  }

  /** The pub/sub topic on which the channel's events go to the nodes (same slot as its stream). */
  topic(channelKey: string): string {
    return `${this.prefix}{ch:${safe(channelKey)}}:t`;
  }

  /**
   * The event id a publisher's idempotency key produced on the channel (PX: the window). In the channel's
   * slot, so the publish script checks and sets it atomically with the append; the key follows the tag.
   */
  idempotency(channelKey: string, idempotencyKey: string): string {
    return `${this.prefix}{ch:${safe(channelKey)}}:idem:${idempotencyKey}`;
  }

  /** The channel key of a topic made by `topic()`, or undefined for any other topic. */
  channelOfTopic(topic: string): string | undefined {
    const head = `${this.prefix}{ch:`;
    if (!topic.startsWith(head) || !topic.endsWith('}:t')) return undefined;
    return topic.slice(head.length, -3);
  }

  /** The node-to-node control topic (not tagged: in a cluster it is an ordinary, broadcast PUBLISH). */
  control(): string {
    return `${this.prefix}control`;
  }

  /** A session's snapshot (JSON, with PX expiry). */
  session(sessionId: string): string {
    return `${this.prefix}session:${tag(sessionId)}`;
  }

  /** A user's sessions that receive their `user:` channel: hash session key -> "<live>:<expiresAt>". */
  userSessions(orgId: string, userId: string): string {
    return `${this.prefix}usersessions:{${tag(`${orgId}/${userId}`)}}`;
  }

  /** A session's offline queue (a list of encoded frames). */
  queue(sessionId: string): string {
    return `${this.prefix}queue:{${tag(sessionId)}}`;
  }

  /** How many frames the session's queue dropped because it was full. */
  queueOverflow(sessionId: string): string {
    return `${this.prefix}queue:{${tag(sessionId)}}:overflow`;
  }

  /** A room's presence members: hash connectionId -> JSON member. */
  presenceMembers(roomKey: string): string {
    return `${this.prefix}presence:{${tag(roomKey)}}:members`;
  }

  /** A room's presence deadlines: zset connectionId scored by the ms its entry expires at. */
  presenceDeadlines(roomKey: string): string {
    return `${this.prefix}presence:{${tag(roomKey)}}:deadlines`;
  }

  /** A revoked token (`jti`) of an organization (PX: until the token has expired). */
  revokedToken(orgId: string, jti: string): string {
    return `${this.prefix}rev:token:{${tag(`${orgId}/${jti}`)}}`;
  }

  /** A user's revocation: tokens issued before the value (seconds) are revoked. */
  revokedUser(orgId: string, userId: string): string {
    return `${this.prefix}rev:user:{${tag(`${orgId}/${userId}`)}}`;
  }

  /** A suspension (value: the reason; PX until it lapses): a user's, or one session's. Same tag per user. */
  suspension(orgId: string, userId: string, sessionId?: string): string {
    const base = `${this.prefix}susp:{${tag(`${orgId}/${userId}`)}}`;
    return sessionId === undefined ? `${base}:user` : `${base}:s:${sessionId}`;
  }

  /** The services serving an RPC method of an organization (sorted set: member -> registered until). */
  rpcMethod(orgId: string, method: string): string {
    return `${this.prefix}rpc:{${tag(orgId)}}:${method}`;
  }

  /** A stream's state (hash), in the slot of its channel's streams (tag `{st:<channel key>}`). */
  streamState(channelKey: string, streamId: string): string {
    return `${this.prefix}{st:${safe(channelKey)}}:s:${streamId}`;
  }

  /** A stream's accumulated text (string, APPENDed). `streamId` is `[A-Za-z0-9_-]`: no tag to escape. */
  streamText(channelKey: string, streamId: string): string {
    return `${this.prefix}{st:${safe(channelKey)}}:x:${streamId}`;
  }

  /** A channel's streams not yet compacted: hash streamId -> stream id. */
  openStreams(channelKey: string): string {
    return `${this.prefix}{st:${safe(channelKey)}}:open`;
  }

  /**
   * Webhook delivery state, all in one slot (`{wh}`: the scripts touch several at once): `endpoints`,
   * `batches` (hash id -> JSON), `due` (zset id -> ms), `dead` (hash id -> JSON), `deadorder` (zset id -> ms).
   */
  webhooks(part: 'endpoints' | 'batches' | 'due' | 'dead' | 'deadorder'): string {
    return `${this.prefix}{wh}:${part}`;
  }

  /** The nodes with a subscriber on a channel (channel.occupied / vacated; in the channel's slot). */
  occupancy(channelKey: string): string {
    return `${this.prefix}{ch:${safe(channelKey)}}:nodes`;
  }

  /** Occupancy leases of the live node incarnations (zset member -> expiry ms; see redis-occupancy.ts). */
  occupancyLeases(): string {
    return `${this.prefix}{occ}:leases`;
  }

  /** The channels one node incarnation occupies (a set of channel keys), for the sweep of a dead one. */
  occupancyIndex(member: string): string {
    return `${this.prefix}{occ:${tag(member)}}:channels`;
  }

  /** A shared token bucket (hash: tokens, last refill), e.g. `org:pub:acme` or `ch:acme/agent:x`. */
  rateLimit(bucket: string): string {
    return `${this.prefix}rl:{${tag(bucket)}}`;
  }
}

function safe(channelKey: string): string {
  if (!SAFE_KEY_RE.test(channelKey))
    throw new InternalError('APIX_ERR_REDIS_KEY', `not a channel engine key: ${JSON.stringify(channelKey)}`);
  return channelKey;
}

/** Ids of any alphabet, made safe inside a hash tag: `{`, `}` and `%` are percent-escaped. */
function tag(id: string): string {
  return /[{}%]/.test(id)
    ? id.replace(/[{}%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    : id;
}
