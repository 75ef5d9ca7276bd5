/**
 * EventRouter: the one way an event enters APIX (WebSocket publish, HTTP publish, internal services).
 * It validates the event, checks the publisher's permission, serializes the event once, and hands it to
 * the broker, which gives it its id, keeps it in history and delivers it to every node's hub.
 */
import {
  ApiXError,
  channelKey,
  checkDomainPayload,
  EVENT_TYPE_RE,
  isControlType,
  isStreamType,
  isE2eMarked,
  isE2ePayload,
  jsonShapeError,
  parseChannel,
} from '@apix/protocol';
import type { ClientType, EnvelopeMetadata, JsonShapeBounds, ParsedChannel } from '@apix/protocol';
import type { Broker, BrokerEvent, HistoryOptions, PublisherRef } from '../broker/broker.ts';
import type { Clock } from '../clock.ts';
import { encodeChannelEvent } from '../gateway/frames.ts';
import type { HookBus, ConnectionInfo } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import { authorize } from '../subscriptions/permissions.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import type { RateLimiter } from '../ratelimit/rate-limiter.ts';
import type { AtRestCipher } from '../crypto/at-rest.ts';
import { sealedFrameText, sealedRecordPayload } from '../crypto/at-rest.ts';
import type { PublishOrder } from './publish-order.ts';
import { publisherIdempotencyKey } from '../tenancy/scope-keys.ts';
import type { Tracing } from '../tracing/tracing.ts';

export interface PublishRequest {
  readonly principal: Principal;
  readonly clientType: ClientType | undefined;
  readonly peer: Peer;
  readonly connection: ConnectionInfo | undefined;
  readonly publisher: PublisherRef | undefined;
  readonly channel: string;
  readonly type: string;
  readonly payload: unknown;
  readonly metadata: EnvelopeMetadata | undefined;
  /** The payload's size limit when not APIX_MAX_MESSAGE_BYTES (a stream's compacted event: its own). */
  readonly maxPayloadBytes?: number | undefined;
  /**
   * False: the shared publish limits (channel, organization) are not asked. A stream's compacted event:
   * its stream was admitted at `stream.start`, and its end must not be refused after the stream ended.
   */
  readonly limited?: false | undefined;
}

export interface PublishResult {
  readonly id: string;
  readonly channel: ParsedChannel;
  readonly key: string;
  /** The same idempotency key was seen within the window: this is the earlier event's id. */
  readonly duplicate: boolean;
}

/** An event of a channel configured durable, handed to the records (batched there, off the hot path). */
export interface DurableRecord {
  readonly channelKey: string;
  readonly eventId: string;
  readonly type: string;
  readonly payload: unknown;
  readonly sessionId?: string | undefined;
  readonly publishedAt: number;
  /** The publisher's custom metadata keys (e.g. `trace_id`), replayed with the event. */
  readonly metadata?: Record<string, unknown> | undefined;
}
export type DurableSink = (record: DurableRecord) => void;

export interface EventRouterOptions {
  readonly maxMessageBytes: number;
  /** Nesting depth and members per object or array of payloads and metadata; absent: unbounded. */
  readonly shape?: JsonShapeBounds | undefined;
  readonly history: HistoryOptions;
  /** How long a publish's `idempotency_key` is remembered (by the broker, shared by the nodes); 0: off. */
  readonly idempotencyWindowMs: number;
  /** Where events of durable channels go (ApiXEvent records); absent without a database. */
  readonly durable?: DurableSink | undefined;
  /** Publishes per channel and per organization (a refusal throws RateLimitedError). */
  readonly limiter?: RateLimiter | undefined;
  /** Seals what is stored of channels configured `encrypted`; absent: publishing to them is refused. */
  readonly atRest?: AtRestCipher | undefined;
  /**
   * The backend's publish proxy (src/backend/proxy-steps.ts), last of the checks: the request to go on
   * with (its payload may be replaced), or a throw with the backend's refusal.
   */
  readonly approvePublish?: ((req: PublishRequest) => Promise<PublishRequest>) | undefined;
  /** OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT): `apix.publish` and `apix.route` spans; absent: none. */
  readonly tracing?: Tracing | undefined;
}

/** The request with `traceparent` in its metadata (the span the event continues). */
function withTraceparent(req: PublishRequest, traceparent: string): PublishRequest {
  return { ...req, metadata: { ...req.metadata, traceparent } };
}

export class EventRouter {
  published = 0;

  constructor(
    private readonly broker: Broker,
    private readonly channels: ChannelRegistry,
    private readonly hooks: HookBus,
    private readonly clock: Clock,
    private readonly options: EventRouterOptions,
  ) {}

