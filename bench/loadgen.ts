/**
 * A load-generator process: raw `ws` clients, driven over IPC by bench/run.ts (see lib/messages.ts).
 * Subscribers record publish-to-deliver latency from the send time the publisher put in each event
 * (`process.hrtime`, CLOCK_MONOTONIC: one clock for every process on the machine). The publisher
 * publishes open-loop at a fixed rate: its schedule never waits for the server, so a slow server shows
 * up as latency and loss, not as a lower offered load.
 */
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { Histogram } from './lib/histogram.ts';
import { PROTOCOLS } from './lib/protocols.ts';
import type { ClientProtocol, ConnSpec } from './lib/protocols.ts';
import type {
  ConnectRequest,
  ConnectResult,
  FromLoadgen,
  PublishRequest,
  PublishResult,
  StatsResult,
  ToLoadgen,
} from './lib/messages.ts';
import { nowMs, readNumber, SEND_TIME_KEY as BT } from './lib/raw-frames.ts';

const BS = Buffer.from('"bs":');
const ID = Buffer.from('"id":"');
const CHANNEL = Buffer.from('"channel":"');
const RETRY = Buffer.from('"retryCount"');

const hist = new Histogram();
let step = -1;
let received = 0;
let redelivered = 0;
let stale = 0;
let closed = 0;
let ready = 0;

const conns: WebSocket[] = [];

/**
 * Acks are batched per connection and sent once per event-loop turn (one frame for every event that
 * arrived in the same read), as a client library would: one frame per event would run into the
 * gateway's per-connection frame limit at high rates.
 */
const pendingAcks = new Map<WebSocket, { channel: string; ids: string[]; proto: ClientProtocol }>();
let ackFlushScheduled = false;
function flushAcks(): void {
  ackFlushScheduled = false;
  for (const [ws, p] of pendingAcks) ws.send(p.proto.ackFrame(p.channel, p.ids));
  pendingAcks.clear();
}
function queueAck(ws: WebSocket, proto: ClientProtocol, channel: string, id: string): void {
  const p = pendingAcks.get(ws);
  if (p) p.ids.push(id);
  else pendingAcks.set(ws, { channel, ids: [id], proto });
  if (!ackFlushScheduled) {
    ackFlushScheduled = true;
    setImmediate(flushAcks);
  }
}
/** The publisher's connections: publishes go round robin, so each stays under per-connection limits. */
const publisher: {
  sockets: WebSocket[];
  proto: ClientProtocol | undefined;
  failed: number;
  firstFailure?: string;
} = {
  sockets: [],
  proto: undefined,
  failed: 0,
};

function send(msg: FromLoadgen): void {
  process.send?.(msg);
}

/** The string value after `"key":"` (event ids and channel names need no unescaping). */
function readString(buf: Buffer, key: Buffer): string {
  const at = buf.indexOf(key);
  if (at < 0) return '';
  const start = at + key.length;
  return buf.toString('latin1', start, buf.indexOf(34, start));
}

function address(n: number): string {
  return `127.${Math.floor(n / 254 / 254) % 254}.${Math.floor(n / 254) % 254}.${1 + (n % 254)}`;
}

async function mintTokens(req: ConnectRequest): Promise<Array<string | undefined>> {
  const proto = PROTOCOLS[req.target.kind];
  const out: Array<string | undefined> = [];
  if (!proto.authenticates) return new Array<undefined>(req.count).fill(undefined);
  const key = new TextEncoder().encode(req.target.jwtSecret);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  for (let k = 0; k < req.count; k++) {
    const i = req.firstIndex + k;
    const roles = req.role === 'publisher' ? ['service'] : ['member'];
    out.push(
      await new SignJWT({ org: req.target.org, roles })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(req.role === 'publisher' ? `bench-publisher-${i}` : `bench-user-${i}`)
        .setExpirationTime(exp)
        .sign(key),
    );
  }
  return out;
}

function openOne(
  req: ConnectRequest,
  proto: ClientProtocol,
  spec: ConnSpec,
  url: string,
  localAddress: string,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      localAddress,
      handshakeTimeout: 30_000,
    });
    let isReady = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('handshake timeout (30 s)'));
    }, 30_000);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    ws.on('open', () => {
      for (const f of proto.openFrames(spec)) ws.send(f);
    });
    ws.on('error', (err) => {
      if (!isReady) fail(err);
    });
    ws.on('close', (code, reason) => {
      if (isReady) {
        closed++;
        ready--;
      } else fail(new Error(`closed ${code} ${reason.toString()}`));
    });
    const onReady = (data: Buffer): void => {
      const bt = data.indexOf(BT);
      if (bt < 0) {
        const reply = proto.control(data.toString());
        if (reply !== undefined) ws.send(reply);
        return;
      }
      if (readNumber(data, data.indexOf(BS) + BS.length) !== step) {
        stale++;
        return;
      }
      if (data.indexOf(RETRY) >= 0) redelivered++;
      else {
        hist.record(nowMs() - readNumber(data, bt + BT.length));
        received++;
      }
      if (spec.ack) queueAck(ws, proto, readString(data, CHANNEL), readString(data, ID));
    };
    const onPublisher = (data: Buffer): void => {
      const frame = data.toString();
      const reply = proto.control(frame);
      if (reply !== undefined) ws.send(reply);
      else if (proto.isPublishFailure(frame)) {
        publisher.failed++;
        publisher.firstFailure ??= frame.slice(0, 300);
      }
    };
    ws.on('message', (data: Buffer) => {
      if (isReady) {
        if (req.role === 'publisher') onPublisher(data);
        else onReady(data);
        return;
      }
      let next;
      try {
        next = proto.handshake(data.toString(), spec);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (next.state === 'ready') {
        isReady = true;
        clearTimeout(timer);
        resolve(ws);
      } else if (next.send !== undefined) ws.send(next.send);
    });
  });
}

