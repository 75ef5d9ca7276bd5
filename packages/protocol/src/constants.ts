/** The seed's enums, as const objects so that they serve as Zod enums, TS types and runtime values. */

export const ClientType = {
  WEB_APP: 'WEB_APP',
  MOBILE_APP: 'MOBILE_APP',
  SDK_WIDGET: 'SDK_WIDGET',
  API_CLIENT: 'API_CLIENT',
  INTERNAL_SERVICE: 'INTERNAL_SERVICE',
} as const;
export type ClientType = (typeof ClientType)[keyof typeof ClientType];

export const ConnectionStatus = {
  CONNECTED: 'CONNECTED',
  DISCONNECTED: 'DISCONNECTED',
  RECONNECTING: 'RECONNECTING',
  SUSPENDED: 'SUSPENDED',
} as const;
export type ConnectionStatus = (typeof ConnectionStatus)[keyof typeof ConnectionStatus];

export const ChannelType = {
  AGENT_EVENTS: 'AGENT_EVENTS',
  TOOL_EVENTS: 'TOOL_EVENTS',
  WORKFLOW_EVENTS: 'WORKFLOW_EVENTS',
  PROVIDER_EVENTS: 'PROVIDER_EVENTS',
  SYSTEM_EVENTS: 'SYSTEM_EVENTS',
  PRIVATE_USER: 'PRIVATE_USER',
  ORGANIZATION: 'ORGANIZATION',
  /** Extension of the seed: `room:<id>`, a collaborative room inside an organization. */
  ROOM: 'ROOM',
} as const;
export type ChannelType = (typeof ChannelType)[keyof typeof ChannelType];

/** Frame types the server owns; a client can never publish an event of these types. */
export const CONTROL_TYPES = [
  'connect',
  'subscribe',
  'unsubscribe',
  'ack',
  'auth.refresh',
  'auth.refreshed',
  'heartbeat.ping',
  'heartbeat.pong',
  'connection.established',
  'connection.error',
  'connection.disconnected',
  'subscription.added',
  'subscription.removed',
  'message.queued',
  'message.sent',
  'message.failed',
  'reconnection.attempt',
  'presence.join',
  'presence.leave',
  'qos',
  // RPC (docs/protocol.md §12)
  'rpc',
  'rpc.register',
  'rpc.registered',
  'rpc.request',
  'rpc.response',
  'rpc.result',
  'rpc.error',
] as const;
export type ControlType = (typeof CONTROL_TYPES)[number];
const controlTypeSet: ReadonlySet<string> = new Set(CONTROL_TYPES);
export function isControlType(type: string): boolean {
  return controlTypeSet.has(type);
}

/**
 * Stream frame types (docs/protocol.md §11): reserved like the control types, so a plain publish can never
 * use them; a client sends them as stream frames (`stream.start`, `stream.append`, `stream.end`,
 * `stream.cancel`), the server sends them to subscribers (and `stream.cancel` to the publisher).
 */
export const STREAM_TYPES = [
  'stream.start',
  'stream.append',
  'stream.snapshot',
  'stream.end',
  'stream.cancel',
] as const;
export type StreamType = (typeof STREAM_TYPES)[number];
const streamTypeSet: ReadonlySet<string> = new Set(STREAM_TYPES);
export function isStreamType(type: string): type is StreamType {
  return streamTypeSet.has(type);
}
/** A stream id: unique among the channel's streams. */
export const STREAM_ID_RE_SOURCE = '^[A-Za-z0-9_-]{1,64}$';
/** How a stream ended (`stream.end` status). */
export const STREAM_END_STATUSES = ['complete', 'cancelled', 'error'] as const;
export type StreamEndStatus = (typeof STREAM_END_STATUSES)[number];

/** The seed's domain event types. Any other `[a-z][a-z0-9_.]{0,63}` type is also publishable. */
export const DOMAIN_EVENT_TYPES = [
  'tool_call_start',
  'tool_call_result',
  'tool_call_error',
  'agent_status_update',
  'workflow_state_change',
  'provider_health_update',
  'system_notification',
] as const;
export type DomainEventType = (typeof DOMAIN_EVENT_TYPES)[number];

export const PROTOCOL_VERSION = '1';
export const WS_SUBPROTOCOL = 'apix.v1.json';
/** One MessagePack map per binary frame, same envelope; `payload` may hold binary values (section 14). */
export const WS_SUBPROTOCOL_MSGPACK = 'apix.v1.msgpack';
/**
 * How a binary value travels where the envelope is JSON (history, JSON subscribers, webhooks): an object
 * whose only member is this key, with the bytes in base64. A MessagePack subscriber gets the bytes back.
 */
export const BINARY_JSON_KEY = '$binary';
export const WS_PATH = '/v1/ws';

/** Event types a client may publish. */
export const EVENT_TYPE_RE_SOURCE = '^[a-z][a-z0-9_.]{0,63}$';
export const EVENT_TYPE_RE = new RegExp(EVENT_TYPE_RE_SOURCE);
