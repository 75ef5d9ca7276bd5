/**
 * Attack-suite support: a WebSocket client written on a bare TCP socket (handshake and frames by hand,
 * so that it can send what no library would), raw HTTP, a healthy control connection that proves each
 * attack cost nobody else anything, and a watch on the process for unhandled rejections.
 */
import net from 'node:net';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { Writable } from 'node:stream';
import type { ApiXNode } from '../../../src/node.ts';
import { RawClient, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import type { WsTransport } from '../../../src/transport/websocket/ws-transport.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function portOf(node: ApiXNode): number {
  return Number(new URL(node.httpUrl).port);
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function until<T>(
  check: () => T | undefined | false,
  timeoutMs = 3000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// ------------------------------------------------------------------ process watch

/** Records unhandled rejections for the life of a test file; `assertNone` at the end. */
export function watchProcess(): { readonly rejections: unknown[]; assertNone(): void } {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  return {
    rejections,
    assertNone() {
      WireClient.destroyAll();
      process.off('unhandledRejection', onRejection);
      assert.deepEqual(rejections.map(String), [], 'no unhandled rejection in the process');
    },
  };
}

// ------------------------------------------------------------------ control connection

/** Finds a frame anywhere in a RawClient's frames (no shared cursor: safe for concurrent waits). */
export function waitFrame(c: RawClient, pred: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
  return until(() => c.frames.find(pred), timeoutMs, `a frame; last: ${JSON.stringify(c.frames.slice(-3))}`);
}

/**
 * A healthy client on the attacked node. `check()` (after every case) proves the node still serves it:
 * it publishes on its own channel, gets `message.sent`, receives its own event, and /healthz answers.
 */
export class Control {
  private n = 0;
  private constructor(
    readonly node: ApiXNode,
    readonly client: RawClient,
  ) {}

  static async start(node: ApiXNode, tok?: string): Promise<Control> {
    const client = await RawClient.connect(node.wsUrl, {
      token: tok ?? (await token({ sub: 'control', org: 'acme' })),
      sessionId: 'control-session',
      subscriptions: ['room:control'],
    });
    return new Control(node, client);
  }

  async check(): Promise<void> {
    assert.equal(this.client.closed, undefined, 'the control connection is still open');
    const nonce = `${++this.n}-${randomBytes(4).toString('hex')}`;
    const correlation_id = `control-${nonce}`;
    this.client.send({
      type: 'note',
      channel: 'room:control',
      payload: { nonce },
      metadata: { correlation_id },
    });
    const reply = await waitFrame(this.client, (f) => f.metadata?.correlation_id === correlation_id, 5000);
    assert.equal(reply.type, 'message.sent', `control publish answered ${JSON.stringify(reply)}`);
    const ev = await waitFrame(
      this.client,
      (f) => f.channel === 'room:control' && f.payload?.nonce === nonce,
    );
    assert.equal(ev.id, reply.payload.id);
    const health = await fetch(`${this.node.httpUrl}/healthz`);
    assert.equal(health.status, 200);
  }

  close(): void {
    this.client.close();
  }
}

// ------------------------------------------------------------------ raw HTTP

export interface HttpReply {
  readonly status: number | undefined;
  readonly head: string;
  readonly body: string;
  /** The server closed the socket (before our timeout). */
  readonly closedByServer: boolean;
  readonly elapsedMs: number;
}

/** Writes raw bytes to the node's port and reads until the server closes or `timeoutMs` passes. */
export function rawHttp(
  port: number,
  request: string | Buffer | ((socket: net.Socket) => void),
  timeoutMs = 3000,
): Promise<HttpReply> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const head = sep === -1 ? text : text.slice(0, sep);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      resolve({
        status: m ? Number(m[1]) : undefined,
        head,
        body: sep === -1 ? '' : text.slice(sep + 4),
        closedByServer,
        elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (d) => {
      chunks.push(d);
      // A complete response with a Content-Length on a kept-alive socket: done, no need to wait for a close.
      const text = Buffer.concat(chunks).toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, sep));
      if (sep !== -1 && len && Buffer.byteLength(text.slice(sep + 4), 'latin1') >= Number(len[1]))
        finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', () => {
      if (typeof request === 'function') request(socket);
      else socket.write(request);
    });
  });
}