async function connect(req: ConnectRequest): Promise<ConnectResult> {
  const proto = PROTOCOLS[req.target.kind];
  const tokens = await mintTokens(req);
  const started = nowMs();
  let next = 0;
  let failed = 0;
  let opened = 0;
  let retried = 0;
  let firstError: string | undefined;
  const progress = setInterval(() => send({ op: 'progress', connected: ready, failed }), 500);
  const worker = async (): Promise<void> => {
    while (next < req.count) {
      const k = next++;
      const i = req.firstIndex + k;
      const channels = req.channelGroups.map((g) => g[i % g.length]!);
      const spec: ConnSpec = { index: i, channels, ack: req.ack, token: tokens[k] };
      const url = req.target.urls[i % req.target.urls.length]! + proto.path;
      try {
        let ws: WebSocket | undefined;
        for (let attempt = 0; ws === undefined; attempt++) {
          try {
            ws = await openOne(
              req,
              proto,
              spec,
              url,
              address(req.addressBase + Math.floor(i / req.perAddress)),
            );
          } catch (err) {
            if (attempt >= req.retries) throw err;
            retried++;
            await new Promise((r) => setTimeout(r, 500 + Math.random() * 1000));
          }
        }
        ready++;
        opened++;
        if (req.role === 'publisher') {
          publisher.sockets.push(ws);
          publisher.proto = proto;
        } else conns.push(ws);
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(req.concurrency, req.count)) }, worker));
  clearInterval(progress);
  send({ op: 'progress', connected: ready, failed });
  return { connected: opened, failed, retried, elapsedMs: nowMs() - started, firstError };
}

function publish(req: PublishRequest): Promise<PublishResult> {
  const pub = publisher;
  const proto = pub.proto;
  if (!proto || pub.sockets.length === 0) return Promise.reject(new Error('no publisher connection'));
  pub.failed = 0;
  pub.firstFailure = undefined;
  const counts = new Array<number>(req.channels.length).fill(0);
  const total = Math.max(1, Math.round((req.rate * req.durationMs) / 1000));
  const started = nowMs();
  let sent = 0;
  let maxBufferedBytes = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const elapsed = nowMs() - started;
      const due = Math.min(total, Math.floor((elapsed * req.rate) / 1000) + 1);
      while (sent < due) {
        const k = req.random ? Math.floor(Math.random() * req.channels.length) : sent % req.channels.length;
        const payload = `{"bs":${req.step},"bq":${sent},"bt":${nowMs().toFixed(3)}}`;
        const ws = pub.sockets[sent % pub.sockets.length]!;
        ws.send(proto.publishFrame(req.channels[k]!, 'bench_event', payload));
        maxBufferedBytes = Math.max(maxBufferedBytes, ws.bufferedAmount);
        counts[k]!++;
        sent++;
      }
      if (sent >= total) {
        // Replies to the last publishes are still on their way: give them a moment.
        setTimeout(() => {
          resolve({
            counts,
            sent,
            failed: pub.failed,
            firstFailure: pub.firstFailure,
            elapsedMs: nowMs() - started,
            maxBufferedBytes,
          });
        }, 100);
      } else setTimeout(tick, 1);
    };
    tick();
  });
}

function stats(withHistogram: boolean): StatsResult {
  return {
    connected: ready,
    received,
    redelivered,
    stale,
    closed,
    histogram: withHistogram ? hist.toSparse() : undefined,
  };
}

async function handle(msg: ToLoadgen): Promise<ConnectResult | StatsResult | PublishResult | null> {
  switch (msg.op) {
    case 'connect':
      return connect(msg);
    case 'reset':
      step = msg.step;
      received = 0;
      redelivered = 0;
      stale = 0;
      hist.reset();
      return null;
    case 'stats':
      return stats(msg.histogram);
    case 'publish':
      return publish(msg);
    case 'close':
      for (const ws of conns) ws.terminate();
      for (const ws of publisher.sockets) ws.terminate();
      setTimeout(() => process.exit(0), 50);
      return null;
  }
}

process.on('message', (msg: ToLoadgen) => {
  handle(msg).then(
    (result) => send({ op: 'reply', id: msg.id, ok: true, result }),
    (err: unknown) => send({ op: 'reply', id: msg.id, ok: false, error: (err as Error).message }),
  );
});
// The orchestrator owns this process: if it goes away, so do we.
process.on('disconnect', () => process.exit(0));
