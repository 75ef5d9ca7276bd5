/**
 * Who may subscribe to, publish to, and read the history of a channel (docs/protocol.md §5). First the
 * tenancy and type invariants, which nothing overrides (a `user:<id>` channel is that user's; only
 * the platform publishes to `system`); then the channel's own rule for the action when it has one, else the
 * type's default rule. Pure: no I/O, so it is cheap and unit-tested exhaustively.
 */
import { ChannelType } from '@apix/protocol';
import type { ClientType, ParsedChannel } from '@apix/protocol';
import type { Principal } from '../auth/principal.ts';

export type ChannelAction = 'subscribe' | 'publish' | 'history';

/** A rule: every field given must match (OR within a field's list). An empty rule matches everyone. */
export interface PermissionRule {
  readonly roles?: readonly string[];
  readonly clientTypes?: readonly ClientType[];
  /** API-key scopes (any of). */
  readonly scopes?: readonly string[];
  readonly users?: readonly string[];
  /** Deny everyone but services. */
  readonly deny?: boolean;
}

/** The per-channel overrides kept in ApiXChannel.permissions. */
export interface ChannelPermissions {
  readonly subscribe?: PermissionRule;
  readonly publish?: PermissionRule;
  readonly history?: PermissionRule;
}

export type Decision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const ALLOW: Decision = { allowed: true };
const deny = (reason: string): Decision => ({ allowed: false, reason });
const READ_ONLY_ROLES = ['viewer', 'readonly'];

export function authorize(
  action: ChannelAction,
  principal: Principal,
  clientType: ClientType | undefined,
  channel: ParsedChannel,
  overrides?: ChannelPermissions,
): Decision {
  // API keys are limited by their scopes: '*', the action, or `action:<channel prefix>`.
  if (principal.kind === 'apiKey' && !hasScope(principal.scopes, action, channel.prefix))
    return deny(`API key lacks scope "${action}" for ${channel.prefix} channels`);

  // Invariants.
  if (channel.type === ChannelType.PRIVATE_USER && action !== 'publish' && !principal.isService) {
    if (channel.subject !== principal.userId) return deny('only its user may read a user channel');
  }
  if (channel.type === ChannelType.SYSTEM_EVENTS && action === 'publish' && !isPlatformPublisher(principal))
    return deny('only the platform publishes to system channels');
  if (principal.isService && action === 'publish') return ALLOW;

  const rule = overrides?.[action];
  if (rule)
    return matches(rule, principal, clientType) ? ALLOW : deny(`channel rule for ${action} does not match`);
  return defaultRule(action, principal, channel);
}

function defaultRule(action: ChannelAction, principal: Principal, channel: ParsedChannel): Decision {
  if (action !== 'publish') return ALLOW; // every member of the organization reads its channels
  if (principal.roles.some((r) => READ_ONLY_ROLES.includes(r))) return deny('read-only role');
  switch (channel.type) {
    // Agent, tool, workflow and provider events come from services (and admins): a signed-in user must not
    // be able to post a `tool_call_result` the UI shows as the agent's. A channel's rule can open one up.
    case ChannelType.AGENT_EVENTS:
    case ChannelType.TOOL_EVENTS:
    case ChannelType.WORKFLOW_EVENTS:
    case ChannelType.PROVIDER_EVENTS:
    case ChannelType.ORGANIZATION:
      return principal.roles.includes('admin')
        ? ALLOW
        : deny(`only admins and services publish to ${channel.prefix}`);
    case ChannelType.PRIVATE_USER:
      return channel.subject === principal.userId || principal.roles.includes('admin')
        ? ALLOW
        : deny("only services, admins and the user publish to a user's channel");
    default:
      return ALLOW;
  }
}

function matches(rule: PermissionRule, principal: Principal, clientType: ClientType | undefined): boolean {
  if (rule.deny) return principal.isService;
  if (rule.roles && !rule.roles.some((r) => principal.roles.includes(r))) return false;
  if (rule.clientTypes && (clientType === undefined || !rule.clientTypes.includes(clientType))) return false;
  if (rule.scopes && !rule.scopes.some((s) => principal.scopes.includes(s))) return false;
  if (rule.users && !rule.users.includes(principal.userId)) return false;
  return true;
}

function hasScope(scopes: readonly string[], action: ChannelAction, prefix: string): boolean {
  return (
    scopes.includes('*') ||
    scopes.includes(action) ||
    scopes.includes(`${action}:${prefix}`) ||
    (action === 'publish' && prefix === 'system' && scopes.includes(SYSTEM_SCOPE))
  );
}

/** The API-key scope that makes a key the platform's: it may publish to the shared `system` channels. */
export const SYSTEM_SCOPE = 'system';

/**
 * `system` channels are shared by every organization, so only the platform publishes to them: a service
 * of an organization in APIX_PLATFORM_ORGS, or an API key given the `system` scope by the operator.
 */
function isPlatformPublisher(principal: Principal): boolean {
  if (!principal.isService) return false;
  return (
    principal.isPlatform === true || (principal.kind === 'apiKey' && principal.scopes.includes(SYSTEM_SCOPE))
  );
}
