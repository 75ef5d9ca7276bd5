/**
 * Which client type a credential vouches for (issue 12, hole 8). Channel rules with `clientTypes` grant by
 * client type, so the type they see must come from something the server can trust: the token's
 * `client_type` claim (signed by the issuer), or the credential's kind (an API key, a token with the
 * `service` role: `INTERNAL_SERVICE`). The `clientType` of the `connect` frame is the client's own
 * description (records, metrics, presence) and grants nothing.
 */
import { ClientType } from '@apix/protocol';
import type { Principal } from './principal.ts';

const TYPES = new Set<string>(Object.values(ClientType));

/** The token claim that carries a client type. */
export const CLIENT_TYPE_CLAIM = 'client_type';

export function isClientType(value: unknown): value is ClientType {
  return typeof value === 'string' && TYPES.has(value);
}

/** The client type permission rules see for `principal`; undefined when its credential states none. */
export function credentialClientType(principal: Principal): ClientType | undefined {
  if (principal.clientType !== undefined) return principal.clientType;
  if (principal.kind === 'apiKey' || principal.roles.includes('service')) return ClientType.INTERNAL_SERVICE;
  return undefined;
}
