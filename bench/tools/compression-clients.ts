/**
 * The clients of bench/tools/compression.ts, in one process on the load core, driven over IPC: N
 * subscribers and one publisher on raw TCP sockets that speak just enough WebSocket (RFC 6455, RFC 7692)
 * to count what arrives without decoding it. A subscriber may offer permessage-deflate
 * (`client_max_window_bits`, what browsers send; the server decides on context takeover) and then
 * compresses what it sends (its `connect` or `subscribe`), as browsers compress every message; it counts a
 * delivery per event frame and the raw bytes its socket read (`socket.bytesRead`: WebSocket framing
 * included, TCP/IP headers not). One subscriber in `sampleEvery` also inflates its frames (one inflate
 * stream per connection, as a browser keeps) and records publish-to-deliver latency from the send time
 * the publisher put in the payload (`"bt":`, CLOCK_MONOTONIC, the same clock as the publisher here).
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { constants as zlibConstants, createInflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import type { InflateRaw } from 'node:zlib';
import { SignJWT } from 'jose';
import { Histogram } from '../lib/histogram.ts';
import { payloadFor } from './agent-payload.ts';
import type { SparseHistogram } from '../lib/histogram.ts';
import { decode as decodeMsgpack, encode as encodeMsgpack } from '@msgpack/msgpack';
import { nowMs, readNumber, SEND_TIME_KEY as BT } from '../lib/raw-frames.ts';

export type ServerKind = 'apix' | 'baseline';
/**
 * How the subscribers reach APIX (the publisher always uses a WebSocket with JSON): `websocket-msgpack`
 * offers `apix.v1.msgpack` (binary MessagePack frames both ways).
 */
export type SubscriberTransport = 'websocket' | 'websocket-msgpack' | 'http-stream' | 'sse';

export interface ConnectOp {
  readonly op: 'connect';
  readonly kind: ServerKind;
  readonly port: number;
  readonly count: number;
  /** Subscribers offer permessage-deflate. */
  readonly deflate: boolean;
  /** Once it is negotiated they compress what they send, as browsers do (false: as ws does under 1 KB). */
  readonly compressOut: boolean;
  readonly secret: string;
  readonly channel: string;
  /** Source addresses 127.<a>.<b>.x: fresh ones for every run (no TIME_WAIT from an earlier one). */
  readonly addressPrefix: string;
  readonly sampleEvery: number;
  readonly concurrency: number;
  /** APIX only: the subscribers' transport (default websocket). */
  readonly transport?: SubscriberTransport;
  /**
   * APIX only: the subscribers spread over this many channels (`<channel>-<k>`, subscriber i on k = i mod
   * channels), as in scenario (c); the publisher goes round-robin over them. Default 1: all on `channel`.
   */
  readonly channels?: number;
}
export interface PublishOp {
  readonly op: 'publish';
  readonly rate: number;
  readonly seconds: number;
  /** About this many bytes of agent event (agent-payload.ts); 0: the main bench's small `{bs, bq, bt}`. */
  readonly payloadBytes: number;
}
export type ClientOp =
  | ConnectOp
  | PublishOp
  | { readonly op: 'snapshot' }
  | { readonly op: 'histogram' }
  | { readonly op: 'close' };

export interface ConnectResult {
  readonly connected: number;
  readonly failed: number;
  /** Subscribers whose handshake answer accepted permessage-deflate. */
  readonly negotiated: number;
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
}
export interface PublishResult {
  readonly sent: number;
  readonly failed: number;
  readonly firstFailure: string | undefined;
  /** Monotonic ms (process.hrtime) of the first publish. */
  readonly startedAt: number;
  readonly endedAt: number;
  /** Mean size of the published payload JSON. */
  readonly payloadBytes: number;
  /** Deliveries the publishes call for: each publish times the subscribers connected to its channel. */
  readonly expected: number;
}
export interface Snapshot {
  readonly deliveries: number;
  /** Raw bytes read by the subscribers' sockets so far. */
  readonly bytes: number;
  /** Frames that arrived compressed (RSV1). */
  readonly compressedFrames: number;
  readonly lastDeliveryAt: number;
  readonly closed: number;
  readonly now: number;
}

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const BT_TEXT = BT.toString('latin1');
/** The send-time key in a MessagePack frame: fixstr of 2 bytes, "bt" (only events carry it). */
const BT_MSGPACK = Buffer.from([0xa2, 0x62, 0x74]);
const SYNC = { finishFlush: zlibConstants.Z_SYNC_FLUSH };

