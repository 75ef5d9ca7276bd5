/**
 * The WebSocket upgrade: the per-address rate limit before any other work, then origin, subprotocol,
 * draining and connection caps; refusals are raw HTTP answers with the security headers and the error
 * registry's code. An accepted socket is handed to `WsSockets`.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { ErrorCode } from '@apix/protocol';
import type { Config } from '../../config.ts';
import type { HookBus } from '../../hooks.ts';
import type { Peer } from '../../auth/principal.ts';
import type { RateLimiter } from '../../ratelimit/rate-limiter.ts';
import { rawHttpResponse } from '../../security-headers.ts';
import type { WsSockets } from './ws-transport.ts';
import { selectSubprotocol, SUPPORTED_SUBPROTOCOLS } from '../encoding.ts';

export interface UpgradeDeps {
  readonly config: Config;
  readonly hooks: HookBus;
  readonly limiter: RateLimiter;
  /** What the caps look at: the node is draining, its open connections, those per remote address. */
  readonly load: {
    readonly draining: boolean;
    readonly connectionCount: number;
    connectionsFrom(address: string): number;
  };
}

type RefusalCode = ErrorCode | 'ORIGIN' | 'PROTOCOL';

export class UpgradeGuard<C> {
  readonly wss: WebSocketServer;

  constructor(
    private readonly deps: UpgradeDeps,
    private readonly sockets: WsSockets<C>,
  ) {
    const { config } = deps;
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: config.maxMessageBytes,
      perMessageDeflate: config.compression.enabled
        ? {
            threshold: config.compression.thresholdBytes,
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            zlibDeflateOptions: { level: 1 },
            concurrencyLimit: 10,
          }
        : false,
      // The first of the client's offers that the gateway speaks (ws keeps the header's order).
      handleProtocols: (protocols) => selectSubprotocol(protocols) ?? false,
    });
    // A handshake ws itself refuses (method, Upgrade, key, version, malformed offers) is answered here, so
    // that it carries the security headers and the error registry's code like the gateway's own refusals.
    this.wss.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
      const version: Record<string, string> = /Sec-WebSocket-Version/.test(err.message)
        ? { 'Sec-WebSocket-Version': '13, 8' }
        : {};
      const status = req.method === 'GET' ? 400 : 405;
      this.reject(socket, peerOf(req), status, 'BAD_REQUEST', err.message, { headers: version });
    });
  }

  /**
   * Handles an HTTP upgrade on the gateway's path: the per-address rate limit before any other work
   * (429 with Retry-After), then origin, subprotocol and capacity checks.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const peer = peerOf(req);
    if (!this.deps.limiter.limitsAddresses) return this.upgrade(req, socket, head, peer);
    this.deps.limiter.checkAddress(peer).then(
      (r) => {
        if (socket.destroyed) return;
        if (r.allowed) return this.upgrade(req, socket, head, peer);
        const retryAfterMs = r.retryAfterMs;
        this.reject(
          socket,
          peer,
          429,
          'RATE_LIMITED',
          `too many connection attempts from this address; retry after ${retryAfterMs} ms`,
          { retryAfterMs },
        );
      },
      () => socket.destroy(),
    );
  }

  close(): void {
    this.wss.close();
  }

  private reject(
    socket: Duplex,
    peer: Peer,
    status: number,
    code: RefusalCode,
    reason: string,
    extra: { retryAfterMs?: number; headers?: Record<string, string> } = {},
  ): void {
    this.deps.hooks.emit('onConnectRefused', { peer, code, reason });
    const { headers: more, ...fields } = extra;
    const body = JSON.stringify({
      code: code === 'ORIGIN' ? 'FORBIDDEN' : code === 'PROTOCOL' ? 'BAD_REQUEST' : code,
      message: reason,
      ...fields,
    });
    const headers = {
      ...more,
      ...(extra.retryAfterMs !== undefined ? { 'Retry-After': Math.ceil(extra.retryAfterMs / 1000) } : {}),
    };
    socket.end(rawHttpResponse(status, { headers, json: body }));
    socket.destroy();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer): void {
    const reject = (status: number, code: RefusalCode, reason: string) =>
      this.reject(socket, peer, status, code, reason);
    const { config, load } = this.deps;
    if (load.draining) return reject(503, 'UNAVAILABLE', 'server is draining');
    const allowed = config.allowedOrigins;
    if (allowed && peer.origin !== undefined && !allowed.includes(peer.origin) && !allowed.includes('*'))
      return reject(403, 'ORIGIN', `origin ${peer.origin} is not allowed`);
    const offered = req.headers['sec-websocket-protocol'];
    if (offered !== undefined) {
      const list = offered.split(',').map((p) => p.trim());
      if (selectSubprotocol(list) === undefined)
        return reject(
          400,
          'PROTOCOL',
          `unsupported subprotocol; offer ${SUPPORTED_SUBPROTOCOLS.join(' or ')}`,
        );
    }
    if (load.connectionCount >= config.maxConnections)
      return reject(503, 'UNAVAILABLE', 'connection limit reached');
    const perAddress = config.connectionCaps.perAddress;
    const address = peer.remoteAddress;
    if (perAddress > 0 && address !== undefined && load.connectionsFrom(address) >= perAddress)
      return reject(429, 'RATE_LIMITED', `too many open connections from this address (limit ${perAddress})`);
    // Counted in the same tick as the checks above (ws completes the upgrade synchronously).
    this.wss.handleUpgrade(req, socket, head, (ws) => this.sockets.open(ws, peer));
  }
}

export function peerOf(req: IncomingMessage): Peer {
  const ua = req.headers['user-agent'];
  const origin = req.headers.origin;
  return {
    remoteAddress: req.socket.remoteAddress,
    userAgent: typeof ua === 'string' ? ua.slice(0, 256) : undefined,
    origin: typeof origin === 'string' ? origin : undefined,
  };
}
