/**
 * Test support: the protocol over HTTP streaming (`POST /v1/stream`, ndjson) and Server-Sent Events
 * (`GET /v1/sse` with a ticket), frame by frame like RawClient over WebSocket, with the same waits
 * (FrameClient). The client's frames go out as `POST /v1/frames`, one at a time and in order. As `ws`
 * answers WebSocket pings by itself, this client answers the server's `heartbeat.ping`.
 */
import { FrameClient, RawClient, token } from './gateway.ts';
import type { Frame } from './gateway.ts';
import { MsgpackClient } from './msgpack-client.ts';

export type TransportName = 'websocket' | 'websocket-msgpack' | 'http-stream' | 'sse';
/** Every transport of the protocol: the conformance table runs over each. */
export const TRANSPORTS: readonly TransportName[] = ['websocket', 'websocket-msgpack', 'http-stream', 'sse'];

export interface ConnectOptions {
  token?: string;
  sessionId?: string;
  subscriptions?: string[];
  resume?: Record<string, string>;
  clientType?: string;
  /** SSE: sent as `Last-Event-ID`. */
  lastEventId?: string;
}

export class StreamClient extends FrameClient {
  sessionToken: string | undefined;
  /** SSE: the `id:` of the last event. */
  lastEventId: string | undefined;
  private readonly abort = new AbortController();
  private outbox: Promise<void>;
  private tokenKnown!: () => void;

  private constructor(
    private readonly httpUrl: string,
    readonly transport: 'http-stream' | 'sse',
  ) {
    super();
    this.outbox = new Promise<void>((resolve) => (this.tokenKnown = resolve));
  }

  /** Opens the stream with `connectFrame` (its token swapped for a ticket on SSE); answers the HTTP status. */
  static async open(
    httpUrl: string,
    transport: 'http-stream' | 'sse',
    connectFrame: { payload: { authentication: { token: string } } },
    headers: Record<string, string> = {},
  ): Promise<StreamClient> {
    const c = new StreamClient(httpUrl, transport);
    let res: Response;
    if (transport === 'http-stream') {
      res = await fetch(`${httpUrl}/v1/stream`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify(connectFrame),
        signal: c.abort.signal,
      });
    } else {
      const real = connectFrame.payload.authentication.token;
      const t = await fetch(`${httpUrl}/v1/sse/ticket`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${real}` },
      });
      if (t.status !== 200) throw new Error(`HTTP ${t.status} ${await t.text()}`);
      const { ticket } = (await t.json()) as { ticket: string };
      const frame = structuredClone(connectFrame);
      frame.payload.authentication.token = ticket;
      const connect = Buffer.from(JSON.stringify(frame)).toString('base64url');
      res = await fetch(`${httpUrl}/v1/sse?connect=${connect}`, { headers, signal: c.abort.signal });
    }
    if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status} ${await res.text()}`);
    void c.read(res.body);
    return c;
  }

  static async connect(httpUrl: string, transport: 'http-stream' | 'sse', opts: ConnectOptions = {}) {
    const c = await StreamClient.open(
      httpUrl,
      transport,
      {
        type: 'connect',
        payload: {
          sessionId: opts.sessionId ?? `s-${Math.random().toString(36).slice(2)}`,
          clientType: opts.clientType ?? 'WEB_APP',
          authentication: { token: opts.token ?? (await token()) },
          subscriptions: opts.subscriptions ?? [],
          ...(opts.resume ? { resume: { lastEventIds: opts.resume } } : {}),
        },
      } as never,
      opts.lastEventId !== undefined ? { 'Last-Event-ID': opts.lastEventId } : {},
    );
    const f = await c.next((f) => f.type === 'connection.established' || f.type === 'connection.error');
    if (f.type !== 'connection.established') throw new Error(`connect failed: ${JSON.stringify(f.payload)}`);
    return c;
  }

  /** `POST /v1/frames`, after the ones before it (and once the session token is known). */
  send(frame: unknown): void {
    const body = typeof frame === 'string' ? frame : JSON.stringify(frame);
    this.outbox = this.outbox
      .then(async () => {
        await this.post(body);
      })
      .catch(() => {});
  }

  /** Posts a body now; answers the HTTP status and body (for tests of `/v1/frames` itself). */
  async post(body: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${this.httpUrl}/v1/frames`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Apix-Session-Token': this.sessionToken ?? '' },
      body,
    });
    return { status: res.status, body: await res.text() };
  }

  close(): void {
    this.abort.abort();
  }

  terminate(): void {
    this.abort.abort();
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = '';
    let closeCode = 1006;
    let reason = 'stream ended';
    const onFrame = (frame: Frame) => {
      if (frame.type === 'connection.established' && frame.payload?.sessionToken) {
        this.sessionToken = frame.payload.sessionToken;
        this.tokenKnown();
      }
      if (frame.type === 'connection.disconnected') {
        closeCode = frame.payload?.closeCode ?? closeCode;
        reason = frame.payload?.reason ?? reason;
      }
      if (frame.type === 'heartbeat.ping') this.send({ type: 'heartbeat.pong', payload: frame.payload });
      this.received(frame);
    };
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        buffered =
          this.transport === 'sse' ? this.sseEvents(buffered, onFrame) : ndjsonLines(buffered, onFrame);
      }
    } catch {
      // aborted by close() / terminate(), or the connection dropped
    }
    this.ended(closeCode, reason);
  }

  /** Dispatches the complete events in `text`; answers the rest. */
  private sseEvents(text: string, onFrame: (f: Frame) => void): string {
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) this.lastEventId = line.slice(4);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data !== '') onFrame(JSON.parse(data) as Frame);
    }
    return text;
  }
}

function ndjsonLines(text: string, onFrame: (f: Frame) => void): string {
  let end: number;
  while ((end = text.indexOf('\n')) >= 0) {
    const line = text.slice(0, end);
    text = text.slice(end + 1);
    if (line !== '') onFrame(JSON.parse(line) as Frame);
  }
  return text;
}

/** Where a gateway listens: an in-process node (ApiXNode) or an `apix serve` process (GatewayProcess). */
export interface GatewayUrls {
  readonly wsUrl: string;
  readonly httpUrl: string;
}

/** `connect` and `connection.established` over the named transport. */
export function connectOver(
  transport: TransportName,
  node: GatewayUrls,
  opts: ConnectOptions = {},
): Promise<FrameClient> {
  if (transport === 'websocket') return RawClient.connect(node.wsUrl, opts);
  if (transport === 'websocket-msgpack') return MsgpackClient.connect(node.wsUrl, opts);
  return StreamClient.connect(node.httpUrl, transport, opts);
}
