/**
 * Keys of per-publisher state kept beside a channel (rate-limit buckets, idempotency keys, dead-letter
 * notices). An organization's own channel (`acme/agent:x`) has publishers of that organization only, so
 * its channel key already scopes them. A shared channel (`_/system:...`, every key in the `_` namespace)
 * has publishers of every organization: state keyed by the channel key alone would let one organization
 * spend, suppress or read another's. Every such key is built here, with the publisher's organization.
 */
import type { Principal } from '../auth/principal.ts';

/** The organization id of the namespace every organization shares; refused as a tenant's id. */
export const SHARED_ORG_ID = '_';

/** True for a channel key every organization shares (`_/system:...`). */
export function isSharedChannelKey(channelKey: string): boolean {
  return channelKey.startsWith(`${SHARED_ORG_ID}/`);
}

/**
 * The key of one publisher's state in a channel: the channel key for an organization's own channel, and
 * `<channel key>/<publisher's org>` for a shared one (`_/system:x/acme`). Channel names and organization
 * ids contain no `/`, so it equals no channel key and no other organization's scope.
 */
export function publisherScopeKey(principal: Pick<Principal, 'orgId'>, channelKey: string): string {
  return isSharedChannelKey(channelKey) ? `${channelKey}/${principal.orgId}` : channelKey;
}

/**
 * The idempotency key the engines remember for a publish (per channel key, in the channel's slot): the
 * publisher's own key, prefixed with its organization on a shared channel, so that two organizations'
 * `k1` on `system:deploys` are two keys.
 */
export function publisherIdempotencyKey(
  principal: Pick<Principal, 'orgId'>,
  channelKey: string,
  idempotencyKey: string,
): string {
  return publisherScopeKey(principal, channelKey) === channelKey
    ? idempotencyKey
    : `${principal.orgId}/${idempotencyKey}`;
}

/**
 * Whether a dead-letter notice about a subscriber session of `subscriberOrgId` may go to a publisher of
 * `publisherOrgId`: only within one organization (a notice names the session; on a shared channel the
 * publisher of another organization is told nothing).
 */
export function mayNotifyPublisher(publisherOrgId: string, subscriberOrgId: string): boolean {
  return publisherOrgId === subscriberOrgId;
}
