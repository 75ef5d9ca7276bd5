/**
 * Generates docs/asyncapi.json (AsyncAPI 3.0) from the protocol's Zod contracts, so that the machine-readable
 * description cannot drift from what the gateway validates. tests/unit/protocol/asyncapi.test.ts regenerates
 * it in memory and fails when the committed file differs.
 *
 * The document describes the GATEWAY: it `receive`s client frames (with their replies) and `send`s server
 * frames, all on the single WebSocket channel /v1/ws.
 *
 * Usage: node --import tsx scripts/gen-asyncapi.ts   (writes docs/asyncapi.json)
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  DOMAIN_EVENT_TYPES,
  PROTOCOL_VERSION,
  WS_PATH,
  WS_SUBPROTOCOL,
  WS_SUBPROTOCOL_MSGPACK,
} from '@apix/protocol/constants';
import { DOMAIN_PAYLOAD_SCHEMAS } from '@apix/protocol/events';
import * as S from '@apix/protocol/schemas';

/** The content type of the MessagePack variant of every message (subprotocol apix.v1.msgpack). */
const MSGPACK_CONTENT_TYPE = 'application/vnd.msgpack';

export const ASYNCAPI_PATH = fileURLToPath(new URL('../docs/asyncapi.json', import.meta.url));

const meta = { timestamp: 1_760_000_000_000, version: PROTOCOL_VERSION };
const withCid = { ...meta, correlation_id: 'c-1' };

/** One message of the document: the frame's Zod schema, who sends it, and an example (checked by the test). */
export interface FrameSpec {
  /** Key in components.messages (unique; the wire `type` is in the schema). */
  readonly key: string;
  readonly direction: 'client' | 'server';
  readonly title: string;
  readonly summary: string;
  readonly schema: z.ZodType;
  readonly example: unknown;
  /** For client frames: the keys of the server messages that answer it. */
  readonly replies?: readonly string[];
}

const publishOf = (type: string, payload: z.ZodType) =>
  S.PublishFrameSchema.extend({ type: z.literal(type), payload });
const eventOf = (type: string, payload: z.ZodType) =>
  S.ChannelEventSchema.extend({ type: z.literal(type), payload });

const DOMAIN_EXAMPLES: Record<(typeof DOMAIN_EVENT_TYPES)[number], unknown> = {
  tool_call_start: { toolCallId: 'call_1', toolName: 'web_search', agentId: 'a1', input: { q: 'apix' } },
  tool_call_result: { toolCallId: 'call_1', toolName: 'web_search', output: { hits: 3 }, durationMs: 412 },
  tool_call_error: {
    toolCallId: 'call_1',
    error: { message: 'timeout', code: 'ETIMEDOUT' },
    retryable: true,
  },
  agent_status_update: { agentId: 'a1', status: 'thinking', message: 'planning' },
  workflow_state_change: { workflowId: 'w1', runId: 'r7', from: 'review', to: 'approved', step: 'legal' },
  provider_health_update: { providerId: 'openai', status: 'degraded', latencyMs: 1800, errorRate: 0.04 },
  system_notification: { level: 'warning', message: 'Maintenance at 02:00 UTC', title: 'Maintenance' },
};

const CHANNEL_OF: Record<(typeof DOMAIN_EVENT_TYPES)[number], string> = {
  tool_call_start: 'tool:web_search',
  tool_call_result: 'tool:web_search',
  tool_call_error: 'tool:web_search',
  agent_status_update: 'agent:a1',
  workflow_state_change: 'workflow:w1',
  provider_health_update: 'provider:openai',
  system_notification: 'system:announcements',
};

const PUBLISH_REPLIES = ['messageSent', 'messageQueued', 'messageFailed'] as const;

