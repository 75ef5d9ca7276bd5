/**
 * How the load generator speaks to each system under test, over raw `ws` clients: the handshake that
 * makes a connection authenticated and subscribed, the publish frame, heartbeat replies and acks.
 * Deliveries themselves are not parsed here: the hot path in loadgen.ts scans the raw frame for the
 * bench payload's `"bt":` (send time) and `"bs":` (step) fields, which every target carries verbatim.
 */

export type TargetKind = 'baseline' | 'socketio' | 'apix';

export interface ConnSpec {
  readonly index: number;
  readonly channels: readonly string[];
  readonly ack: boolean;
  /** A JWT, when the protocol authenticates. */
  readonly token: string | undefined;
}

export type HandshakeStep = { readonly state: 'wait'; readonly send?: string } | { readonly state: 'ready' };

export interface ClientProtocol {
  /** Path and query appended to the target's ws:// base URL. */
  readonly path: string;
  readonly authenticates: boolean;
  /** Frames sent as soon as the socket opens. */
  openFrames(spec: ConnSpec): string[];
  /** A frame received before the connection is ready; throws on a refusal. */
  handshake(frame: string, spec: ConnSpec): HandshakeStep;
  /** A non-delivery frame once ready (heartbeats): the reply to send, if any. */
  control(frame: string): string | undefined;
  publishFrame(channel: string, type: string, payloadJson: string): string;
  /** A frame received by the publisher: did it report a failed publish? */
  isPublishFailure(frame: string): boolean;
  ackFrame(channel: string, ids: readonly string[]): string;
}

function parse(frame: string): any {
  try {
    return JSON.parse(frame);
  } catch {
    return undefined;
  }
}

/** bench/servers/ws-baseline.ts: one JSON subscribe frame, no auth, pings at the ws level. */
const baseline: ClientProtocol = {
  path: '/',
  authenticates: false,
  openFrames: (spec) => [JSON.stringify({ type: 'subscribe', channels: spec.channels })],
  handshake(frame) {
    const msg = parse(frame);
    if (msg?.type === 'subscribed') return { state: 'ready' };
    throw new Error(`unexpected handshake frame: ${frame.slice(0, 120)}`);
  },
  control: () => undefined,
  publishFrame: (channel, type, payloadJson) =>
    `{"type":${JSON.stringify(type)},"channel":${JSON.stringify(channel)},"payload":${payloadJson}}`,
  isPublishFailure: () => false,
  ackFrame: () => {
    throw new Error('the baseline has no acknowledgements');
  },
};

/**
 * Socket.IO 4 over the websocket transport, spoken directly: Engine.IO v4 packets (`0` open, `2` ping,
 * `3` pong, `4` message) carrying Socket.IO packets (`0` connect with auth, `2` event, `3` ack, `4` error).
 */
const socketio: ClientProtocol = {
  path: '/socket.io/?EIO=4&transport=websocket',
  authenticates: true,
  openFrames: () => [],
  handshake(frame, spec) {
    if (frame.startsWith('0{')) return { state: 'wait', send: `40${JSON.stringify({ token: spec.token })}` };
    if (frame.startsWith('40'))
      return { state: 'wait', send: `420${JSON.stringify(['sub', spec.channels])}` };
    if (frame.startsWith('430')) return { state: 'ready' };
    if (frame === '2') return { state: 'wait', send: '3' };
    throw new Error(`unexpected handshake frame: ${frame.slice(0, 120)}`);
  },
  control: (frame) => (frame === '2' ? '3' : undefined),
  publishFrame: (channel, type, payloadJson) =>
    `42["pub",{"type":${JSON.stringify(type)},"channel":${JSON.stringify(channel)},"payload":${payloadJson}}]`,
  isPublishFailure: (frame) => frame.startsWith('44'),
  ackFrame: () => {
    throw new Error('the Socket.IO target has no acknowledgements');
  },
};

/** APIX wire protocol v1 (docs/protocol.md): `connect` with a JWT and subscriptions, then `subscribe` for acks. */
const apix: ClientProtocol = {
  path: '/v1/ws',
  authenticates: true,
  openFrames: (spec) => [
    JSON.stringify({
      type: 'connect',
      payload: {
        sessionId: `bench-${process.pid}-${spec.index}`,
        clientType: 'API_CLIENT',
        authentication: { token: spec.token },
        subscriptions: spec.ack ? [] : spec.channels,
      },
    }),
  ],
  handshake(frame, spec) {
    const msg = parse(frame);
    switch (msg?.type) {
      case 'connection.established': {
        const denied = msg.payload?.denied as unknown[] | undefined;
        if (denied && denied.length > 0) throw new Error(`subscription denied: ${JSON.stringify(denied[0])}`);
        if (!spec.ack) return { state: 'ready' };
        return {
          state: 'wait',
          send: JSON.stringify({
            type: 'subscribe',
            payload: { channels: spec.channels, acknowledgment: true },
          }),
        };
      }
      case 'subscription.added': {
        const denied = msg.payload?.denied as unknown[] | undefined;
        if (denied && denied.length > 0) throw new Error(`subscription denied: ${JSON.stringify(denied[0])}`);
        return { state: 'ready' };
      }
      case 'heartbeat.ping':
        return { state: 'wait', send: apix.control(frame) };
      case 'connection.error':
        throw new Error(`connection.error ${JSON.stringify(msg.payload)}`);
      default:
        return { state: 'wait' };
    }
  },
  control(frame) {
    if (!frame.includes('"heartbeat.ping"')) return undefined;
    const msg = parse(frame);
    return JSON.stringify({ type: 'heartbeat.pong', payload: { ts: msg?.payload?.ts ?? Date.now() } });
  },
  publishFrame: (channel, type, payloadJson) =>
    `{"type":${JSON.stringify(type)},"channel":${JSON.stringify(channel)},"payload":${payloadJson}}`,
  isPublishFailure: (frame) => frame.includes('"message.failed"') || frame.includes('"connection.error"'),
  ackFrame: (channel, ids) => JSON.stringify({ type: 'ack', payload: { channel, ids } }),
};

export const PROTOCOLS: Record<TargetKind, ClientProtocol> = { baseline, socketio, apix };