  /**
   * Publishes one event. With `order` and `ticket` (a WebSocket connection's publish: the caller took the
   * ticket with `order.enter()` when the frame came in, and calls `order.settle(ticket)` once this
   * settles), the connection's publishes get their ids in ticket order, whatever their checks wait for
   * (src/router/publish-order.ts); without (an HTTP request), the id is given when the checks are done.
   */
  publish(req: PublishRequest, order?: PublishOrder, ticket = 0): Promise<PublishResult> {
    const tracing = this.options.tracing;
    if (tracing === undefined) return this.checkAndPublish(req, order, ticket);
    const attributes = {
      'apix.org': req.principal.orgId,
      'apix.channel': req.channel,
      'apix.type': req.type,
    };
    return tracing.publish(req.metadata?.traceparent, attributes, (traceparent) =>
      this.checkAndPublish(withTraceparent(req, traceparent), order, ticket),
    );
  }

  private async checkAndPublish(req: PublishRequest, order: PublishOrder | undefined, ticket: number) {
    const parsed = parseChannel(req.channel);
    if (!parsed.ok) throw new ApiXError('BAD_REQUEST', parsed.reason);
    const channel = parsed.channel;
    if (isControlType(req.type) || isStreamType(req.type))
      throw new ApiXError('BAD_REQUEST', `"${req.type}" is a reserved control type`);
    if (!EVENT_TYPE_RE.test(req.type))
      throw new ApiXError('BAD_REQUEST', 'type must match [a-z][a-z0-9_.]{0,63}');
    // Before anything walks, keeps or serializes it again (the domain checks, the broker, the records).
    const shape = this.options.shape;
    if (shape !== undefined) {
      const tooLarge =
        jsonShapeError(req.payload, shape, 'payload') ?? jsonShapeError(req.metadata, shape, 'metadata');
      if (tooLarge !== undefined) throw new ApiXError('PAYLOAD_TOO_LARGE', tooLarge);
    }
    // An end-to-end encrypted payload (the SDK's envelope) cannot be checked: the gateway cannot read it.
    if (isE2eMarked(req.metadata)) {
      if (!isE2ePayload(req.payload))
        throw new ApiXError('BAD_REQUEST', 'metadata.e2e is set but payload is not an e2e envelope');
    } else {
      const payloadError = checkDomainPayload(req.type, req.payload);
      if (payloadError) throw new ApiXError('BAD_REQUEST', payloadError);
    }

    const orgId = req.principal.orgId;
    const settings = this.channels.get(orgId, channel.name);
    const decision = authorize('publish', req.principal, req.clientType, channel, settings?.permissions);
    if (!decision.allowed) {
      this.hooks.emit('onDeny', {
        principal: req.principal,
        peer: req.peer,
        action: 'publish',
        channel: channel.name,
        reason: decision.reason,
      });
      throw new ApiXError('FORBIDDEN', `publish to ${channel.name} denied: ${decision.reason}`);
    }

    const key = channelKey(orgId, channel);
    // After validation and permission, so that refused junk does not spend the organization's tokens.
    if (this.options.limiter && req.limited !== false)
      await this.options.limiter.checkPublish(req.principal, req.peer, key);
    if (this.options.approvePublish && req.limited !== false) req = await this.options.approvePublish(req);
    if (settings?.encrypted === true && this.options.atRest === undefined)
      throw new ApiXError(
        'UNAVAILABLE',
        `${channel.name} is configured encrypted, but this gateway has no encryption keys (APIX_ENCRYPTION_KEYS)`,
      );
    // The broker fixes the id when it is called: wait for the turn of this connection's publish.
    if (order !== undefined && !order.isTurn(ticket)) await order.wait(ticket);
    const published = this.routed(
      req,
      channel,
      key,
      settings?.durable === true,
      settings?.encrypted === true,
    );
    order?.pass(ticket);
    return published;
  }

  /** doPublish, in an `apix.route` span when tracing (the broker is called before this returns). */
  private routed(
    req: PublishRequest,
    channel: ParsedChannel,
    key: string,
    durable: boolean,
    encrypted: boolean,
  ): Promise<PublishResult> {
    const tracing = this.options.tracing;
    if (tracing === undefined) return this.doPublish(req, channel, key, durable, encrypted);
    return tracing.route(req.metadata?.traceparent, { 'apix.channel_key': key }, (traceparent) =>
      this.doPublish(withTraceparent(req, traceparent), channel, key, durable, encrypted),
    );
  }