const STREAM_CH = 'agent:a1';
const STREAM_SID = 's-1760000000000-0';
/** Streams (docs/protocol.md §13): the publisher's frames, then what subscribers (and the publisher) get. */
const STREAM_FRAMES: readonly FrameSpec[] = [
  {
    key: 'streamStart',
    direction: 'client',
    title: 'stream.start (extension)',
    summary:
      'Opens a stream (or resumes one its user left open): answered with its id and last accepted seq.',
    schema: S.StreamStartFrameSchema,
    replies: PUBLISH_REPLIES,
    example: {
      type: 'stream.start',
      channel: STREAM_CH,
      payload: { streamId: 'answer-1', eventType: 'agent_message', data: { agentId: 'a1' } },
      metadata: { correlation_id: 'c-7' },
    },
  },
  {
    key: 'streamAppend',
    direction: 'client',
    title: 'stream.append (extension)',
    summary: 'Appends a piece of text to an open stream; no reply unless refused.',
    schema: S.StreamAppendFrameSchema,
    replies: ['messageFailed'],
    example: { type: 'stream.append', channel: STREAM_CH, payload: { streamId: 'answer-1', text: 'Hel' } },
  },
  {
    key: 'streamEnd',
    direction: 'client',
    title: 'stream.end (extension)',
    summary: 'Ends a stream: its compacted event goes to the history; answered with that event id.',
    schema: S.StreamEndFrameSchema,
    replies: PUBLISH_REPLIES,
    example: {
      type: 'stream.end',
      channel: STREAM_CH,
      payload: { streamId: 'answer-1', status: 'complete' },
      metadata: { correlation_id: 'c-8' },
    },
  },
  {
    key: 'streamCancel',
    direction: 'client',
    title: 'stream.cancel (extension)',
    summary: "Asks a stream's publisher to stop it (a subscriber allowed to publish on the channel).",
    schema: S.StreamCancelFrameSchema,
    replies: ['messageFailed'],
    example: {
      type: 'stream.cancel',
      channel: STREAM_CH,
      payload: { streamId: 'answer-1', reason: 'user pressed stop' },
    },
  },
  {
    key: 'streamStartEvent',
    direction: 'server',
    title: 'stream.start to subscribers (extension)',
    summary: 'A stream opened on a subscribed channel.',
    schema: S.StreamStartEventSchema,
    example: {
      type: 'stream.start',
      channel: STREAM_CH,
      id: STREAM_SID,
      payload: { streamId: 'answer-1', eventType: 'agent_message', data: { agentId: 'a1' } },
      metadata: meta,
    },
  },
  {
    key: 'streamAppendEvent',
    direction: 'server',
    title: 'stream.append to subscribers (extension)',
    summary: 'The appends fromSeq..seq of a stream, joined into one text.',
    schema: S.StreamAppendEventSchema,
    example: {
      type: 'stream.append',
      channel: STREAM_CH,
      id: STREAM_SID,
      payload: { streamId: 'answer-1', fromSeq: 2, seq: 3, text: 'lo world' },
      metadata: meta,
    },
  },
  {
    key: 'streamSnapshot',
    direction: 'server',
    title: 'stream.snapshot (extension)',
    summary: 'Everything of an open stream up to seq, to a subscriber that arrives while it is open.',
    schema: S.StreamSnapshotEventSchema,
    example: {
      type: 'stream.snapshot',
      channel: STREAM_CH,
      id: STREAM_SID,
      payload: {
        streamId: 'answer-1',
        eventType: 'agent_message',
        data: { agentId: 'a1' },
        text: 'Hello world',
        seq: 3,
        status: 'streaming',
      },
      metadata: meta,
    },
  },
  {
    key: 'streamEndEvent',
    direction: 'server',
    title: 'stream.end to subscribers (extension)',
    summary: "A stream ended; id is its compacted event's id (a position in the channel).",
    schema: S.StreamEndEventSchema,
    example: {
      type: 'stream.end',
      channel: STREAM_CH,
      id: '1760000000000-7',
      payload: { streamId: 'answer-1', seq: 3, status: 'complete' },
      metadata: meta,
    },
  },
  {
    key: 'streamCancelEvent',
    direction: 'server',
    title: 'stream.cancel to the publisher (extension)',
    summary: 'A subscriber asked to stop the stream; the publisher decides (normally ends it cancelled).',
    schema: S.StreamCancelEventSchema,
    example: {
      type: 'stream.cancel',
      channel: STREAM_CH,
      payload: { channel: STREAM_CH, streamId: 'answer-1', reason: 'user pressed stop', by: 'u-1' },
      metadata: meta,
    },
  },
];

