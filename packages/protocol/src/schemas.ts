/**
 * Zod contracts of the wire protocol (docs/protocol.md §2-4): the seed's schemas, then every frame in each
 * direction. The single source for server validation, the SDK's types and the JSON Schema export.
 */
import { z } from 'zod';
import {
  ChannelType,
  ClientType,
  ConnectionStatus,
  EVENT_TYPE_RE_SOURCE,
  STREAM_END_STATUSES,
  STREAM_ID_RE_SOURCE,
} from './constants.ts';
import { ErrorCode } from './errors.ts';

export const ClientTypeSchema = z.enum(ClientType);
export const ConnectionStatusSchema = z.enum(ConnectionStatus);
export const ChannelTypeSchema = z.enum(ChannelType);

// ---- The seed's schemas (ApiXConnectionSchema etc.), with the extensions docs/protocol.md adds ----

// Names longer than 200 pass the frame schema so that they are denied one by one (parseChannel says why).
const channelName = z.string().min(1).max(512);
const eventId = z.string().min(1).max(64);
const correlationId = z.string().max(200);

/** `metadata` of an envelope: the known keys typed, unknown keys kept. */
export const EnvelopeMetadataSchema = z.looseObject({
  timestamp: z.number().optional(),
  version: z.string().max(16).optional(),
  correlation_id: correlationId.optional(),
  retryCount: z.number().int().nonnegative().optional(),
  /** Extension: a publish carrying the same key within the idempotency window yields the same event. */
  idempotency_key: z.string().min(1).max(200).optional(),
});
export type EnvelopeMetadata = z.infer<typeof EnvelopeMetadataSchema>;

/** The seed's ApiXEventSchema, extended by docs/protocol.md §2 (`id`, optional `channel`, strict top level). */
export const ApiXEventSchema = z.strictObject({
  type: z.string().min(1).max(64),
  channel: channelName.optional(),
  payload: z.unknown().optional(),
  id: eventId.optional(),
  metadata: EnvelopeMetadataSchema.optional(),
});
export type ApiXEvent = z.infer<typeof ApiXEventSchema>;

export const ReplaySchema = z.strictObject({ last: z.number().int().min(1).max(10_000) });

export const ResumeSchema = z.strictObject({
  lastEventIds: z.record(channelName, eventId),
  /**
   * Extension: channels the client has no position on (a reloaded page resuming its session) and the
   * replay it wants there, instead of the position the session kept for its previous connection.
   */
  replay: z.record(channelName, ReplaySchema).optional(),
});

/** The seed's ApiXConnectionSchema, plus `resume`. */
export const ApiXConnectionSchema = z.strictObject({
  sessionId: z.string().min(1).max(128),
  clientType: ClientTypeSchema,
  authentication: z.strictObject({
    token: z.string().min(1).max(16_384),
    organizationId: z.string().max(64).optional(),
  }),
  subscriptions: z.array(channelName).max(1000),
  metadata: z.record(z.string(), z.unknown()).optional(),
  resume: ResumeSchema.optional(),
});
export type ApiXConnection = z.infer<typeof ApiXConnectionSchema>;

/** The seed's ApiXSubscriptionSchema, plus `since` and `replay`. */
export const ApiXSubscriptionSchema = z.strictObject({
  channels: z.array(channelName).min(1).max(1000),
  filters: z.record(z.string(), z.unknown()).optional(),
  acknowledgment: z.boolean().default(false),
  since: z.record(channelName, eventId).optional(),
  replay: ReplaySchema.optional(),
});
export type ApiXSubscription = z.infer<typeof ApiXSubscriptionSchema>;

// ---- Client -> server payloads ----

export const UnsubscribePayloadSchema = z.strictObject({ channels: z.array(channelName).min(1).max(1000) });
export const AckPayloadSchema = z.strictObject({
  channel: channelName,
  ids: z.array(eventId).min(1).max(1000),
});
export const PingPayloadSchema = z.strictObject({ ts: z.number().optional() });
export const PongPayloadSchema = z.strictObject({ ts: z.number() });
export const AuthRefreshPayloadSchema = z.strictObject({ token: z.string().min(1).max(16_384) });

