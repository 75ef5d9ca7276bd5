/**
 * Bench scenario (g) "agent streams" (issue 16, docs/streams.md): `node --import tsx bench/streams.ts
 * [--quick] [--no-pin] [--parts=fanout,answer,late]`. Starts APIX (`apix serve`, memory engines, rate limits off as in bench/run.ts) on
 * core 0, drives it from this process (core 1) with raw WebSocket clients, and prints a JSON report
 * (also written to bench/results/streams-<quick|full>.json):
 *
 * 1. `fanout`: S concurrent streams (1,000; quick 200), each 20 appends/s, each to 10 subscribers (10
 *    subscriber connections subscribed to every stream's channel): p50/p99 from append to subscriber
 *    (every piece carries its send time) and the server's CPU (% of one core).
 * 2. `answer`: one answer of T tokens (2,000; quick 500) at 100 tokens/s to 100 subscribers, streamed
 *    with APIX_STREAM_FLUSH_MS=0 and with the default window, against the same tokens as T plain events:
 *    server CPU seconds of each, and the ratios.
 * 3. `late`: J late joiners (200) of a finished T-token answer (its compacted event) against J joiners of
 *    a channel holding one plain event of the same size: server CPU per join, and the ratio.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { Histogram } from './lib/histogram.ts';
import {
  cores,
  cpuSeconds,
  freePort,
  killAll,
  processTree,
  sleep,
  spawnPinned,
  stop,
  waitHttp,
} from './lib/proc.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SECRET = 'bench-streams-secret-0123456789abcdef';
const args = new Set(process.argv.slice(2));
const QUICK = args.has('--quick');
const PIN = !args.has('--no-pin');
/** `--parts fanout,answer,late` (default: all three). */
const partsArg = process.argv.slice(2).find((a) => a.startsWith('--parts='));
const PARTS = new Set((partsArg?.slice('--parts='.length) ?? 'fanout,answer,late').split(','));
const SIZES = {
  streams: QUICK ? 200 : 1000,
  appendsPerSec: 20,
  fanoutSeconds: QUICK ? 5 : 10,
  tokens: QUICK ? 500 : 2000,
  tokensPerSec: 100,
  answerSubscribers: 100,
  lateJoiners: QUICK ? 500 : 1000,
};
const now = (): number => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------ server and clients

async function startApix(
  tmp: string,
  flushMs: number | undefined,
): Promise<{ url: string; pids: () => number[]; close: () => Promise<void> }> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    APIX_PORT: String(port),
    APIX_HOST: '127.0.0.1',
    APIX_JWT_SECRET: SECRET,
    APIX_LOG_LEVEL: 'warn',
    APIX_DATA_DIR: mkdtempSync(join(tmp, 'data-')),
    APIX_MAX_CONNECTIONS_PER_ADDRESS: '0',
    APIX_MAX_CONNECTIONS_PER_USER: '0',
    APIX_MAX_CHANNELS_PER_CONNECTION: '5000',
    APIX_MAX_OPEN_STREAMS: '5000',
  };
  for (const limit of ['CONNECTION', 'PUBLISH', 'CHANNEL', 'ORG_PUBLISH', 'ORG_SUBSCRIBE', 'ADDRESS'])
    env[`APIX_RATE_${limit}_PER_SEC`] = '0';
  if (flushMs !== undefined) env.APIX_STREAM_FLUSH_MS = String(flushMs);
  delete env.REDIS_URL;
  delete env.DATABASE_URL;
  const child = spawnPinned(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cpu: cores(PIN).server,
    cwd: ROOT,
    env,
    logFile: join(tmp, `apix-${port}.log`),
  });
  await waitHttp(`http://127.0.0.1:${port}/healthz`, child, 90_000);
  return {
    url: `ws://127.0.0.1:${port}/v1/ws`,
    pids: () => processTree(child.pid!),
    close: () => stop(child),
  };
}

type Frame = { type: string; channel?: string; id?: string; payload?: any; metadata?: any };

class Client {
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  onFrame: ((f: Frame) => void) | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      if (f.type === 'heartbeat.ping')
        ws.send(JSON.stringify({ type: 'heartbeat.pong', payload: { ts: f.payload.ts } }));
      this.onFrame?.(f);
      const i = this.waiters.findIndex((w) => w.pred(f));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(f);
    });
  }
  static async open(url: string, sub: string, roles: string[]): Promise<Client> {
    const token = await new SignJWT({ org: 'bench', roles })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(sub)
      .setExpirationTime('2h')
      .sign(new TextEncoder().encode(SECRET));
    const ws = new WebSocket(url, 'apix.v1.json', { perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const c = new Client(ws);
    const est = c.next((f) => f.type.startsWith('connection.'));
    c.send({
      type: 'connect',
      payload: {
        sessionId: `${sub}-${Math.random()}`,
        clientType: 'API_CLIENT',
        authentication: { token },
        subscriptions: [],
      },
    });
    const f = await est;
    if (f.type !== 'connection.established') throw new Error(JSON.stringify(f));
    return c;
  }
  send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }
  next(pred: (f: Frame) => boolean): Promise<Frame> {
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
  async request(frame: Frame, id: string): Promise<Frame> {
    const reply = this.next((f) => f.metadata?.correlation_id === id);
    this.send({ ...frame, metadata: { correlation_id: id } });
    return reply;
  }
  async subscribe(channels: string[], replayLast?: number): Promise<void> {
    for (let i = 0; i < channels.length; i += 1000) {
      const payload: Record<string, unknown> = { channels: channels.slice(i, i + 1000) };
      if (replayLast) payload.replay = { last: replayLast };
      const r = await this.request({ type: 'subscribe', payload }, `sub-${i}-${Math.random()}`);
      if (r.type !== 'subscription.added' || r.payload.denied.length > 0) throw new Error(JSON.stringify(r));
    }
  }
  close(): void {
    this.ws.terminate();
  }
}

async function openMany(url: string, n: number, sub: string, roles: string[]): Promise<Client[]> {
  const out: Client[] = [];
  for (let i = 0; i < n; i += 50)
    out.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, (_, k) => Client.open(url, `${sub}${i + k}`, roles)),
      )),
    );
  return out;
}