/** A masked client frame; the mask key is 0 (valid: the server unmasks whatever key is given). */
function clientFrame(opcode: number, data: Buffer, compressed = false): Buffer {
  const len = data.length;
  const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
  const buf = Buffer.alloc(head + len);
  buf[0] = 0x80 | (compressed ? 0x40 : 0) | opcode;
  if (len < 126) buf[1] = 0x80 | len;
  else if (len < 65536) {
    buf[1] = 0x80 | 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 0x80 | 127;
    buf.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    buf.writeUInt32BE(len >>> 0, 6);
  }
  data.copy(buf, head);
  return buf;
}

const hist = new Histogram();
let deliveries = 0;
let compressedFrames = 0;
let lastDeliveryAt = 0;
let closed = 0;
let publishFailed = 0;
let firstPublishFailure: string | undefined;
const subscribers: Array<{ readonly socket: Socket; readonly deflate: boolean }> = [];
let publisher: RawWs | undefined;

class RawWs {
  readonly socket: Socket;
  private pending: Buffer | undefined;
  private upgraded = false;
  deflate = false;
  /** The server selected `apix.v1.msgpack`: binary MessagePack frames both ways. */
  msgpack = false;
  ready = false;
  private fragments: Buffer[] = [];
  private fragmentCompressed = false;
  private inflater: InflateRaw | undefined;
  private inflateQueue: Array<{ data: Buffer; at: number }> = [];
  private inflating = false;