function clientFrame<T extends string, P extends z.ZodType>(type: T, payload: P) {
  return z.strictObject({
    type: z.literal(type),
    payload,
    metadata: EnvelopeMetadataSchema.optional(),
  });
}

export const ConnectFrameSchema = clientFrame('connect', ApiXConnectionSchema);
export const SubscribeFrameSchema = clientFrame('subscribe', ApiXSubscriptionSchema);
export const UnsubscribeFrameSchema = clientFrame('unsubscribe', UnsubscribePayloadSchema);
export const AckFrameSchema = clientFrame('ack', AckPayloadSchema);
export const ClientPingFrameSchema = z.strictObject({
  type: z.literal('heartbeat.ping'),
  payload: PingPayloadSchema.optional(),
  metadata: EnvelopeMetadataSchema.optional(),
});
export const ClientPongFrameSchema = clientFrame('heartbeat.pong', PongPayloadSchema);
export const AuthRefreshFrameSchema = clientFrame('auth.refresh', AuthRefreshPayloadSchema);

// ---- RPC (docs/protocol.md §12) ----

/** An RPC method name: `[a-z][a-z0-9_.]{0,63}`. */
export const RpcMethodNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_.]{0,63}$/, 'method must match [a-z][a-z0-9_.]{0,63}');
export const RpcRegisterPayloadSchema = z.strictObject({
  methods: z
    .array(
      z.strictObject({
        name: RpcMethodNameSchema,
        roles: z.array(z.string().min(1).max(64)).max(32).optional(),
      }),
    )
    .min(1)
    .max(256),
});
export const RpcCallPayloadSchema = z.strictObject({
  method: RpcMethodNameSchema,
  payload: z.unknown().optional(),
  timeoutMs: z.number().int().min(1).max(600_000).optional(),
});
/** An answer's error: a code of the registry (errors.ts) and a message. */
export const RpcErrorSchema = z.strictObject({ code: z.enum(ErrorCode), message: z.string().max(1000) });
export const RpcResponsePayloadSchema = z.strictObject({
  requestId: z.string().min(1).max(128),
  result: z.unknown().optional(),
  error: RpcErrorSchema.optional(),
});
export const RpcRegisterFrameSchema = clientFrame('rpc.register', RpcRegisterPayloadSchema);
export const RpcCallFrameSchema = clientFrame('rpc', RpcCallPayloadSchema);
export const RpcResponseFrameSchema = clientFrame('rpc.response', RpcResponsePayloadSchema);

/** A publish: any non-control event type, with a channel. */
export const PublishFrameSchema = z.strictObject({
  type: z.string().regex(new RegExp(EVENT_TYPE_RE_SOURCE)),
  channel: channelName,
  payload: z.unknown().optional(),
  metadata: EnvelopeMetadataSchema.optional(),
});

// ---- Streams (docs/protocol.md §11): client -> server ----

const streamId = z.string().regex(new RegExp(STREAM_ID_RE_SOURCE));
const eventType = z.string().regex(new RegExp(EVENT_TYPE_RE_SOURCE));
export const StreamEndStatusSchema = z.enum(STREAM_END_STATUSES);
export const StreamErrorSchema = z.strictObject({
  code: z.string().min(1).max(64),
  message: z.string().max(1000),
});

function streamFrame<T extends string, P extends z.ZodType>(type: T, payload: P) {
  return z.strictObject({
    type: z.literal(type),
    channel: channelName,
    payload,
    metadata: EnvelopeMetadataSchema.optional(),
  });
}

