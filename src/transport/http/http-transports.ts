/**
 * The HTTP routes of the HTTP streaming and SSE transports (docs/transports.md, PROTOCOL 1.1 §14):
 * `POST /v1/stream` (the connect frame as body; ndjson down), `GET /v1/sse?connect=` (base64url connect
 * frame with a ticket for the token; Server-Sent Events down), `POST /v1/sse/ticket`, and `POST /v1/frames`
 * (the client's frames, naming its stream by `X-Apix-Session-Token`). The admission checks are the
 * WebSocket upgrade's: per-address rate, draining, origin, connection caps.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiXError, isApiXError } from '@apix/protocol';
import type { Peer } from '../../auth/principal.ts';
import type { HttpContext, HttpRouter } from '../../http/router.ts';
import { readBody, readJson, sendJson } from '../../http/router.ts';
import type { TransportHost } from '../transport.ts';
import type { UpgradeDeps } from '../websocket/upgrade.ts';
import { peerOf } from '../websocket/upgrade.ts';
import { HttpStreamTransport } from './stream-transport.ts';
import { parseLastEventId, STREAM_CONTENT_TYPES } from './stream-format.ts';
import type { StreamFormat } from './stream-format.ts';
import { SseTickets } from './sse-tickets.ts';

/** Client frames in one `POST /v1/frames`. */
const MAX_FRAMES_PER_POST = 100;
/** `POST /v1/frames` of one stream waiting while its reading is paused (backpressure on publishes). */
const MAX_WAITING_POSTS = 4;

export const SESSION_TOKEN_HEADER = 'x-apix-session-token';

export interface HttpTransportDeps extends UpgradeDeps {
  /** Starts every session token: a load balancer routes `POST /v1/frames` to the node holding the stream. */
  readonly nodeId: string;
  readonly now: () => number;
  /** Authenticates the real token of `POST /v1/sse/ticket` (with the HTTP API's auth-failure hook). */
  readonly authenticate: (req: IncomingMessage) => Promise<unknown>;
  /** Random bytes (injectable): session tokens and tickets. */
  readonly randomBytes?: (n: number) => Buffer;
}

type ConnectFrame = { type?: unknown; payload?: Record<string, unknown> };

export class HttpTransports<C> {
  /** Open streams by session token: bounded by the connection caps checked before one opens. */
  readonly streams = new Map<string, HttpStreamTransport<C>>();
  readonly tickets: SseTickets;
  private readonly waitingPosts = new Map<HttpStreamTransport<C>, number>();
  private readonly random: (n: number) => Buffer;

  constructor(
    private readonly deps: HttpTransportDeps,
    private readonly host: TransportHost<C>,
  ) {
    this.random = deps.randomBytes ?? randomBytes;
    const { sseTicketTtlMs, sseTicketsMax } = deps.config.httpTransports;
    this.tickets = new SseTickets({
      ttlMs: sseTicketTtlMs,
      max: sseTicketsMax,
      now: deps.now,
      newTicket: () => this.random(24).toString('base64url'),
    });
  }

  register(router: HttpRouter): void {
    router.add('POST', /^\/v1\/stream\/?$/, (ctx) => this.openStream(ctx));
    router.add('POST', /^\/v1\/frames\/?$/, (ctx) => this.receiveFrames(ctx));
    router.add('POST', /^\/v1\/sse\/ticket\/?$/, (ctx) => this.issueTicket(ctx));
    router.add('GET', /^\/v1\/sse\/?$/, (ctx) => this.openSse(ctx));
  }