  constructor(
    port: number,
    localAddress: string,
    private readonly path: string,
    private readonly headers: string,
    private readonly onMessage: (
      ws: RawWs,
      text: Buffer | undefined,
      compressed: Buffer | undefined,
      at: number,
    ) => void,
    private readonly onOpen: (ws: RawWs) => void,
    private readonly onFail: (ws: RawWs, err: Error) => void,
    readonly sampled: boolean,
    private readonly compressOut: boolean,
  ) {
    this.socket = connect({ port, host: '127.0.0.1', localAddress });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${this.headers}\r\n`,
      );
    });
    this.socket.on('data', (chunk: Buffer) => this.data(chunk));
    this.socket.on('error', (err) => this.onFail(this, err));
    this.socket.on('close', () => {
      if (this.ready) closed++;
      else this.onFail(this, new Error('closed before ready'));
    });
  }

  /** A text message; compressed when deflate was negotiated, as browsers do (each message on its own). */
  send(text: string): void {
    if (this.msgpack) {
      this.socket.write(clientFrame(2, Buffer.from(encodeMsgpack(JSON.parse(text)))));
      return;
    }
    if (!this.deflate || !this.compressOut) {
      this.socket.write(clientFrame(1, Buffer.from(text)));
      return;
    }
    const raw = deflateRawSync(Buffer.from(text), SYNC);
    this.socket.write(clientFrame(1, raw.subarray(0, raw.length - 4), true));
  }

  private data(chunk: Buffer): void {
    const at = nowMs();
    let b = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    if (!this.upgraded) {
      const end = b.indexOf('\r\n\r\n');
      if (end < 0) {
        this.pending = b;
        return;
      }
      const head = b.toString('latin1', 0, end);
      if (!head.startsWith('HTTP/1.1 101')) {
        this.onFail(this, new Error(head.split('\r\n', 1)[0]));
        this.socket.destroy();
        return;
      }
      this.deflate = /\r\nsec-websocket-extensions:[^\r]*permessage-deflate/i.test(head);
      this.msgpack = /\r\nsec-websocket-protocol: *apix\.v1\.msgpack/i.test(head);
      if (this.deflate && this.sampled) {
        this.inflater = createInflateRaw();
        this.inflater.on('error', (err) => this.onFail(this, err));
      }
      this.upgraded = true;
      b = b.subarray(end + 4);
      this.onOpen(this);
    }
    let off = 0;
    while (b.length - off >= 2) {
      const b0 = b[off]!;
      let len = b[off + 1]! & 0x7f;
      let h = 2;
      if (len === 126) {
        if (b.length - off < 4) break;
        len = b.readUInt16BE(off + 2);
        h = 4;
      } else if (len === 127) {
        if (b.length - off < 10) break;
        len = b.readUInt32BE(off + 2) * 2 ** 32 + b.readUInt32BE(off + 6);
        h = 10;
      }
      if (b.length - off < h + len) break;
      this.frame(b0, b.subarray(off + h, off + h + len), at);
      off += h + len;
    }
    if (off < b.length) this.pending = Buffer.from(b.subarray(off));
  }

  private frame(b0: number, payload: Buffer, at: number): void {
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (opcode === 9) {
      this.socket.write(clientFrame(10, payload));
      return;
    }
    if (opcode === 8) {
      this.socket.end();
      return;
    }
    if (opcode === 10) return;
    if (opcode !== 0) this.fragmentCompressed = (b0 & 0x40) !== 0;
    if (!fin) {
      this.fragments.push(Buffer.from(payload));
      return;
    }
    const data = this.fragments.length > 0 ? Buffer.concat([...this.fragments, payload]) : payload;
    this.fragments = [];
    if (this.fragmentCompressed) this.onMessage(this, undefined, data, at);
    else this.onMessage(this, data, undefined, at);
  }

  /** Inflates in order on this connection's own stream (a sampled subscriber), then calls `done`. */
  inflate(data: Buffer, at: number, done: (text: Buffer, at: number) => void): void {
    this.inflateQueue.push({ data: Buffer.concat([data, TAIL]), at });
    const next = (): void => {
      if (this.inflating || this.inflateQueue.length === 0 || !this.inflater) return;
      this.inflating = true;
      const { data: input, at: arrived } = this.inflateQueue.shift()!;
      const chunks: Buffer[] = [];
      const onData = (c: Buffer): void => void chunks.push(c);
      const inflater = this.inflater;
      inflater.on('data', onData);
      inflater.write(input);
      inflater.flush(zlibConstants.Z_SYNC_FLUSH, () => {
        inflater.off('data', onData);
        this.inflating = false;
        done(Buffer.concat(chunks), arrived);
        next();
      });
    };
    next();
  }
}

function recordLatency(text: Buffer, at: number): void {
  const i = text.indexOf(BT);
  if (i >= 0) hist.record(at - readNumber(text, i + BT.length));
}

/** A sampled MessagePack subscriber decodes its events (the others only look for the key's bytes). */
function recordMsgpackLatency(frame: Buffer, at: number): void {
  const bt = (decodeMsgpack(frame) as { payload?: { bt?: unknown } }).payload?.bt;
  if (typeof bt === 'number') hist.record(at - bt);
}

/** A frame's envelope as JSON text, whatever the encoding (handshakes and replies only, not the hot path). */
function frameText(ws: RawWs, data: Buffer): string {
  return ws.msgpack ? JSON.stringify(decodeMsgpack(data)) : data.toString();
}

function onSubscriberMessage(
  ws: RawWs,
  text: Buffer | undefined,
  compressed: Buffer | undefined,
  at: number,
): void {
  if (!ws.ready) return; // handled by the handshake listener
  if (ws.msgpack) {
    if (text!.indexOf(BT_MSGPACK) < 0) return; // a heartbeat or other control frame
    deliveries++;
    lastDeliveryAt = at;
    if (ws.sampled) recordMsgpackLatency(text!, at);
    return;
  }
  if (compressed !== undefined) {
    // Only events are large enough to be compressed (control frames are under the threshold).
    compressedFrames++;
    deliveries++;
    lastDeliveryAt = at;
    if (ws.sampled) ws.inflate(compressed, at, recordLatency);
    return;
  }
  if (text!.indexOf(BT) < 0) return; // a heartbeat or other control frame
  deliveries++;
  lastDeliveryAt = at;
  if (ws.sampled) recordLatency(text!, at);
}

async function token(secret: string, sub: string, roles: string[]): Promise<string> {
  return new SignJWT({ org: 'bench', roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(secret));
}

/** Opens one connection and completes the server's handshake (APIX `connect`, the baseline's `subscribe`). */
function open(
  op: ConnectOp,
  index: number,
  role: 'subscriber' | 'publisher',
  jwt: string | undefined,
): Promise<RawWs> {
  const apix = op.kind === 'apix';
  const msgpack = role === 'subscriber' && op.transport === 'websocket-msgpack';
  const headers =
    (apix ? `Sec-WebSocket-Protocol: ${msgpack ? 'apix.v1.msgpack' : 'apix.v1.json'}\r\n` : '') +
    (op.deflate && role === 'subscriber'
      ? 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n'
      : '');
  const local = `${op.addressPrefix}.${1 + Math.floor(index / 10_000)}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => fail(ws, new Error('handshake timeout (30 s)')), 30_000);
    const fail = (w: RawWs, err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      w.socket.destroy();
      reject(err);
    };
    const ready = (w: RawWs): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      w.ready = true;
      resolve(w);
    };
    const onMessage = (
      w: RawWs,
      text: Buffer | undefined,
      compressed: Buffer | undefined,
      at: number,
    ): void => {
      if (w.ready) {
        if (role === 'subscriber') onSubscriberMessage(w, text, compressed, at);
        else {
          const s = frameText(w, text ?? inflateRawSync(Buffer.concat([compressed!, TAIL]), SYNC));
          if (s.includes('"message.failed"') || s.includes('"connection.error"')) {
            publishFailed++;
            firstPublishFailure ??= s.slice(0, 300);
          }
        }
        return;
      }
      // A sampled subscriber's first frames go through its inflate stream too (the context carries over).
      if (compressed !== undefined && w.sampled) w.inflate(compressed, at, (t) => handshake(w, t.toString()));
      else handshake(w, frameText(w, text ?? inflateRawSync(Buffer.concat([compressed!, TAIL]), SYNC)));
    };
    const handshake = (w: RawWs, s: string): void => {
      if (apix) {
        if (s.includes('"connection.established"')) {
          if (/"denied":\[\{/.test(s)) fail(w, new Error(`subscription denied: ${s.slice(0, 200)}`));
          else ready(w);
        } else if (s.includes('"connection.error"')) fail(w, new Error(s.slice(0, 200)));
      } else if (s.includes('"subscribed"')) ready(w);
    };
    const onOpen = (w: RawWs): void => {
      if (apix)
        w.send(
          JSON.stringify({
            type: 'connect',
            payload: {
              sessionId: `${role}-${process.pid}-${index}`,
              clientType: role === 'publisher' ? 'INTERNAL_SERVICE' : 'WEB_APP',
              authentication: { token: jwt },
              subscriptions: role === 'subscriber' ? [channelOf(op, index)] : [],
            },
          }),
        );
      else if (role === 'subscriber')
        w.send(JSON.stringify({ type: 'subscribe', channels: [channelOf(op, index)] }));
      else ready(w);
    };
    const ws = new RawWs(
      op.port,
      local,
      apix ? '/v1/ws' : '/',
      headers,
      onMessage,
      onOpen,
      fail,
      role === 'subscriber' && index % op.sampleEvery === 0,
      op.compressOut,
    );
  });
}