/** Opens a stream; answered `message.sent` `{id, channel, streamId, seq}` (seq > 0: a resumed stream). */
export const StreamStartFrameSchema = streamFrame(
  'stream.start',
  z.strictObject({ streamId, eventType, data: z.unknown().optional() }),
);
/** One piece of the stream's text; not answered unless refused (`message.failed`). */
export const StreamAppendFrameSchema = streamFrame(
  'stream.append',
  z.strictObject({ streamId, text: z.string() }),
);
/** Ends the stream; answered `message.sent` `{id, channel, streamId, seq}` (`id`: the compacted event's). */
export const StreamEndFrameSchema = streamFrame(
  'stream.end',
  z.strictObject({
    streamId,
    status: StreamEndStatusSchema,
    data: z.unknown().optional(),
    error: StreamErrorSchema.optional(),
  }),
);
/** Asks the stream's publisher to stop (it decides); `channel` may be repeated in the payload. */
export const StreamCancelFrameSchema = streamFrame(
  'stream.cancel',
  z.strictObject({
    streamId,
    channel: channelName.optional(),
    reason: z.string().max(500).optional(),
  }),
);
export const ClientStreamFrameSchema = z.discriminatedUnion('type', [
  StreamStartFrameSchema,
  StreamAppendFrameSchema,
  StreamEndFrameSchema,
  StreamCancelFrameSchema,
]);
export type ClientStreamFrame = z.infer<typeof ClientStreamFrameSchema>;
export const CLIENT_STREAM_SCHEMAS = {
  'stream.start': StreamStartFrameSchema,
  'stream.append': StreamAppendFrameSchema,
  'stream.end': StreamEndFrameSchema,
  'stream.cancel': StreamCancelFrameSchema,
} as const;

export const ClientControlFrameSchema = z.discriminatedUnion('type', [
  ConnectFrameSchema,
  SubscribeFrameSchema,
  UnsubscribeFrameSchema,
  AckFrameSchema,
  ClientPingFrameSchema,
  ClientPongFrameSchema,
  AuthRefreshFrameSchema,
  RpcRegisterFrameSchema,
  RpcCallFrameSchema,
  RpcResponseFrameSchema,
]);
export type ClientControlFrame = z.infer<typeof ClientControlFrameSchema>;
export type PublishFrame = z.infer<typeof PublishFrameSchema>;
export type ClientFrame = ClientControlFrame | PublishFrame;

export const CLIENT_CONTROL_SCHEMAS = {
  connect: ConnectFrameSchema,
  subscribe: SubscribeFrameSchema,
  unsubscribe: UnsubscribeFrameSchema,
  ack: AckFrameSchema,
  'heartbeat.ping': ClientPingFrameSchema,
  'heartbeat.pong': ClientPongFrameSchema,
  'auth.refresh': AuthRefreshFrameSchema,
  'rpc.register': RpcRegisterFrameSchema,
  rpc: RpcCallFrameSchema,
  'rpc.response': RpcResponseFrameSchema,
} as const;

// ---- Server -> client frames ----

/** A member of a room (`presence.join` / `presence.leave` event payloads, and `subscription.added`). */
export const PresenceMemberSchema = z.object({
  userId: z.string(),
  clientId: z.string(),
  connectionId: z.string(),
  nodeId: z.string().optional(),
  info: z.record(z.string(), z.unknown()).optional(),
});

export const ErrorCodeSchema = z.enum(ErrorCode);
export const DenialSchema = z.strictObject({
  channel: z.string(),
  code: ErrorCodeSchema,
  message: z.string(),
  /** With `RATE_LIMITED`: when to try again. */
  retryAfterMs: z.number().optional(),
});
export type Denial = z.infer<typeof DenialSchema>;

const serverMetadata = z.looseObject({
  timestamp: z.number(),
  version: z.string(),
  correlation_id: correlationId.optional(),
  retryCount: z.number().int().optional(),
});

function serverFrame<T extends string, P extends z.ZodType>(type: T, payload: P) {
  return z.strictObject({ type: z.literal(type), payload, metadata: serverMetadata });
}