  /** `POST /v1/stream`: the connect frame is the body; the token may come in `Authorization` instead. */
  private async openStream({ req, res }: HttpContext): Promise<void> {
    const peer = peerOf(req);
    await this.admit(peer);
    const frame = (await readJson(req, this.deps.config.maxMessageBytes)) as ConnectFrame;
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && /^Bearer\s+/i.test(auth)) {
      const payload = (frame.payload ??= {});
      const authentication = (payload.authentication ??= {}) as Record<string, unknown>;
      authentication.token ??= auth.replace(/^Bearer\s+/i, '').trim();
    }
    this.start(res, 'ndjson', peer, frame);
  }

  /** `GET /v1/sse?connect=<base64url of the connect frame>`, its token a ticket; `Last-Event-ID` resumes. */
  private async openSse({ req, res, url }: HttpContext): Promise<void> {
    const peer = peerOf(req);
    await this.admit(peer);
    const encoded = url.searchParams.get('connect');
    if (encoded === null || encoded.length > this.deps.config.maxMessageBytes)
      throw new ApiXError('BAD_REQUEST', 'connect=<base64url of the connect frame> is required');
    let frame: ConnectFrame;
    try {
      frame = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as ConnectFrame;
    } catch {
      throw new ApiXError('BAD_REQUEST', 'connect= is not base64url of a JSON connect frame');
    }
    const authentication = frame?.payload?.authentication as Record<string, unknown> | undefined;
    if (frame === null || typeof frame !== 'object' || typeof authentication?.token !== 'string')
      throw new ApiXError('BAD_REQUEST', 'the connect frame needs authentication.token (an SSE ticket)');
    authentication.token = this.tickets.redeem(authentication.token);
    const last = parseLastEventId(
      headerOf(req, 'last-event-id') ?? url.searchParams.get('lastEventId') ?? undefined,
    );
    if (last) {
      const payload = frame.payload!;
      const resume = (payload.resume ??= {}) as { lastEventIds?: Record<string, string> };
      const ids = (resume.lastEventIds ??= {});
      ids[last.channel] ??= last.id;
    }
    this.start(res, 'sse', peer, frame);
  }

  /** `POST /v1/sse/ticket`: the real token in `Authorization`, a single-use ticket back. */
  private async issueTicket({ req, res }: HttpContext): Promise<void> {
    await this.checkRate(peerOf(req));
    await this.deps.authenticate(req);
    const token = (req.headers.authorization as string).replace(/^Bearer\s+/i, '').trim();
    sendJson(res, 200, this.tickets.issue(token));
  }

  /** `POST /v1/frames`: one frame or an array, each handled as if it came over the stream's WebSocket. */
  private async receiveFrames({ req, res }: HttpContext): Promise<void> {
    const token = headerOf(req, SESSION_TOKEN_HEADER);
    const transport = token === undefined ? undefined : this.streams.get(token);
    if (transport === undefined || !transport.isOpen)
      throw new ApiXError('NOT_FOUND', 'no open stream for this X-Apix-Session-Token on this node');
    const waiting = this.waitingPosts.get(transport) ?? 0;
    if (transport.isPaused && waiting >= MAX_WAITING_POSTS)
      throw new ApiXError('RATE_LIMITED', 'too many frames waiting on this stream', { retryAfterMs: 1000 });
    this.waitingPosts.set(transport, waiting + 1);
    try {
      await transport.whenReading();
    } finally {
      const left = (this.waitingPosts.get(transport) ?? 1) - 1;
      if (left > 0) this.waitingPosts.set(transport, left);
      else this.waitingPosts.delete(transport);
    }
    const frames = await readFrames(req, this.deps.config.maxMessageBytes);
    if (!transport.isOpen) throw new ApiXError('NOT_FOUND', 'the stream of this session token ended');
    for (const frame of frames) this.host.onFrame(transport.conn, frame, false);
    sendJson(res, 202, { accepted: frames.length });
  }

  /** The stream's headers, its transport and connection, and the connect frame handed to the host. */
  private start(res: ServerResponse, format: StreamFormat, peer: Peer, frame: ConnectFrame): void {
    // The client left during the awaits above: its response's close has been emitted, nobody would hear it.
    if (res.destroyed || res.socket === null || res.socket.destroyed) return;
    const token = `${this.deps.nodeId}.${this.random(24).toString('base64url')}`;
    res.writeHead(200, {
      'Content-Type': STREAM_CONTENT_TYPES[format],
      // No cache, and no transformation (compression) by a proxy: each frame must pass at once.
      'Cache-Control': 'no-cache, no-transform',
      // nginx: do not buffer this response (docs/transports.md).
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    const transport = new HttpStreamTransport<C>(
      res,
      format,
      token,
      this.host,
      (t) => this.streams.delete(t.sessionToken),
      this.deps.now,
    );
    this.streams.set(token, transport);
    transport.conn = this.host.onOpen(transport, peer);
    this.host.onFrame(transport.conn, JSON.stringify(frame), false);
  }

  /** The WebSocket upgrade's checks, in its order: the per-address rate, draining, origin, caps. */
  private async admit(peer: Peer): Promise<void> {
    try {
      await this.checkRate(peer);
      const { config, load } = this.deps;
      if (load.draining) throw new ApiXError('UNAVAILABLE', 'server is draining');
      const allowed = config.allowedOrigins;
      if (allowed && peer.origin !== undefined && !allowed.includes(peer.origin) && !allowed.includes('*'))
        throw new ApiXError('FORBIDDEN', `origin ${peer.origin} is not allowed`);
      if (load.connectionCount >= config.maxConnections)
        throw new ApiXError('UNAVAILABLE', 'connection limit reached');
      const perAddress = config.connectionCaps.perAddress;
      const address = peer.remoteAddress;
      if (perAddress > 0 && address !== undefined && load.connectionsFrom(address) >= perAddress)
        throw new ApiXError(
          'RATE_LIMITED',
          `too many open connections from this address (limit ${perAddress})`,
        );
    } catch (err) {
      if (isApiXError(err))
        this.deps.hooks.emit('onConnectRefused', { peer, code: err.code, reason: err.message });
      throw err;
    }
  }

  private async checkRate(peer: Peer): Promise<void> {
    if (!this.deps.limiter.limitsAddresses) return;
    const r = await this.deps.limiter.checkAddress(peer);
    if (!r.allowed)
      throw new ApiXError(
        'RATE_LIMITED',
        `too many connection attempts from this address; retry after ${r.retryAfterMs} ms`,
        {
          retryAfterMs: r.retryAfterMs,
        },
      );
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

/** The body of `POST /v1/frames`: one JSON frame or an array of them, each as its JSON text. */
async function readFrames(req: IncomingMessage, limit: number): Promise<string[]> {
  const text = await readBody(req, limit);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiXError('BAD_REQUEST', 'body is not valid JSON');
  }
  if (!Array.isArray(body)) return [text];
  if (body.length > MAX_FRAMES_PER_POST)
    throw new ApiXError('BAD_REQUEST', `at most ${MAX_FRAMES_PER_POST} frames per request`);
  return body.map((f) => JSON.stringify(f));
}