export const FRAMES: readonly FrameSpec[] = [
  // ---- client -> gateway ----
  {
    key: 'connect',
    direction: 'client',
    title: 'connect',
    summary: 'First frame of every connection: authenticates, opens or resumes the session.',
    schema: S.ConnectFrameSchema,
    replies: ['connectionEstablished', 'connectionError'],
    example: {
      type: 'connect',
      payload: {
        sessionId: 's-7f3c',
        clientType: 'WEB_APP',
        authentication: { token: 'eyJhbGciOiJIUzI1NiJ9.e30.sig', organizationId: 'acme' },
        subscriptions: ['org'],
        resume: { lastEventIds: { 'agent:a1': '1760000000000-4' } },
      },
      metadata: { correlation_id: 'c-1' },
    },
  },
  {
    key: 'subscribe',
    direction: 'client',
    title: 'subscribe',
    summary:
      'Subscribes to channels, optionally acknowledged, filtered, replaying from an id or the last n events.',
    schema: S.SubscribeFrameSchema,
    replies: ['subscriptionAdded', 'connectionError'],
    example: {
      type: 'subscribe',
      payload: {
        channels: ['agent:a1'],
        acknowledgment: true,
        filters: { types: ['agent_status_update'], status: 'failed' },
        since: { 'agent:a1': '1760000000000-4' },
      },
      metadata: { correlation_id: 'c-2' },
    },
  },
  {
    key: 'unsubscribe',
    direction: 'client',
    title: 'unsubscribe',
    summary: 'Stops subscriptions.',
    schema: S.UnsubscribeFrameSchema,
    replies: ['subscriptionRemoved'],
    example: { type: 'unsubscribe', payload: { channels: ['agent:a1'] } },
  },
  {
    key: 'ack',
    direction: 'client',
    title: 'ack',
    summary: 'Acknowledges events of an acknowledged subscription. No reply.',
    schema: S.AckFrameSchema,
    example: { type: 'ack', payload: { channel: 'agent:a1', ids: ['1760000000000-5', '1760000000000-6'] } },
  },
  {
    key: 'clientPing',
    direction: 'client',
    title: 'heartbeat.ping (client)',
    summary: "The client's own ping; the gateway answers heartbeat.pong with the same ts.",
    schema: S.ClientPingFrameSchema,
    replies: ['serverPong'],
    example: { type: 'heartbeat.ping', payload: { ts: 1_760_000_000_000 } },
  },
  {
    key: 'clientPong',
    direction: 'client',
    title: 'heartbeat.pong (client)',
    summary: "Answers the gateway's heartbeat.ping with its ts (an RTT sample). No reply.",
    schema: S.ClientPongFrameSchema,
    example: { type: 'heartbeat.pong', payload: { ts: 1_760_000_000_000 } },
  },
  {
    key: 'authRefresh',
    direction: 'client',
    title: 'auth.refresh',
    summary: 'Replaces the token of the connection before it expires (same user and organization).',
    schema: S.AuthRefreshFrameSchema,
    replies: ['authRefreshed', 'connectionError'],
    example: {
      type: 'auth.refresh',
      payload: { token: 'eyJhbGciOiJIUzI1NiJ9.e30.sig2' },
      metadata: { correlation_id: 'c-9' },
    },
  },
  {
    key: 'rpcRegister',
    direction: 'client',
    title: 'rpc.register (v1.1)',
    summary:
      'A service (API key or service role) registers the RPC methods it serves, with the roles a caller needs.',
    schema: S.RpcRegisterFrameSchema,
    replies: ['rpcRegistered', 'rpcError'],
    example: {
      type: 'rpc.register',
      payload: { methods: [{ name: 'tool.approve' }, { name: 'run.cancel', roles: ['admin'] }] },
      metadata: { correlation_id: 'c-10' },
    },
  },
  {
    key: 'rpc',
    direction: 'client',
    title: 'rpc (v1.1)',
    summary:
      'Calls a method served by a registered service (or the HTTP fallback); metadata.correlation_id required.',
    schema: S.RpcCallFrameSchema,
    replies: ['rpcResult', 'rpcError'],
    example: {
      type: 'rpc',
      payload: { method: 'tool.approve', payload: { toolCallId: 'call_1' }, timeoutMs: 5000 },
      metadata: { correlation_id: 'c-11' },
    },
  },
  {
    key: 'rpcResponse',
    direction: 'client',
    title: 'rpc.response (v1.1)',
    summary: "A service's answer to an rpc.request: a result or an error with a registry code.",
    schema: S.RpcResponseFrameSchema,
    example: { type: 'rpc.response', payload: { requestId: 'n1.4.x2', result: { approved: true } } },
  },
  {
    key: 'publish',
    direction: 'client',
    title: 'publish (any event type)',
    summary: 'Publishes an event of any non-control type matching [a-z][a-z0-9_.]{0,63} to a channel.',
    schema: S.PublishFrameSchema,
    replies: PUBLISH_REPLIES,
    example: {
      type: 'note.created',
      channel: 'room:design',
      payload: { text: 'hello' },
      metadata: { correlation_id: 'c-3', idempotency_key: 'note-42' },
    },
  },
  ...STREAM_FRAMES,
  ...DOMAIN_EVENT_TYPES.map((type): FrameSpec => ({
    key: `publish.${type}`,
    direction: 'client',
    title: `publish ${type}`,
    summary: `Publishes ${type}; the payload is checked against its schema.`,
    schema: publishOf(type, DOMAIN_PAYLOAD_SCHEMAS[type]),
    replies: PUBLISH_REPLIES,
    example: {
      type,
      channel: CHANNEL_OF[type],
      payload: DOMAIN_EXAMPLES[type],
      metadata: { correlation_id: 'c-4' },
    },
  })),

  // ---- gateway -> client ----
  {
    key: 'connectionEstablished',
    direction: 'server',
    title: 'connection.established',
    summary:
      'The connection is authenticated; says whether the session was resumed and what it is subscribed to.',
    schema: S.ConnectionEstablishedSchema,
    example: {
      type: 'connection.established',
      payload: {
        connectionId: 'c_01J9',
        sessionId: 's-7f3c',
        resumed: true,
        heartbeatIntervalMs: 25_000,
        subscriptions: ['org', 'agent:a1'],
        denied: [],
        recovered: { 'agent:a1': true },
        userId: 'alice',
        organizationId: 'acme',
        expiresAt: 1_760_003_600_000,
      },
      metadata: withCid,
    },
  },
  {
    key: 'connectionError',
    direction: 'server',
    title: 'connection.error',
    summary:
      'A refused request. fatal:true (before or at connect) is followed by a close; fatal:false keeps the connection.',
    schema: S.ConnectionErrorSchema,
    example: {
      type: 'connection.error',
      payload: {
        code: 'BAD_REQUEST',
        message: 'filters.types must be an array of event types',
        fatal: false,
      },
      metadata: { ...meta, correlation_id: 'c-2' },
    },
  },
  {
    key: 'connectionDisconnected',
    direction: 'server',
    title: 'connection.disconnected',
    summary: 'Sent before a server-initiated close: why, and whether to reconnect.',
    schema: S.ConnectionDisconnectedSchema,
    example: {
      type: 'connection.disconnected',
      payload: { code: 'UNAVAILABLE', reason: 'server shutting down; reconnect', reconnect: true },
      metadata: meta,
    },
  },
  {
    key: 'subscriptionAdded',
    direction: 'server',
    title: 'subscription.added',
    summary: 'Granted channels (recovered:false = events were missed) and denials; replayed events follow.',
    schema: S.SubscriptionAddedSchema,
    example: {
      type: 'subscription.added',
      payload: {
        channels: [{ channel: 'agent:a1', recovered: true }],
        denied: [{ channel: 'user:bob', code: 'FORBIDDEN', message: 'subscribe to user:bob denied' }],
      },
      metadata: { ...meta, correlation_id: 'c-2' },
    },
  },
  {
    key: 'subscriptionRemoved',
    direction: 'server',
    title: 'subscription.removed',
    summary: 'Answers unsubscribe, or tells that the gateway revoked subscriptions (with a reason).',
    schema: S.SubscriptionRemovedSchema,
    example: { type: 'subscription.removed', payload: { channels: ['agent:a1'] }, metadata: meta },
  },
  {
    key: 'serverPing',
    direction: 'server',
    title: 'heartbeat.ping (server)',
    summary: 'Sent every heartbeatIntervalMs; answer heartbeat.pong with the same ts.',
    schema: S.ServerPingSchema,
    example: { type: 'heartbeat.ping', payload: { ts: 1_760_000_000_000 }, metadata: meta },
  },
  {
    key: 'serverPong',
    direction: 'server',
    title: 'heartbeat.pong (server)',
    summary: "Answers the client's heartbeat.ping.",
    schema: S.ServerPongSchema,
    example: {
      type: 'heartbeat.pong',
      payload: { ts: 1_760_000_000_000, serverTime: 1_760_000_000_012 },
      metadata: meta,
    },
  },
  {
    key: 'authRefreshed',
    direction: 'server',
    title: 'auth.refreshed',
    summary: 'The new token is in force until expiresAt (ms since epoch).',
    schema: S.AuthRefreshedSchema,
    example: {
      type: 'auth.refreshed',
      payload: { expiresAt: 1_760_007_200_000 },
      metadata: { ...meta, correlation_id: 'c-9' },
    },
  },
  {
    key: 'qos',
    direction: 'server',
    title: 'qos (extension)',
    summary:
      'The connection was degraded (it reads too slowly: coalescible channels now send only the latest event per key) or is back to normal.',
    schema: S.QosSchema,
    example: {
      type: 'qos',
      payload: { state: 'degraded', reason: 'send buffer 1200000 bytes over 1048576' },
      metadata: meta,
    },
  },
  {
    key: 'presenceJoin',
    direction: 'server',
    title: 'presence.join (extension)',
    summary:
      'A connection joined a room: channel (subscribed, or resumed a session subscribed to it). Live only: no id, never stored, replayed or acknowledged.',
    schema: S.PresenceJoinSchema,
    example: {
      type: 'presence.join',
      channel: 'room:design',
      payload: {
        userId: 'alice',
        clientId: 'tab-1',
        connectionId: 'c-n1a2b3c4-17',
        info: { clientType: 'WEB_APP' },
      },
      metadata: meta,
    },
  },
  {
    key: 'presenceLeave',
    direction: 'server',
    title: 'presence.leave (extension)',
    summary:
      'A member left a room: channel (unsubscribed, its subscription was removed, or its connection left its session). Live only.',
    schema: S.PresenceLeaveSchema,
    example: {
      type: 'presence.leave',
      channel: 'room:design',
      payload: { userId: 'alice', clientId: 'tab-1', connectionId: 'c-n1a2b3c4-17' },
      metadata: meta,
    },
  },
  {
    key: 'rpcRegistered',
    direction: 'server',
    title: 'rpc.registered (v1.1)',
    summary: 'Every method the connection serves now.',
    schema: S.RpcRegisteredSchema,
    example: {
      type: 'rpc.registered',
      payload: { methods: [{ name: 'tool.approve', roles: [] }] },
      metadata: { ...meta, correlation_id: 'c-10' },
    },
  },
  {
    key: 'rpcRequest',
    direction: 'server',
    title: 'rpc.request (v1.1)',
    summary: 'A call for a method this service registered, with its caller; answer with rpc.response.',
    schema: S.RpcRequestSchema,
    example: {
      type: 'rpc.request',
      payload: {
        requestId: 'n1.4.x2',
        method: 'tool.approve',
        payload: { toolCallId: 'call_1' },
        caller: {
          userId: 'alice',
          organizationId: 'acme',
          roles: ['member'],
          clientType: 'WEB_APP',
          connectionId: 'n0-1',
        },
      },
      metadata: meta,
    },
  },
  {
    key: 'rpcResult',
    direction: 'server',
    title: 'rpc.result (v1.1)',
    summary: "The service's result, with the call's correlation id.",
    schema: S.RpcResultSchema,
    example: {
      type: 'rpc.result',
      payload: { result: { approved: true } },
      metadata: { ...meta, correlation_id: 'c-11' },
    },
  },
  {
    key: 'rpcError',
    direction: 'server',
    title: 'rpc.error (v1.1)',
    summary: 'The call failed: UNAVAILABLE, TIMEOUT, FORBIDDEN, RATE_LIMITED, or the service’s own code.',
    schema: S.RpcErrorFrameSchema,
    example: {
      type: 'rpc.error',
      payload: { code: 'TIMEOUT', message: 'no answer within 5000 ms' },
      metadata: { ...meta, correlation_id: 'c-11' },
    },
  },
  {
    key: 'messageSent',
    direction: 'server',
    title: 'message.sent',
    summary: 'The publish was accepted and given this id.',
    schema: S.MessageSentSchema,
    example: {
      type: 'message.sent',
      payload: { id: '1760000000000-7', channel: 'room:design' },
      metadata: { ...meta, correlation_id: 'c-3' },
    },
  },
  {
    key: 'messageQueued',
    direction: 'server',
    title: 'message.queued',
    summary: 'Accepted; the target is offline and the event is held for it.',
    schema: S.MessageQueuedSchema,
    example: {
      type: 'message.queued',
      payload: { id: '1760000000000-8', channel: 'user:bob' },
      metadata: { ...meta, correlation_id: 'c-5' },
    },
  },
  {
    key: 'messageFailed',
    direction: 'server',
    title: 'message.failed',
    summary:
      'The publish was refused, or (with an id, no correlation_id) an event of yours was dead-lettered.',
    schema: S.MessageFailedSchema,
    example: {
      type: 'message.failed',
      payload: {
        code: 'RATE_LIMITED',
        message: 'publish rate exceeded',
        channel: 'room:design',
        retryAfterMs: 800,
      },
      metadata: { ...meta, correlation_id: 'c-6' },
    },
  },
  {
    key: 'channelEvent',
    direction: 'server',
    title: 'channel event (any type)',
    summary: 'An event published to a subscribed channel, with its id; metadata.retryCount on redeliveries.',
    schema: S.ChannelEventSchema,
    example: {
      type: 'note.created',
      channel: 'room:design',
      id: '1760000000000-7',
      payload: { text: 'hello' },
      metadata: { ...meta, retryCount: 1 },
    },
  },
  ...DOMAIN_EVENT_TYPES.map((type): FrameSpec => ({
    key: `event.${type}`,
    direction: 'server',
    title: type,
    summary: `A ${type} event delivered to a subscriber.`,
    schema: eventOf(type, DOMAIN_PAYLOAD_SCHEMAS[type]),
    example: {
      type,
      channel: CHANNEL_OF[type],
      id: '1760000000000-9',
      payload: DOMAIN_EXAMPLES[type],
      metadata: meta,
    },
  })),
];