export const ConnectionEstablishedSchema = serverFrame(
  'connection.established',
  z.object({
    connectionId: z.string(),
    sessionId: z.string(),
    resumed: z.boolean(),
    heartbeatIntervalMs: z.number(),
    subscriptions: z.array(z.string()),
    denied: z.array(DenialSchema),
    /** Extension: per-channel recovery outcome of `resume.lastEventIds` and restored subscriptions. */
    recovered: z.record(z.string(), z.boolean()).optional(),
    userId: z.string().optional(),
    organizationId: z.string().optional(),
    expiresAt: z.number().optional(),
    /** HTTP streaming and SSE (§14): names the stream in `POST /v1/frames` (`X-Apix-Session-Token`). */
    sessionToken: z.string().optional(),
    /** Extension: what the backend's connect proxy gave the connection (`result.data`, docs/backend.md). */
    data: z.unknown().optional(),
  }),
);
export const ConnectionErrorSchema = serverFrame(
  'connection.error',
  z.object({
    code: ErrorCodeSchema,
    message: z.string(),
    fatal: z.boolean(),
    retryAfterMs: z.number().optional(),
    channel: z.string().optional(),
  }),
);
export const ConnectionDisconnectedSchema = serverFrame(
  'connection.disconnected',
  z.object({
    code: z.string(),
    reason: z.string(),
    reconnect: z.boolean(),
    /** HTTP streaming and SSE (§14): the final frame of a stream carries the WebSocket close code it stands for. */
    closeCode: z.number().int().optional(),
  }),
);
export const SubscriptionAddedSchema = serverFrame(
  'subscription.added',
  z.object({
    channels: z.array(
      z.object({
        channel: z.string(),
        recovered: z.boolean(),
        /** Extension: for `room:` channels, the room's members (see `presence.join` / `presence.leave`). */
        presence: z.array(PresenceMemberSchema).optional(),
      }),
    ),
    denied: z.array(DenialSchema),
  }),
);
export const SubscriptionRemovedSchema = serverFrame(
  'subscription.removed',
  z.object({ channels: z.array(z.string()), reason: z.string().optional() }),
);
export const ServerPingSchema = serverFrame('heartbeat.ping', z.object({ ts: z.number() }));
export const ServerPongSchema = serverFrame(
  'heartbeat.pong',
  z.object({ ts: z.number(), serverTime: z.number() }),
);
export const AuthRefreshedSchema = serverFrame('auth.refreshed', z.object({ expiresAt: z.number() }));
export const MessageSentSchema = serverFrame(
  'message.sent',
  z.object({
    id: z.string(),
    channel: z.string().optional(),
    /** Streams (§11): the answer to `stream.start` / `stream.end`. */
    streamId: z.string().optional(),
    /** Streams: the last accepted append (`stream.start` of a stream resumed by its publisher: where to go on). */
    seq: z.number().int().min(0).optional(),
  }),
);
export const MessageQueuedSchema = serverFrame(
  'message.queued',
  z.object({ id: z.string(), channel: z.string().optional() }),
);
export const MessageFailedSchema = serverFrame(
  'message.failed',
  z.object({
    code: ErrorCodeSchema,
    message: z.string(),
    id: z.string().optional(),
    channel: z.string().optional(),
    retryAfterMs: z.number().optional(),
  }),
);
/**
 * Extension: the connection's quality of service changed. `degraded`: the client reads too slowly (or
 * answers heartbeats too late); on coalescible channels it now gets only the latest event per key.
 * `normal`: back to every event; `coalesced` counts the events replaced by a later one meanwhile (still in
 * the channels' history).
 */