/**
 * A subscriber over HTTP streaming or SSE on a raw TCP socket (so `bytesRead` counts what the wire
 * carried: HTTP headers and chunked framing included). Every frame is one chunk ending in a newline:
 * a line holding the publisher's send time is a delivery.
 */
async function openStream(
  op: ConnectOp,
  index: number,
  jwt: string,
): Promise<{ socket: Socket; deflate: boolean }> {
  const sampled = index % op.sampleEvery === 0;
  const frame = {
    type: 'connect',
    payload: {
      sessionId: `subscriber-${process.pid}-${index}`,
      clientType: 'WEB_APP',
      authentication: { token: jwt },
      subscriptions: [channelOf(op, index)],
    },
  };
  let request: string;
  if (op.transport === 'sse') {
    const t = await fetch(`http://127.0.0.1:${op.port}/v1/sse/ticket`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${jwt}` },
    });
    frame.payload.authentication.token = ((await t.json()) as { ticket: string }).ticket;
    const q = Buffer.from(JSON.stringify(frame)).toString('base64url');
    request = `GET /v1/sse?connect=${q} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`;
  } else {
    const body = JSON.stringify(frame);
    request =
      `POST /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  }
  const local = `${op.addressPrefix}.${1 + Math.floor(index / 10_000)}`;
  return new Promise((resolve, reject) => {
    const socket = connect({ port: op.port, host: '127.0.0.1', localAddress: local });
    let ready = false;
    let rest = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('stream handshake timeout (30 s)'));
    }, 30_000);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(request));
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (!ready) reject(err);
    });
    socket.on('close', () => {
      if (ready) closed++;
    });
    socket.on('data', (chunk: Buffer) => {
      const at = nowMs();
      const lines = (rest + chunk.toString('latin1')).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (!ready) {
          if (line.includes('"connection.established"')) {
            ready = true;
            clearTimeout(timer);
            resolve({ socket, deflate: false });
          } else if (line.includes('"connection.error"') || /^HTTP\/1\.1 [^2]/.test(line)) {
            clearTimeout(timer);
            socket.destroy();
            reject(new Error(line.slice(0, 200)));
          }
          continue;
        }
        if (!line.includes(BT_TEXT)) continue; // a heartbeat, a chunk size, an SSE id line
        deliveries++;
        lastDeliveryAt = at;
        if (sampled) recordLatency(Buffer.from(line, 'latin1'), at);
      }
    });
  });
}