/** JSON Schema (draft-07, the base of AsyncAPI Schema) of what each side puts on the wire. */
function jsonSchema(spec: FrameSpec): Record<string, unknown> {
  // Client frames are inputs to the gateway's parser (defaults optional); server frames are its outputs.
  const schema = z.toJSONSchema(spec.schema, {
    target: 'draft-7',
    io: spec.direction === 'client' ? 'input' : 'output',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  delete schema.$schema;
  return schema;
}

const schemaName = (key: string): string =>
  key
    .split(/[._]/)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('') + 'Frame';

const operationName = (spec: FrameSpec): string =>
  `${spec.direction === 'client' ? 'receive' : 'send'}${schemaName(spec.key).replace(/Frame$/, '')}`;

export function buildAsyncApi(): Record<string, unknown> {
  const channelRef = { $ref: '#/channels/gateway' };
  const messageRef = (key: string) => ({ $ref: `#/channels/gateway/messages/${key}` });
  const messages: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  const channelMessages: Record<string, unknown> = {};
  const msgpackChannelMessages: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  for (const spec of FRAMES) {
    const name = schemaName(spec.key);
    schemas[name] = jsonSchema(spec);
    messages[spec.key] = {
      name: spec.key,
      title: spec.title,
      summary: spec.summary,
      contentType: 'application/json',
      payload: { $ref: `#/components/schemas/${name}` },
      examples: [{ name: 'example', payload: spec.example }],
    };
    channelMessages[spec.key] = { $ref: `#/components/messages/${spec.key}` };
    // The same envelope in MessagePack (subprotocol apix.v1.msgpack): same schema, binary frames.
    messages[`${spec.key}.msgpack`] = {
      name: spec.key,
      title: `${spec.title} (MessagePack)`,
      summary: spec.summary,
      contentType: MSGPACK_CONTENT_TYPE,
      payload: { $ref: `#/components/schemas/${name}` },
    };
    msgpackChannelMessages[spec.key] = { $ref: `#/components/messages/${spec.key}.msgpack` };
    operations[operationName(spec)] = {
      action: spec.direction === 'client' ? 'receive' : 'send',
      channel: channelRef,
      summary: spec.summary,
      messages: [messageRef(spec.key)],
      ...(spec.replies ? { reply: { channel: channelRef, messages: spec.replies.map(messageRef) } } : {}),
    };
  }
  return {
    asyncapi: '3.0.0',
    id: 'urn:apix:gateway:ws:v1',
    info: {
      title: 'APIX real-time gateway, WebSocket protocol',
      version: PROTOCOL_VERSION,
      description:
        'Generated from packages/protocol/src/schemas.ts and packages/protocol/src/events.ts by scripts/gen-asyncapi.ts; do not edit. ' +
        'Describes the gateway: it receives client frames and sends server frames, in one of two encodings chosen by ' +
        `the WebSocket subprotocol: ${WS_SUBPROTOCOL} (one JSON object per text frame; the channel "gateway") or ` +
        `${WS_SUBPROTOCOL_MSGPACK} (one MessagePack map per binary frame with the same envelope, where payload may ` +
        'hold binary values; the channel "gatewayMsgpack"). A client offering both gets the one it listed first. ' +
        'Where the envelope is JSON, a binary value is {"$binary": "<base64>"}. ' +
        'The prose contract, close codes and error codes are in docs/protocol.md.',
      license: { name: 'MIT' },
    },
    defaultContentType: 'application/json',
    servers: {
      gateway: {
        host: 'localhost:8080',
        protocol: 'ws',
        pathname: WS_PATH,
        description: `Any gateway node (wss in production). Offer the subprotocol ${WS_SUBPROTOCOL}.`,
      },
      gatewayMsgpack: {
        host: 'localhost:8080',
        protocol: 'ws',
        pathname: WS_PATH,
        description: `The same endpoint with the subprotocol ${WS_SUBPROTOCOL_MSGPACK}: MessagePack binary frames.`,
      },
    },
    channels: {
      gateway: {
        address: WS_PATH,
        title: 'APIX WebSocket',
        description:
          'The single WebSocket endpoint; every frame is an envelope {type, channel?, payload, id?, metadata}.',
        servers: [{ $ref: '#/servers/gateway' }],
        messages: channelMessages,
      },
      gatewayMsgpack: {
        address: WS_PATH,
        title: 'APIX WebSocket, MessagePack',
        description:
          `The same endpoint and envelopes as "gateway", negotiated with ${WS_SUBPROTOCOL_MSGPACK}: one ` +
          'MessagePack map per binary frame; payload values may be binary (bin).',
        servers: [{ $ref: '#/servers/gatewayMsgpack' }],
        messages: msgpackChannelMessages,
      },
    },
    operations,
    components: { schemas, messages },
  };
}

/** The file's exact text: 2-space JSON and a final newline. */
export function renderAsyncApi(): string {
  return JSON.stringify(buildAsyncApi(), null, 2) + '\n';
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(ASYNCAPI_PATH, renderAsyncApi());
  console.log(`wrote ${ASYNCAPI_PATH}`);
}