async function startStream(pub: Client, channel: string, streamId: string): Promise<void> {
  const r = await pub.request(
    { type: 'stream.start', channel, payload: { streamId, eventType: 'agent_message' } },
    `st-${channel}-${streamId}`,
  );
  if (r.type !== 'message.sent') throw new Error(JSON.stringify(r));
}

async function endStream(pub: Client, channel: string, streamId: string): Promise<Frame> {
  return pub.request(
    { type: 'stream.end', channel, payload: { streamId, status: 'complete' } },
    `end-${channel}-${streamId}`,
  );
}

/** Server CPU seconds used while `work` runs. */
async function cpuOf(
  pids: () => number[],
  work: () => Promise<void>,
): Promise<{ cpuSeconds: number; wallSeconds: number }> {
  const c0 = cpuSeconds(pids());
  const t0 = now();
  await work();
  return { cpuSeconds: cpuSeconds(pids()) - c0, wallSeconds: (now() - t0) / 1000 };
}

// ------------------------------------------------------------------ 1. fan-out of many streams

async function fanout(tmp: string): Promise<Record<string, unknown>> {
  const server = await startApix(tmp, undefined);
  try {
    const S = SIZES.streams;
    const channels = Array.from({ length: S }, (_, i) => `agent:g${i}`);
    const subs = await openMany(server.url, 10, 'reader', ['member']);
    const hist = new Histogram();
    let pieces = 0;
    for (const s of subs) {
      s.onFrame = (f) => {
        if (f.type !== 'stream.append') return;
        const t = now();
        for (const part of (f.payload.text as string).split(';')) {
          if (part === '') continue;
          hist.record(Math.max(0, t - Number(part)));
          pieces++;
        }
      };
      await s.subscribe(channels);
    }
    const pubs = await openMany(server.url, Math.ceil(S / 100), 'agent', ['service']);
    await Promise.all(channels.map((ch, i) => startStream(pubs[i % pubs.length]!, ch, 'g')));
    await sleep(500);
    let sent = 0;
    const measured = await cpuOf(server.pids, async () => {
      const t0 = now();
      const end = t0 + SIZES.fanoutSeconds * 1000;
      const perMs = (S * SIZES.appendsPerSec) / 1000;
      // Each stream appends appendsPerSec times a second, round robin; a late tick catches up (the offered rate holds).
      while (now() < end) {
        const due = Math.floor((now() - t0) * perMs);
        for (; sent < due; sent++) {
          const i = sent % S;
          pubs[i % pubs.length]!.send({
            type: 'stream.append',
            channel: channels[i],
            payload: { streamId: 'g', text: `${now()};` },
          });
        }
        await sleep(5);
      }
    });
    await sleep(1500);
    await Promise.all(channels.map((ch, i) => endStream(pubs[i % pubs.length]!, ch, 'g')));
    for (const c of [...subs, ...pubs]) c.close();
    const p = hist.percentiles();
    return {
      streams: S,
      subscribersPerStream: 10,
      appendsPerSecPerStream: SIZES.appendsPerSec,
      appendsSent: sent,
      appendsPerSec: Math.round(sent / measured.wallSeconds),
      piecesReceived: pieces,
      expectedPieces: sent * 10,
      p50Ms: round(p.p50),
      p99Ms: round(p.p99),
      maxMs: round(p.max),
      serverCpuPercent: round((100 * measured.cpuSeconds) / measured.wallSeconds),
      flushMs: 40,
    };
  } finally {
    await server.close();
  }
}

// ------------------------------------------------------------------ 2. one answer, streamed vs plain