  private async doPublish(
    req: PublishRequest,
    channel: ParsedChannel,
    key: string,
    durable: boolean,
    encrypted = false,
  ): Promise<PublishResult> {
    const payloadJson = this.payloadJson(req);
    const bytes = payloadJson.length;
    const timestamp = this.clock.now();
    const extraMetadata = metadataJson(req);
    let sealed: string | undefined;
    const idemKey = req.metadata?.idempotency_key;
    const windowMs = this.options.idempotencyWindowMs;
    // The broker decides duplicates atomically with the append, across every node of the engine.
    const event: BrokerEvent = await this.broker.publish({
      key,
      type: req.type,
      timestamp,
      publisher: req.publisher,
      history: this.options.history,
      encode: (id) => {
        if (!encrypted || this.options.atRest === undefined)
          return encodeChannelEvent(req.type, channel.name, id, payloadJson, timestamp, extraMetadata);
        // Encrypted at rest: sealed once here; each node opens it once when the engine hands it over.
        const frame = encodeChannelEvent(
          req.type,
          channel.name,
          ID_MARK,
          payloadJson,
          timestamp,
          extraMetadata,
        );
        const at = frame.indexOf(ID_MARK);
        const box = this.options.atRest.sealFrame(key, frame.slice(0, at), frame.slice(at + ID_MARK.length));
        return (sealed = sealedFrameText(box, id));
      },
      idempotency:
        idemKey !== undefined && windowMs > 0
          ? { key: publisherIdempotencyKey(req.principal, key, idemKey), windowMs }
          : undefined,
    });
    if (event.duplicate) return { id: event.id, channel, key, duplicate: true };
    const sealedPayload = sealed === undefined ? undefined : sealedRecordPayload(sealed);
    this.published++;
    if (durable && this.options.durable)
      this.options.durable({
        channelKey: key,
        eventId: event.id,
        type: req.type,
        payload: sealedPayload ?? req.payload,
        sessionId: req.connection?.sessionId,
        publishedAt: timestamp,
        ...(extraMetadata !== undefined
          ? { metadata: JSON.parse(`{${extraMetadata}}`) as Record<string, unknown> }
          : {}),
      });
    this.emitPublished(req, channel, event.id, bytes);
    return { id: event.id, channel, key, duplicate: false };
  }

  /** The payload as JSON, within the size limit. */
  private payloadJson(req: PublishRequest): string {
    let payloadJson: string;
    try {
      payloadJson = req.payload === undefined ? 'null' : JSON.stringify(req.payload);
    } catch {
      throw new ApiXError('BAD_REQUEST', 'payload cannot be serialized (too deeply nested?)');
    }
    const max = req.maxPayloadBytes ?? this.options.maxMessageBytes;
    if (payloadJson.length > max) throw new ApiXError('PAYLOAD_TOO_LARGE', `payload is over ${max} bytes`);
    return payloadJson;
  }

  private emitPublished(req: PublishRequest, channel: ParsedChannel, id: string, bytes: number): void {
    if (this.hooks.has('onPublish'))
      this.hooks.emit('onPublish', {
        principal: req.principal,
        peer: req.peer,
        connection: req.connection,
        channel: channel.name,
        channelType: channel.type,
        type: req.type,
        id,
        bytes,
      });
  }
}

/** The publish's metadata that travels with the event, as JSON members (see customMetadataJson). */
function metadataJson(req: PublishRequest): string | undefined {
  try {
    return customMetadataJson(req.metadata);
  } catch {
    throw new ApiXError('BAD_REQUEST', 'metadata cannot be serialized (too deeply nested?)');
  }
}

/** Where the id goes while an encrypted frame is built (the channel event grammar has no `\u0000`). */
const ID_MARK = '\u0000id\u0000';

/** Keys of a publish's metadata that are the publisher's own business (the rest travel with the event). */
const PUBLISH_ONLY_METADATA = new Set([
  'timestamp',
  'version',
  'correlation_id',
  'idempotency_key',
  'retryCount',
]);

/**
 * The publisher's custom metadata keys (e.g. `trace_id`), as JSON members to splice into the event's
 * metadata, or undefined when there are none (the common case: nothing is built).
 */
function customMetadataJson(metadata: EnvelopeMetadata | undefined): string | undefined {
  if (metadata === undefined) return undefined;
  let out: string | undefined;
  for (const k of Object.keys(metadata)) {
    if (PUBLISH_ONLY_METADATA.has(k)) continue;
    const member = `${JSON.stringify(k)}:${JSON.stringify(metadata[k]) ?? 'null'}`;
    out = out === undefined ? member : `${out},${member}`;
  }
  return out;
}
