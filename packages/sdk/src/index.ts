/**
 * @apix/sdk: the client of the APIX real-time gateway, for browsers (no dependency beyond WebSocket) and
 * Node (inject `ws`). See docs/sdk.md.
 */
export { ApixClient, type ApixClientOptions, type FailoverOptions, type HeartbeatOptions } from './client.ts';
export {
  Subscription,
  type AckMode,
  type SubscriptionState,
  type SubscriptionStatus,
} from './subscription.ts';
export { backoffCeilingMs, backoffDelayMs, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
export { decodeJwtExpiryMs, tokenRefreshDelayMs, type TokenProvider } from './token.ts';
export {
  probeGateway,
  rankGateways,
  selectGateway,
  type GatewayProbeOptions,
  type GatewayRtt,
} from './gateway-select.ts';
export { normalizeGatewayUrl, type WebSocketConstructor, type WebSocketLike } from './transport.ts';
export { systemClock, type Clock, type Random, type TimerHandle } from './clock.ts';
export type {
  ApixEvent,
  ClientEvents,
  ClientState,
  ConnectionErrorInfo,
  DeliveredMetadata,
  EstablishedInfo,
  EventHandler,
  PayloadOf,
  PublishableType,
  PublishOptions,
  PublishResult,
  SubscribeOptions,
  SubscriptionFilters,
} from './types.ts';
// The protocol values an application needs, re-exported so that it imports one package.
export {
  ClientType,
  ChannelType,
  DOMAIN_EVENT_TYPES,
  PROTOCOL_VERSION,
  WS_PATH,
  WS_SUBPROTOCOL,
} from '../../../src/protocol/constants.ts';
export {
  ApixError,
  CloseCode,
  ErrorCode,
  ERRORS,
  closeCodeAllowsReconnect,
  isApixError,
} from '../../../src/protocol/errors.ts';
export { compareEventIds, isEventId, parseEventId } from '../../../src/protocol/event-id.ts';
export { parseChannel } from '../../../src/protocol/channels.ts';
export type { DomainPayloads } from '../../../src/protocol/events.ts';
export { E2eCipher, type E2eChannelKeys, type E2eKeyMap, type E2eKeyMaterial } from './e2e.ts';