/** Scenario (c)'s layout: subscriber (or publish) i on channel i mod channels. */
function channelOf(op: { channel: string; channels?: number }, i: number): string {
  const n = op.channels ?? 1;
  return n > 1 ? `${op.channel}-${i % n}` : op.channel;
}
let channelCount = 1;
/** Subscribers connected per channel index. */
const perChannel: number[] = [];

async function connectAll(op: ConnectOp): Promise<ConnectResult> {
  const started = nowMs();
  channelCount = Math.max(1, op.channels ?? 1);
  const apix = op.kind === 'apix';
  // One token per 100 subscribers (APIX_MAX_CONNECTIONS_PER_USER is off for the run).
  const tokens: string[] = [];
  if (apix)
    for (let k = 0; k < Math.ceil(op.count / 100); k++)
      tokens.push(await token(op.secret, `user-${k}`, ['member']));
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async (): Promise<void> => {
    while (next < op.count) {
      const i = next++;
      try {
        const jwt = tokens[Math.floor(i / 100)];
        subscribers.push(
          apix && (op.transport === 'http-stream' || op.transport === 'sse')
            ? await openStream(op, i, jwt!)
            : await open(op, i, 'subscriber', jwt),
        );
        const k = i % channelCount;
        perChannel[k] = (perChannel[k] ?? 0) + 1;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(op.concurrency, op.count) }, worker));
  publisher = await open(
    op,
    op.count,
    'publisher',
    apix ? await token(op.secret, 'publisher', ['service']) : undefined,
  );
  return {
    connected: subscribers.length,
    failed,
    negotiated: subscribers.filter((s) => s.deflate).length,
    firstError,
    elapsedMs: nowMs() - started,
  };
}

async function publish(op: PublishOp, kind: ServerKind, channel: string): Promise<PublishResult> {
  const pub = publisher;
  if (!pub) throw new Error('no publisher');
  publishFailed = 0;
  firstPublishFailure = undefined;
  const total = Math.max(1, Math.round(op.rate * op.seconds));
  const startedAt = nowMs();
  let sent = 0;
  let payloadBytes = 0;
  let expected = 0;
  void kind;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((nowMs() - startedAt) * op.rate) / 1000) + 1);
      while (sent < due) {
        const bt = Number(nowMs().toFixed(3));
        const payload =
          op.payloadBytes > 0 ? payloadFor(sent, op.payloadBytes, bt) : `{"bs":0,"bq":${sent},"bt":${bt}}`;
        payloadBytes += payload.length;
        const to = channelOf({ channel, channels: channelCount }, sent);
        expected += channelCount > 1 ? (perChannel[sent % channelCount] ?? 0) : subscribers.length;
        // The small event is the main bench's (`bench_event`); the agent event a `tool_call_result`.
        const type = op.payloadBytes > 0 ? 'tool_call_result' : 'bench_event';
        pub.send(`{"type":"${type}","channel":${JSON.stringify(to)},"payload":${payload}}`);
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  const endedAt = nowMs();
  await new Promise((r) => setTimeout(r, 200)); // replies to the last publishes
  return {
    sent,
    failed: publishFailed,
    firstFailure: firstPublishFailure,
    startedAt,
    endedAt,
    payloadBytes: Math.round(payloadBytes / Math.max(1, sent)),
    expected,
  };
}

function snapshot(): Snapshot {
  let bytes = 0;
  for (const s of subscribers) bytes += s.socket.bytesRead;
  return { deliveries, bytes, compressedFrames, lastDeliveryAt, closed, now: nowMs() };
}

let channel = '';
let kind: ServerKind = 'apix';
async function handle(op: ClientOp): Promise<unknown> {
  switch (op.op) {
    case 'connect':
      channel = op.channel;
      kind = op.kind;
      return connectAll(op);
    case 'publish':
      return publish(op, kind, channel);
    case 'snapshot':
      return snapshot();
    case 'histogram':
      return hist.toSparse() satisfies SparseHistogram;
    case 'close':
      for (const s of subscribers) s.socket.destroy();
      publisher?.socket.destroy();
      setTimeout(() => process.exit(0), 50);
      return null;
  }
}

process.on('message', (msg: { id: number; op: ClientOp }) => {
  handle(msg.op).then(
    (result) => process.send?.({ id: msg.id, ok: true, result }),
    (err: unknown) => process.send?.({ id: msg.id, ok: false, error: (err as Error).message }),
  );
});
process.on('disconnect', () => process.exit(0));
