/**
 * The gateway's door to the permission policy: decides an action on a channel for a principal with the
 * channel's current settings and the client type its credential vouches for (never the one a client
 * declares: auth/client-type.ts), and audits denials (`onDeny`).
 */
import type { ParsedChannel } from '@apix/protocol';
import type { HookBus } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import { credentialClientType } from '../auth/client-type.ts';
import type { ChannelRegistry } from './channel-registry.ts';
import { authorize } from './permissions.ts';
import type { ChannelAction, Decision } from './permissions.ts';

export class ChannelAccess {
  constructor(
    private readonly channels: ChannelRegistry,
    private readonly hooks: HookBus,
  ) {}

  /** The decision, without side effects. */
  decide(action: ChannelAction, principal: Principal, channel: ParsedChannel): Decision {
    const settings = this.channels.get(principal.orgId, channel.name);
    return authorize(action, principal, credentialClientType(principal), channel, settings?.permissions);
  }

  /** The decision; a denial is reported to the hooks (audit, metrics). */
  check(action: ChannelAction, principal: Principal, peer: Peer, channel: ParsedChannel): Decision {
    const decision = this.decide(action, principal, channel);
    if (!decision.allowed)
      this.hooks.emit('onDeny', { principal, peer, action, channel: channel.name, reason: decision.reason });
    return decision;
  }
}