export const QosSchema = serverFrame(
  'qos',
  z.object({
    state: z.enum(['degraded', 'normal']),
    reason: z.string(),
    coalesced: z.number().int().min(0).optional(),
  }),
);
export const RpcRegisteredSchema = serverFrame(
  'rpc.registered',
  z.object({ methods: z.array(z.object({ name: z.string(), roles: z.array(z.string()).optional() })) }),
);
/** Who called: what a service is told of its caller. */
export const RpcCallerSchema = z.object({
  userId: z.string(),
  organizationId: z.string(),
  roles: z.array(z.string()),
  clientType: ClientTypeSchema,
  connectionId: z.string(),
});
export type RpcCaller = z.infer<typeof RpcCallerSchema>;
export const RpcRequestSchema = serverFrame(
  'rpc.request',
  z.object({ requestId: z.string(), method: z.string(), payload: z.unknown(), caller: RpcCallerSchema }),
);
export const RpcResultSchema = serverFrame('rpc.result', z.object({ result: z.unknown() }));
export const RpcErrorFrameSchema = serverFrame(
  'rpc.error',
  z.object({ code: ErrorCodeSchema, message: z.string() }),
);
/** A channel event as delivered to subscribers. */
export const ChannelEventSchema = z.strictObject({
  type: z.string().regex(new RegExp(EVENT_TYPE_RE_SOURCE)),
  channel: z.string(),
  id: eventId,
  payload: z.unknown(),
  metadata: serverMetadata,
});
export type ChannelEvent = z.infer<typeof ChannelEventSchema>;

/**
 * A room's `presence.join` / `presence.leave` (extension): live only, so without an `id`; the member
 * without its `nodeId` (and, on a leave, without `info`).
 */
function presenceEvent<T extends string>(type: T) {
  return z.strictObject({
    type: z.literal(type),
    channel: z.string(),
    payload: PresenceMemberSchema.omit({ nodeId: true }),
    metadata: serverMetadata,
  });
}
export const PresenceJoinSchema = presenceEvent('presence.join');
export const PresenceLeaveSchema = presenceEvent('presence.leave');

// ---- Streams (docs/protocol.md §11): server -> subscriber (and `stream.cancel` to the publisher) ----

function streamEvent<T extends string, P extends z.ZodType>(type: T, payload: P) {
  return z.strictObject({
    type: z.literal(type),
    channel: z.string(),
    id: eventId,
    payload,
    metadata: serverMetadata,
  });
}
export const StreamStartEventSchema = streamEvent(
  'stream.start',
  z.object({ streamId: z.string(), eventType: z.string(), data: z.unknown() }),
);
export const StreamAppendEventSchema = streamEvent(
  'stream.append',
  z.object({
    streamId: z.string(),
    fromSeq: z.number().int().min(1),
    seq: z.number().int().min(1),
    text: z.string(),
  }),
);
export const StreamSnapshotEventSchema = streamEvent(
  'stream.snapshot',
  z.object({
    streamId: z.string(),
    eventType: z.string(),
    data: z.unknown(),
    text: z.string(),
    seq: z.number().int().min(0),
    status: z.literal('streaming'),
  }),
);
export const StreamEndEventSchema = streamEvent(
  'stream.end',
  z.object({
    streamId: z.string(),
    seq: z.number().int().min(0),
    status: StreamEndStatusSchema,
    data: z.unknown().optional(),
    error: StreamErrorSchema.optional(),
  }),
);
/** To the publishing connection: a subscriber asked to stop the stream. */
export const StreamCancelEventSchema = z.strictObject({
  type: z.literal('stream.cancel'),
  channel: z.string(),
  payload: z.object({
    channel: z.string(),
    streamId: z.string(),
    reason: z.string(),
    by: z.string(),
  }),
  metadata: serverMetadata,
});
export const ServerStreamFrameSchema = z.discriminatedUnion('type', [
  StreamStartEventSchema,
  StreamAppendEventSchema,
  StreamSnapshotEventSchema,
  StreamEndEventSchema,
  StreamCancelEventSchema,
]);
export type ServerStreamFrame = z.infer<typeof ServerStreamFrameSchema>;
/** The compacted event a stream leaves in the channel's history: `{type: eventType, id, payload}`. */
export const CompactedStreamPayloadSchema = z.looseObject({
  streamId: z.string(),
  text: z.string(),
  seq: z.number().int().min(0),
  status: StreamEndStatusSchema,
});