async function answer(
  tmp: string,
  flushMs: number | undefined,
  plain: boolean,
): Promise<Record<string, unknown>> {
  const server = await startApix(tmp, flushMs);
  try {
    const channel = 'agent:answer';
    const subs = await openMany(server.url, SIZES.answerSubscribers, 'reader', ['member']);
    let frames = 0;
    for (const s of subs) {
      s.onFrame = (f) => {
        if (f.channel === channel) frames++;
      };
      await s.subscribe([channel]);
    }
    const [pub] = await openMany(server.url, 1, 'agent', ['service']);
    if (!plain) await startStream(pub!, channel, 'a');
    await sleep(300);
    const measured = await cpuOf(server.pids, async () => {
      const t0 = now();
      for (let i = 0; i < SIZES.tokens; i++) {
        const text = `tok${i} `;
        if (plain)
          pub!.send({
            type: 'agent_message',
            channel,
            payload: { streamId: 'a', text },
            metadata: { correlation_id: `p${i}` },
          });
        else pub!.send({ type: 'stream.append', channel, payload: { streamId: 'a', text } });
        const due = t0 + ((i + 1) * 1000) / SIZES.tokensPerSec;
        const wait = due - now();
        if (wait > 0) await sleep(wait);
      }
      if (!plain) await endStream(pub!, channel, 'a');
      await sleep(500);
    });
    for (const c of [...subs, pub!]) c.close();
    return {
      mode: plain ? 'plain events' : `streamed, flush ${flushMs ?? 'default (40)'} ms`,
      tokens: SIZES.tokens,
      subscribers: SIZES.answerSubscribers,
      framesDelivered: frames,
      serverCpuSeconds: round(measured.cpuSeconds),
    };
  } finally {
    await server.close();
  }
}

// ------------------------------------------------------------------ 3. late joiners

async function late(tmp: string): Promise<Record<string, unknown>> {
  const server = await startApix(tmp, undefined);
  try {
    const [pub] = await openMany(server.url, 1, 'agent', ['service']);
    const text = Array.from({ length: SIZES.tokens }, (_, i) => `tok${i} `);
    await startStream(pub!, 'agent:done', 'a');
    for (const t of text)
      pub!.send({ type: 'stream.append', channel: 'agent:done', payload: { streamId: 'a', text: t } });
    await endStream(pub!, 'agent:done', 'a');
    const sent = await pub!.request(
      {
        type: 'agent_message',
        channel: 'agent:plain',
        payload: { streamId: 'a', text: text.join(''), seq: SIZES.tokens, status: 'complete' },
      },
      'plain',
    );
    if (sent.type !== 'message.sent') throw new Error(JSON.stringify(sent));
    const joiners = await openMany(server.url, SIZES.lateJoiners * 2, 'late', ['member']);
    const joinAll = async (channel: string, clients: Client[]): Promise<void> => {
      await Promise.all(
        clients.map(async (c) => {
          const got = c.next((f) => f.channel === channel && f.type === 'agent_message');
          await c.subscribe([channel], 1);
          const f = await got;
          if ((f.payload.text as string).length !== text.join('').length) throw new Error('short text');
        }),
      );
    };
    await sleep(300);
    const streamed = await cpuOf(server.pids, () =>
      joinAll('agent:done', joiners.slice(0, SIZES.lateJoiners)),
    );
    const plainJoin = await cpuOf(server.pids, () =>
      joinAll('agent:plain', joiners.slice(SIZES.lateJoiners)),
    );
    for (const c of [...joiners, pub!]) c.close();
    return {
      joiners: SIZES.lateJoiners,
      textBytes: text.join('').length,
      compactedCpuMsPerJoin: round((1000 * streamed.cpuSeconds) / SIZES.lateJoiners),
      plainCpuMsPerJoin: round((1000 * plainJoin.cpuSeconds) / SIZES.lateJoiners),
      ratio: plainJoin.cpuSeconds > 0 ? round(streamed.cpuSeconds / plainJoin.cpuSeconds) : null,
    };
  } finally {
    await server.close();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'apix-bench-g-'));
  process.on('SIGINT', () => {
    killAll();
    process.exit(130);
  });
  try {
    const report: Record<string, unknown> = { scenario: 'g', quick: QUICK, sizes: SIZES };
    if (PARTS.has('fanout')) {
      console.error('(g) fan-out of many streams...');
      report.fanout = await fanout(tmp);
      console.error(JSON.stringify(report.fanout));
    }
    if (PARTS.has('answer')) await answers(tmp, report);
    if (PARTS.has('late')) {
      console.error('(g) late joiners...');
      report.late = await late(tmp);
    }
    console.log(JSON.stringify(report, null, 2));
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    const name = `streams-${QUICK ? 'quick' : 'full'}${partsArg ? `-${[...PARTS].join('-')}` : ''}.json`;
    writeFileSync(join(ROOT, 'bench', 'results', name), `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function answers(tmp: string, report: Record<string, unknown>): Promise<void> {
  console.error('(g) one answer: streamed (flush 0, default) and plain events...');
  const flush0 = await answer(tmp, 0, false);
  const flushDefault = await answer(tmp, undefined, false);
  const plain = await answer(tmp, undefined, true);
  const plainCpu = plain.serverCpuSeconds as number;
  report.answer = {
    runs: [flush0, flushDefault, plain],
    ratioFlush0: round((flush0.serverCpuSeconds as number) / plainCpu),
    ratioFlushDefault: round((flushDefault.serverCpuSeconds as number) / plainCpu),
  };
  console.error(JSON.stringify(report.answer));
}

await main();