export function upgradeRequest(
  port: number,
  opts: { path?: string; headers?: Record<string, string | undefined>; method?: string } = {},
): string {
  const headers: Record<string, string | undefined> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
    ...opts.headers,
  };
  let head = `${opts.method ?? 'GET'} ${opts.path ?? '/v1/ws'} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) head += `${k}: ${v}\r\n`;
  return `${head}\r\n`;
}

// ------------------------------------------------------------------ raw WebSocket frames

export const Op = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface FrameSpec {
  readonly opcode: number;
  readonly payload?: Buffer | string;
  readonly fin?: boolean;
  readonly rsv1?: boolean;
  readonly rsv2?: boolean;
  readonly rsv3?: boolean;
  /** Client frames must be masked (default true). */
  readonly mask?: boolean;
  /** Force the length encoding: 126 (16-bit) or 127 (64-bit), or a raw 64-bit length value. */
  readonly lengthForm?: 7 | 16 | 64;
  readonly length64?: bigint;
}

export function encodeFrame(spec: FrameSpec): Buffer {
  const payload =
    typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : (spec.payload ?? Buffer.alloc(0));
  const mask = spec.mask ?? true;
  const len = payload.length;
  const form = spec.lengthForm ?? (len < 126 ? 7 : len < 65536 ? 16 : 64);
  const b0 =
    (spec.fin === false ? 0 : 0x80) |
    (spec.rsv1 ? 0x40 : 0) |
    (spec.rsv2 ? 0x20 : 0) |
    (spec.rsv3 ? 0x10 : 0) |
    (spec.opcode & 0x0f);
  let header: Buffer;
  if (form === 7) {
    header = Buffer.from([b0, (mask ? 0x80 : 0) | len]);
  } else if (form === 16) {
    header = Buffer.alloc(4);
    header[0] = b0;
    header[1] = (mask ? 0x80 : 0) | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = b0;
    header[1] = (mask ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(spec.length64 ?? BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([header, payload]);
  const key = randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, key, masked]);
}

export interface ServerMessage {
  readonly opcode: number;
  readonly data: Buffer;
}

/**
 * A WebSocket client on a bare socket. The handshake is sent by hand; after a 101 the server's frames are
 * parsed (inflating permessage-deflate messages) into `messages`; a close frame sets `closeCode`.
 */
export class WireClient {
  status: number | undefined;
  responseHead = '';
  readonly messages: ServerMessage[] = [];
  closeCode: number | undefined;
  closeReason = '';
  /** The TCP connection is gone. */
  ended = false;
  bytesReceived = 0;
  private buf: Buffer = Buffer.alloc(0);
  private upgraded = false;
  private fragments: Buffer[] = [];
  private fragOpcode = 0;
  private fragCompressed = false;

  /** Every client still open, so that a failed case leaves no socket behind (`WireClient.destroyAll()`). */
  private static readonly live = new Set<WireClient>();
  static destroyAll(): void {
    for (const c of WireClient.live) c.destroy();
  }

  private constructor(readonly socket: net.Socket) {
    WireClient.live.add(this);
    socket.on('close', () => WireClient.live.delete(this));
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.ended = true;
    });
    socket.on('error', () => {
      this.ended = true;
    });
  }

  /**
   * Connects (from `localAddress`, any 127.x.y.z, default the kernel's choice) and sends `request` (an
   * upgrade); resolves once the response head arrived (or the socket ended).
   */
  static async open(
    port: number,
    request?: string,
    // Generous: a condition, not a measurement (the CI machine is a busy 2-core box).
    timeoutMs = 15_000,
    localAddress?: string,
  ): Promise<WireClient> {
    const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    socket.setNoDelay(true);
    const c = new WireClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    socket.write(request ?? upgradeRequest(port));
    await until(() => c.status !== undefined || c.ended, timeoutMs, 'the handshake response');
    return c;
  }

  /** The body of a response that was not an upgrade (as received so far). */
  get body(): string {
    return this.upgraded ? '' : this.buf.toString('utf8');
  }

  /** Opens with permessage-deflate offered (no context takeover either way). */
  static openDeflate(port: number): Promise<WireClient> {
    return WireClient.open(
      port,
      upgradeRequest(port, {
        headers: {
          'Sec-WebSocket-Extensions':
            'permessage-deflate; client_no_context_takeover; server_no_context_takeover',
        },
      }),
    );
  }

  get deflate(): boolean {
    return /sec-websocket-extensions:\s*permessage-deflate/i.test(this.responseHead);
  }

  private onData(d: Buffer): void {
    this.bytesReceived += d.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.upgraded) {
      const sep = this.buf.indexOf('\r\n\r\n');
      if (sep === -1) return;
      this.responseHead = this.buf.subarray(0, sep).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(this.responseHead);
      this.status = m ? Number(m[1]) : 0;
      this.buf = this.buf.subarray(sep + 4);
      if (this.status !== 101) return;
      this.upgraded = true;
    }
    this.parse();
  }

  private parse(): void {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0]! & 0x80) !== 0;
      const rsv1 = (b[0]! & 0x40) !== 0;
      const opcode = b[0]! & 0x0f;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) return;
      const data = b.subarray(off, off + len);
      this.buf = b.subarray(off + len);
      if (opcode >= 0x8) {
        if (opcode === Op.CLOSE) {
          this.closeCode = data.length >= 2 ? data.readUInt16BE(0) : 1005;
          this.closeReason = data.subarray(2).toString('utf8');
        }
        this.messages.push({ opcode, data: Buffer.from(data) });
        continue;
      }
      if (opcode !== Op.CONT) {
        this.fragOpcode = opcode;
        this.fragCompressed = rsv1;
        this.fragments = [];
      }
      this.fragments.push(Buffer.from(data));
      if (!fin) continue;
      let whole = Buffer.concat(this.fragments);
      if (this.fragCompressed)
        whole = inflateRawSync(Buffer.concat([whole, Buffer.from([0x00, 0x00, 0xff, 0xff])]));
      this.messages.push({ opcode: this.fragOpcode, data: whole });
      this.fragments = [];
    }
  }

  write(bytes: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** The bytes of one masked frame (to batch many frames into one write). */
  frameBytes(opcode: number, payload: Buffer): Buffer {
    return encodeFrame({ opcode, payload });
  }

  /** Whether the node still holds the server side of this client's connection. */
  heldBy(node: ApiXNode): boolean {
    const port = this.socket.localPort;
    return [...node.gateway.connections.values()].some(
      (c) => (c.transport as WsTransport).socket.remotePort === port,
    );
  }

  sendFrame(spec: FrameSpec): void {
    this.write(encodeFrame(spec));
  }

  sendText(text: string | Buffer): void {
    this.sendFrame({ opcode: Op.TEXT, payload: text });
  }

  sendJson(frame: unknown): void {
    this.sendText(JSON.stringify(frame));
  }

  /** The server's text messages, parsed. */
  get json(): Frame[] {
    const out: Frame[] = [];
    for (const m of this.messages) {
      if (m.opcode !== Op.TEXT) continue;
      try {
        out.push(JSON.parse(m.data.toString('utf8')) as Frame);
      } catch {
        // not JSON: not ours
      }
    }
    return out;
  }

  waitJson(pred: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
    return until(
      () => this.json.find(pred),
      timeoutMs,
      `a frame from the server; saw ${JSON.stringify(this.json.slice(-3))} close=${this.closeCode}`,
    );
  }

  /** Waits for the server's close frame or the end of the connection; returns the close code if any. */
  async waitClosed(timeoutMs = 15_000): Promise<number | undefined> {
    await until(() => this.closeCode !== undefined || this.ended, timeoutMs, 'the server to close');
    return this.closeCode;
  }

  async waitEnded(timeoutMs = 15_000): Promise<void> {
    await until(() => this.ended, timeoutMs, 'the server to drop the TCP connection');
  }

  /** Sends `connect` and waits for `connection.established`. */
  async connect(tok: string, extra: Record<string, unknown> = {}): Promise<Frame> {
    this.sendJson({
      type: 'connect',
      payload: {
        sessionId: `wire-${randomBytes(6).toString('hex')}`,
        clientType: 'API_CLIENT',
        authentication: { token: tok },
        subscriptions: [],
        ...extra,
      },
    });
    // Generous: the first connect of a file (JWT verification's first call, JIT) is slow on a busy machine.
    const f = await this.waitJson(
      (x) => x.type === 'connection.established' || x.type === 'connection.error',
      20_000,
    );
    assert.equal(f.type, 'connection.established', JSON.stringify(f.payload));
    return f;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a raw client, upgraded and connected with a member token of `acme` (unless told otherwise). */
export async function wireConnected(
  node: ApiXNode,
  claims: Parameters<typeof token>[0] = {},
  deflate = false,
): Promise<WireClient> {
  const port = portOf(node);
  const c = deflate ? await WireClient.openDeflate(port) : await WireClient.open(port);
  assert.equal(c.status, 101, c.responseHead);
  await c.connect(await token(claims));
  return c;
}

// ------------------------------------------------------------------ log capture

/** A writable that keeps everything a pino logger writes, for "never in a log" checks. */
export class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
}