export const ServerControlFrameSchema = z.discriminatedUnion('type', [
  ConnectionEstablishedSchema,
  ConnectionErrorSchema,
  ConnectionDisconnectedSchema,
  SubscriptionAddedSchema,
  SubscriptionRemovedSchema,
  ServerPingSchema,
  ServerPongSchema,
  AuthRefreshedSchema,
  MessageSentSchema,
  MessageQueuedSchema,
  MessageFailedSchema,
  QosSchema,
  RpcRegisteredSchema,
  RpcRequestSchema,
  RpcResultSchema,
  RpcErrorFrameSchema,
]);
export type ServerControlFrame = z.infer<typeof ServerControlFrameSchema>;
export type ServerFrame = ServerControlFrame | ChannelEvent;
export type ServerFrameOf<T extends ServerControlFrame['type']> = Extract<ServerControlFrame, { type: T }>;

// ---- HTTP API (docs/protocol.md §9) ----

export const HttpPublishSchema = z.strictObject({
  channel: channelName,
  type: z.string().regex(new RegExp(EVENT_TYPE_RE_SOURCE)),
  payload: z.unknown().optional(),
  metadata: EnvelopeMetadataSchema.optional(),
});
export type HttpPublish = z.infer<typeof HttpPublishSchema>;

// ---- Backend calls (docs/backend.md): what the platform's backend answers ----

/**
 * The answer to a proxy call (connect, subscribe, publish) or to an RPC HTTP call: `result` (allow; for a
 * proxy call, with optional changes) or `error` (refusal, sent on to the client). `code` is free text here:
 * the gateway maps a code outside the registry to `FORBIDDEN`.
 */
export const BackendAnswerSchema = z.union([
  z.looseObject({ result: z.unknown() }).refine((a) => !('error' in a) || a.error == null, {
    message: 'result and error together',
  }),
  z.looseObject({
    error: z.looseObject({ code: z.string().min(1).max(64), message: z.string().max(1000).optional() }),
  }),
]);
export type BackendAnswer = z.infer<typeof BackendAnswerSchema>;

/** The changes a proxy call's `result` may make (unknown members are ignored). */
export const ProxyAllowSchema = z.looseObject({
  /** connect: channels the connection is subscribed to as well (the subscribe proxy is not asked for them). */
  channels: z.array(channelName).max(1000).optional(),
  /** connect: sent to the client in `connection.established.data`; publish: replaces the payload. */
  data: z.unknown().optional(),
  /** connect: when the connection expires (ms since epoch), if before its token does. */
  expiresAt: z.number().int().positive().optional(),
});
export type ProxyAllow = z.infer<typeof ProxyAllowSchema>;

// ---- Backend integration (PROTOCOL-1.1 section 13) ----

/** The webhook event types an endpoint may select. */
export const WEBHOOK_EVENT_TYPES = [
  'connection.opened',
  'connection.closed',
  'subscription.added',
  'subscription.removed',
  'channel.occupied',
  'channel.vacated',
  'presence.join',
  'presence.leave',
  'stream.ended',
  'message.failed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** `POST /v1/admin/webhooks`. */
export const WebhookCreateSchema = z.strictObject({
  url: z.string().min(1).max(2048),
  events: z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1).max(WEBHOOK_EVENT_TYPES.length),
});
export type WebhookCreate = z.infer<typeof WebhookCreateSchema>;

/** `POST /v1/admin/subscriptions`: a user's subscriptions changed by the platform's backend. */
export const ServerSubscriptionSchema = z.strictObject({
  userId: z.string().min(1).max(200),
  channels: z.array(channelName).min(1).max(100),
  action: z.enum(['subscribe', 'unsubscribe']),
});
export type ServerSubscription = z.infer<typeof ServerSubscriptionSchema>;
