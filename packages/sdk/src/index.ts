/**
 * @apix/sdk: the client of the APIX real-time gateway, for browsers (no dependency beyond WebSocket) and
 * Node (inject `ws`). See docs/sdk.md.
 */
export { ApiXClient } from './client.ts';
export type { HandleOptions, RpcHandler, RpcOptions } from './rpc.ts';
export type { RpcCaller } from '@apix/protocol/schemas';
export type { ApiXClientOptions, FailoverOptions, HeartbeatOptions } from './options.ts';
export {
  Subscription,
  type AckMode,
  type SubscriptionState,
  type SubscriptionStatus,
} from './subscription.ts';
export {
  StreamCancelledError,
  StreamHandle,
  type StreamEndOptions,
  type StreamEndResult,
  type StreamEndStatus,
  type StreamOptions,
} from './stream-publisher.ts';
export {
  applyStreamInput,
  compactedStream,
  subscribeStreams,
  type AgentStream,
  type AgentStreamStatus,
  type StreamChange,
  type StreamHandlers,
  type StreamInput,
  type StreamsOptions,
  type StreamStep,
  type StreamsSubscription,
  type StreamSubscriber,
} from './stream-reader.ts';
export { backoffCeilingMs, backoffDelayMs, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
export { decodeJwtExpiryMs, tokenRefreshDelayMs, type TokenProvider } from './token.ts';
export {
  probeGateway,
  rankGateways,
  selectGateway,
  type GatewayProbeOptions,
  type GatewayRtt,
} from './gateway-select.ts';
export {
  normalizeGatewayUrl,
  WebSocketTransport,
  type ClientTransport,
  type ClientTransportFactory,
  type IncomingMessage,
  type WebSocketConstructor,
  type WebSocketLike,
} from './transport.ts';
export { HttpStreamTransport, httpBaseOf, type FetchLike } from './http-stream-transport.ts';
export { SseTransport } from './sse-transport.ts';
export { CUTS_BEFORE_FALLBACK, TransportFallback, type TransportName } from './transport-fallback.ts';
export { systemClock, type Clock, type Random, type TimerHandle } from '@apix/protocol/clock';
export type {
  ApiXEvent,
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
} from '@apix/protocol/constants';
export {
  ApiXError,
  CloseCode,
  ErrorCode,
  ERRORS,
  closeCodeAllowsReconnect,
  isApiXError,
} from '@apix/protocol/errors';
export { compareEventIds, isEventId, parseEventId } from '@apix/protocol/event-id';
export { parseChannel } from '@apix/protocol/channels';
export type { DomainPayloads } from '@apix/protocol/events';
export { E2eCipher, type E2eChannelKeys, type E2eKeyMap, type E2eKeyMaterial } from './e2e.ts';

// The earlier spelling, kept for applications written against it: one spelling (ApiX, as the seed's
// ApiXConnection and ApiXEvent) from 0.1.
/** @deprecated use ApiXClient */
export { ApiXClient as ApixClient } from './client.ts';
/** @deprecated use ApiXClientOptions */
export type { ApiXClientOptions as ApixClientOptions } from './options.ts';
/** @deprecated use ApiXEvent */
export type { ApiXEvent as ApixEvent } from './types.ts';
/** @deprecated use ApiXError and isApiXError */
export { ApiXError as ApixError, isApiXError as isApixError } from '@apix/protocol/errors';
