/**
 * Soak (issue 8 item 3): real gateway processes under moderate traffic with connection churn for
 * `--minutes`, sampled every `--sample-sec` from each node's `GET /v1/admin/internals?gc=1` (heap after a
 * forced GC, RSS, open handles, the gateway's counters and every collection's size) and from Redis
 * (`INFO memory`, `DBSIZE`); then every client leaves, and the maps must drain.
 *
 *   npm run soak -- --minutes 30 --nodes 1      # one node, embedded engine (and embedded records)
 *   npm run soak -- --minutes 30 --nodes 3      # three nodes on a redis-server of its own
 *
 * Load (all on loopback, from many 127.x.y.z source addresses): `--subscribers` steady clients (one
 * `agent:` channel each; every 5th also an acknowledged `workflow:` subscription that acks each event;
 * every 10th also a `room:` with presence), `--rate` publishes/s from 10 service connections (a tenth with
 * an idempotency key), and every `--storm-sec` s a storm of `--storm` short-lived clients that connect
 * (resuming one of 1000 sessions), subscribe (plain, acknowledged, room), sometimes unsubscribe, and leave
 * abruptly (TCP reset) or cleanly, a few never send `connect` (4004) or bring a bad token (4001).
 *
 * Verdict per node: "flat" when the mean of the last third of the load samples is within the limits of
 * the first sample after warm-up (heap after GC: under 10 % and under 20 MB of growth, growth under 5 MB
 * always passes as noise; RSS: under 25 % or under 40 MB; handles: under 10 % + 20); "drained" when,
 * after the clients left and the session TTL passed, every counter is 0 and no collection is larger
 * than before the first client came. Writes bench/results/soak-<nodes>.json.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { Redis } from 'ioredis';
import { freePort, startRedis } from '../tests/support/redis.ts';
import type { RedisServer } from '../tests/support/redis.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const MB = 1024 * 1024;

// ------------------------------------------------------------------ options

function parseArgs(argv: string[]) {
  const o = {
    minutes: 30,
    nodes: 1,
    subscribers: 2000,
    rate: 500,
    stormSec: 5,
    storm: 200,
    sampleSec: 0,
    warmupSec: 0,
    sessionTtlMs: 15_000,
    records: '' as '' | 'on' | 'off',
    auditPublishes: 'false' as 'true' | 'false',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const num = () => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${a} needs a number`);
      i++;
      return n;
    };
    if (a === '--minutes') o.minutes = num();
    else if (a === '--nodes') o.nodes = num();
    else if (a === '--subscribers') o.subscribers = num();
    else if (a === '--rate') o.rate = num();
    else if (a === '--storm-sec') o.stormSec = num();
    else if (a === '--storm') o.storm = num();
    else if (a === '--sample-sec') o.sampleSec = num();
    else if (a === '--warmup-sec') o.warmupSec = num();
    else if (a === '--session-ttl-ms') o.sessionTtlMs = num();
    else if (a === '--audit-publishes') {
      if (v !== 'on' && v !== 'off') throw new Error('--audit-publishes on|off');
      o.auditPublishes = v === 'on' ? 'true' : 'false';
      i++;
    } else if (a === '--records') {
      if (v !== 'on' && v !== 'off') throw new Error('--records on|off');
      o.records = v;
      i++;
    } else throw new Error(`unknown option ${a}`);
  }
  if (o.nodes !== 1 && o.nodes !== 3) throw new Error('--nodes 1|3');
  o.sampleSec ||= o.minutes >= 10 ? 20 : 10;
  o.warmupSec ||= Math.min(300, Math.max(30, o.minutes * 60 * 0.15));
  // One node keeps the default (embedded PGlite records); three nodes run without records, since each
  // would need a PostgreSQL of its own (or a shared one), and the soak is about the gateway.
  o.records ||= o.nodes === 1 ? 'on' : 'off';
  // The audit of every publish (500/s into the embedded PGlite) is a capacity question (BENCHMARKS.md),
  // and on a shared 2-core machine it starved the node; connections and denials are still audited.
  return o;
}
const opt = parseArgs(process.argv.slice(2));

const ORG = 'soak';
const SECRET = randomBytes(24).toString('hex');
const AGENT_CHANNELS = 180;
const ACK_CHANNELS = 20;
const ROOMS = 20;
const CHURN_USERS = 500;
const HISTORY_TTL_MS = 60_000;
const PRESENCE_TTL_MS = 10_000;
const IDEMPOTENCY_WINDOW_MS = 30_000;
const HEARTBEAT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;

async function jwt(sub: string, roles: string[]): Promise<string> {
  return new SignJWT({ org: ORG, roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 4 * 3600)
    .sign(new TextEncoder().encode(SECRET));
}
const tokenCache = new Map<string, string>();
async function tokenFor(sub: string, roles = ['member']): Promise<string> {
  const k = `${sub}|${roles.join(',')}`;
  let t = tokenCache.get(k);
  if (!t) tokenCache.set(k, (t = await jwt(sub, roles)));
  return t;
}

// ------------------------------------------------------------------ processes

interface Gateway {
  readonly index: number;
  readonly port: number;
  readonly url: string;
  readonly http: string;
  readonly child: ChildProcess;
}

const children: ChildProcess[] = [];
let redis: RedisServer | undefined;
let dataRoot = '';

async function startGateway(index: number, redisUrl: string | undefined): Promise<Gateway> {
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    APIX_HOST: '127.0.0.1',
    APIX_PORT: String(port),
    APIX_NODE_ID: `soak${opt.nodes}-${index}`,
    APIX_LOG_LEVEL: 'warn',
    APIX_JWT_SECRET: SECRET,
    APIX_DATA_DIR: join(dataRoot, `node-${index}`),
    APIX_RECORDS: opt.records,
    APIX_SESSION_TTL_MS: String(opt.sessionTtlMs),
    APIX_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
    APIX_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
    APIX_ACK_TIMEOUT_MS: '2000',
    APIX_RETRY_BASE_MS: '500',
    APIX_RETRY_MAX_MS: '5000',
    APIX_HISTORY_TTL_MS: String(HISTORY_TTL_MS),
    APIX_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS),
    APIX_IDEMPOTENCY_WINDOW_MS: String(IDEMPOTENCY_WINDOW_MS),
    APIX_DRAIN_TIMEOUT_MS: '2000',
    APIX_AUDIT_PUBLISHES: opt.auditPublishes,
    // The publishers send 25 events/s each, far under the per-connection limits; the bursts are raised
    // because a loaded machine stalls the node for seconds, and the frames queued meanwhile then arrive
    // at once (the soak is about memory, not about rate-limit policy, which the attack suite covers).
    APIX_RATE_PUBLISH_BURST: '5000',
    APIX_RATE_CONNECTION_BURST: '5000',
  };
  if (redisUrl) {
    env.REDIS_URL = redisUrl;
    env.APIX_REDIS_PREFIX = 'soak:';
  }
  const log = createWriteStream(`/tmp/apix-soak-${opt.nodes}-node${index}.log`);
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const http = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway ${index} exited (${child.exitCode}); see its log`);
    try {
      if ((await fetch(`${http}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`gateway ${index} not ready in 120 s`);
    await sleep(200);
  }
  return { index, port, url: `ws://127.0.0.1:${port}/v1/ws`, http, child };
}

async function stopAll(): Promise<void> {
  for (const c of children)
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await Promise.race([gone, sleep(8000)]);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  await redis?.destroy();
  if (dataRoot) rmSync(dataRoot, { recursive: true, force: true });
}
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

// ------------------------------------------------------------------ load

const stats = {
  published: 0,
  publishOk: 0,
  publishFailed: 0,
  delivered: 0,
  acked: 0,
  redelivered: 0,
  reconnects: 0,
  stormConnections: 0,
  established: 0,
  resumed: 0,
  refused: 0,
  errors: {} as Record<string, number>,
  closes: {} as Record<string, number>,
};
const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

let running = true;
const open = new Set<WebSocket>();

/** The source address of client i (loopback only): spread so that no per-address limit is reached. */
function address(block: number, i: number): string {
  return `127.${block}.${Math.floor(i / 250) % 250}.${1 + (i % 250)}`;
}

interface ClientSpec {
  readonly url: string;
  readonly from: string;
  readonly user: string;
  readonly sessionId: string;
  readonly channels: string[];
  readonly ackChannel?: string;
  readonly room?: string;
  readonly badToken?: boolean;
  readonly silent?: boolean;
  readonly roles?: string[];
}

/** A raw `ws` client; resolves once `connection.established` (or a refusal) came, or never for `silent`. */
async function client(spec: ClientSpec, onEvent?: (f: any, ws: WebSocket) => void): Promise<WebSocket> {
  const token = spec.badToken ? 'not-a-token' : await tokenFor(spec.user, spec.roles);
  const ws = new WebSocket(spec.url, 'apix.v1.json', { localAddress: spec.from, perMessageDeflate: false });
  open.add(ws);
  ws.on('close', (code) => {
    open.delete(ws);
    count(stats.closes, String(code));
  });
  ws.on('error', () => {});
  ws.on('unexpected-response', (_req, res) => {
    stats.refused++;
    count(stats.errors, `http-${res.statusCode}`);
    ws.terminate();
  });
  ws.on('message', (data) => {
    let f: any;
    try {
      f = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (f.channel !== undefined && f.id !== undefined) {
      stats.delivered++;
      if (f.metadata?.retryCount) stats.redelivered++;
      if (spec.ackChannel !== undefined && f.channel === spec.ackChannel) {
        ws.send(JSON.stringify({ type: 'ack', payload: { channel: f.channel, ids: [f.id] } }));
        stats.acked++;
      }
      return;
    }
    switch (f.type) {
      case 'connection.established':
        stats.established++;
        if (f.payload.resumed) stats.resumed++;
        if (spec.ackChannel)
          ws.send(
            JSON.stringify({
              type: 'subscribe',
              payload: { channels: [spec.ackChannel], acknowledgment: true },
            }),
          );
        if (spec.room) ws.send(JSON.stringify({ type: 'subscribe', payload: { channels: [spec.room] } }));
        break;
      case 'connection.error':
      case 'message.failed':
        count(stats.errors, `${f.type}:${f.payload?.code}`);
        break;
    }
    onEvent?.(f, ws);
  });
  await new Promise<void>((resolve) => {
    ws.once('open', () => {
      if (!spec.silent)
        ws.send(
          JSON.stringify({
            type: 'connect',
            payload: {
              sessionId: spec.sessionId,
              clientType: 'WEB_APP',
              authentication: { token },
              subscriptions: spec.channels,
            },
          }),
        );
      resolve();
    });
    ws.once('close', () => resolve());
  });
  return ws;
}

/**
 * A client that stays for the whole load: when the server cuts it (a heartbeat missed on a loaded machine,
 * a rate limit), it comes back after 1 s with the same session, as the SDK would.
 */
function steady(
  spec: ClientSpec,
  onEvent?: (f: any, ws: WebSocket) => void,
): { ws: WebSocket | undefined; ready: Promise<void> } {
  const holder: { ws: WebSocket | undefined; ready: Promise<void> } = {
    ws: undefined,
    ready: Promise.resolve(),
  };
  const start = async (): Promise<void> => {
    const ws = await client(spec, onEvent);
    holder.ws = ws;
    ws.once('close', () => {
      if (!running) return;
      stats.reconnects++;
      setTimeout(() => void start(), 1000);
    });
  };
  holder.ready = start();
  return holder;
}

async function startSubscribers(gws: Gateway[]): Promise<Array<{ ws: WebSocket | undefined }>> {
  const out = [];
  for (let i = 0; i < opt.subscribers; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(opt.subscribers, i + 100); j++)
      batch.push(
        steady({
          url: gws[j % gws.length]!.url,
          from: address(1, j),
          user: `u${j}`,
          sessionId: `steady-${j}`,
          channels: [`agent:c${j % AGENT_CHANNELS}`],
          ackChannel: j % 5 === 0 ? `workflow:w${j % ACK_CHANNELS}` : undefined,
          room: j % 10 === 0 ? `room:r${j % ROOMS}` : undefined,
        }),
      );
    await Promise.all(batch.map((b) => b.ready));
    out.push(...batch);
  }
  return out;
}

const PUBLISHERS = 20;

async function startPublishers(gws: Gateway[]): Promise<() => void> {
  const holders: Array<ReturnType<typeof steady>> = [];
  for (let k = 0; k < PUBLISHERS; k++)
    holders.push(
      steady(
        {
          url: gws[k % gws.length]!.url,
          from: address(3, k),
          user: `pub${k}`,
          sessionId: `pub-${k}`,
          channels: [],
          roles: ['service'],
        },
        (f) => {
          if (f.type === 'message.sent' || f.type === 'message.queued') stats.publishOk++;
          else if (f.type === 'message.failed') stats.publishFailed++;
        },
      ),
    );
  await Promise.all(holders.map((h) => h.ready));
  await sleep(500);
  const perTick = opt.rate / PUBLISHERS / 10; // every 100 ms
  let carry = 0;
  let n = 0;
  const timer = setInterval(() => {
    if (!running) return;
    carry += perTick;
    const k = Math.floor(carry);
    carry -= k;
    for (const h of holders) {
      const ws = h.ws;
      if (ws?.readyState !== WebSocket.OPEN) continue;
      for (let j = 0; j < k; j++) {
        const r = Math.random();
        const channel =
          r < 0.82
            ? `agent:c${Math.floor(Math.random() * AGENT_CHANNELS)}`
            : r < 0.91
              ? `workflow:w${Math.floor(Math.random() * ACK_CHANNELS)}`
              : `room:r${Math.floor(Math.random() * ROOMS)}`;
        const meta = ++n % 10 === 0 ? { metadata: { idempotency_key: `k${n}` } } : {};
        ws.send(
          JSON.stringify({
            type: 'agent_status_update',
            channel,
            payload: { agentId: 'soak', status: 'running', n, pad: 'x'.repeat(200) },
            ...meta,
          }),
        );
        stats.published++;
      }
    }
  }, 100);
  return () => {
    clearInterval(timer);
    for (const h of holders) h.ws?.close(1000);
  };
}

/** One storm: `opt.storm` short-lived clients doing one of the things clients do, then leaving. */
async function storm(gws: Gateway[], round: number): Promise<void> {
  const jobs: Promise<void>[] = [];
  for (let k = 0; k < opt.storm; k++) {
    const r = Math.random();
    const u = Math.floor(Math.random() * CHURN_USERS);
    const spec: ClientSpec = {
      url: gws[Math.floor(Math.random() * gws.length)]!.url,
      from: address(2, (round * opt.storm + k) % 5000),
      user: `c${u}`,
      // A session comes back (resumes) on any node while its TTL runs.
      sessionId: `churn-${u}-${Math.floor(Math.random() * 2)}`,
      channels: [`agent:c${Math.floor(Math.random() * AGENT_CHANNELS)}`],
      ackChannel: r < 0.3 ? `workflow:w${Math.floor(Math.random() * ACK_CHANNELS)}` : undefined,
      room: r > 0.8 ? `room:r${Math.floor(Math.random() * ROOMS)}` : undefined,
      badToken: r > 0.98,
      silent: r > 0.96 && r <= 0.98,
    };
    stats.stormConnections++;
    jobs.push(
      (async () => {
        const ws = await client(spec).catch(() => undefined);
        if (!ws) return;
        if (spec.silent) return; // cut by the server after the connect timeout (4004)
        await sleep(300 + Math.random() * 2500);
        if (ws.readyState === WebSocket.OPEN && Math.random() < 0.2) {
          // Subscribe and unsubscribe races right before leaving.
          const ch = `agent:c${Math.floor(Math.random() * AGENT_CHANNELS)}`;
          ws.send(JSON.stringify({ type: 'subscribe', payload: { channels: [ch] } }));
          ws.send(JSON.stringify({ type: 'unsubscribe', payload: { channels: [ch, spec.channels[0]] } }));
        }
        if (Math.random() < 0.5) ws.terminate();
        else ws.close(1000);
      })(),
    );
    if (k % 50 === 49) await sleep(20);
  }
  await Promise.all(jobs);
}

// ------------------------------------------------------------------ sampling

interface NodeSample {
  heapUsed: number;
  rss: number;
  handles: number;
  counters: Record<string, number>;
  sizes: Record<string, number>;
  resources: Record<string, number>;
}
interface Sample {
  t: number;
  phase: 'idle' | 'warmup' | 'load' | 'drain';
  nodes: NodeSample[];
  redis?: { usedMemory: number; keys: number };
  client: { open: number; published: number; delivered: number; acked: number; storms: number };
}

let adminToken = '';
let redisClient: Redis | undefined;
const t0 = Date.now();

async function sampleNode(g: Gateway): Promise<NodeSample> {
  const r = await fetch(`${g.http}/v1/admin/internals?gc=1`, {
    headers: { authorization: `Bearer ${adminToken}` },
    signal: AbortSignal.timeout(60_000),
  });
  if (r.status !== 200) throw new Error(`internals of node ${g.index}: HTTP ${r.status}`);
  const j = (await r.json()) as {
    memory: { heapUsed: number; rss: number };
    handles: number;
    counters: Record<string, number>;
    sizes: Record<string, number>;
    resources: Record<string, number>;
  };
  return {
    heapUsed: j.memory.heapUsed,
    rss: j.memory.rss,
    handles: j.handles,
    counters: j.counters,
    sizes: j.sizes,
    resources: j.resources,
  };
}

async function sample(gws: Gateway[], phase: Sample['phase']): Promise<Sample> {
  const nodes = [];
  for (const g of gws) nodes.push(await sampleNode(g));
  let redisInfo: Sample['redis'];
  if (redisClient) {
    const info = await redisClient.info('memory');
    const used = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
    redisInfo = { usedMemory: used, keys: await redisClient.dbsize() };
  }
  return {
    t: Math.round((Date.now() - t0) / 1000),
    phase,
    nodes,
    redis: redisInfo,
    client: {
      open: open.size,
      published: stats.published,
      delivered: stats.delivered,
      acked: stats.acked,
      storms: stats.stormConnections,
    },
  };
}

const fmt = (b: number) => (b / MB).toFixed(1);
function progress(s: Sample): void {
  const per = (f: (n: NodeSample) => string) => s.nodes.map(f).join('/');
  const c = (k: string) => per((n) => String(n.counters[k] ?? 0));
  const size = (k: string) => per((n) => String(n.sizes[k] ?? 0));
  process.stdout.write(
    `[${String(s.t).padStart(5)}s ${s.phase.padEnd(6)}] heap ${per((n) => fmt(n.heapUsed))} MB  rss ${per((n) => fmt(n.rss))} MB  ` +
      `handles ${per((n) => String(n.handles))}  conns ${c('connections')}  sessions ${c('sessions')} (away ${c('awaySessions')})  ` +
      `subs ${c('subscriptions')}  inflight ${c('inflight')}  queued ${c('offlineQueued')}  ` +
      `rate-buckets ${size('engines.rateLimits.buckets')}  ` +
      (s.redis ? `redis ${fmt(s.redis.usedMemory)} MB ${s.redis.keys} keys  ` : '') +
      `| clients ${s.client.open} pub ${s.client.published} del ${s.client.delivered} storms ${s.client.storms}\n`,
  );
}

// ------------------------------------------------------------------ verdict

/**
 * What a node keeps by design after its clients left, bounded and not per connection: dead letters
 * (APIX_DEAD_LETTER_SIZE), the latency tracker's figures per event type and per organization, and the
 * organizations the records have seen.
 */
const RETAINED = [
  /deadLetters/,
  /^operator\.tracker\.(deliverByType|ackByType|organizations)$/,
  /organizations\.known$/,
];

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Redis keys by shape (digits replaced by #). */
async function redisShapes(r: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const shape = k.replace(/[0-9]+/g, '#');
      out[shape] = (out[shape] ?? 0) + 1;
    }
  } while (cursor !== '0');
  return out;
}

function redisKeyCount(r: Redis): Promise<number> {
  return r.dbsize();
}

/**
 * Keys of the channels themselves (each published channel's stream and meta hash): kept by design for
 * their idle TTL (30 days) so that a channel's ids keep increasing; not per client.
 */
function channelKeys(shapes: Record<string, number> | undefined): number {
  let n = 0;
  for (const [k, v] of Object.entries(shapes ?? {}))
    if (/\}:(stream|meta)$/.test(k) && k.includes('{ch:')) n += v;
  return n;
}

function verdict(samples: Sample[], nodes: number, redisKeys?: Record<string, number>) {
  const load = samples.filter((s) => s.phase === 'load');
  const idle = samples.find((s) => s.phase === 'idle')!;
  const drain = samples.filter((s) => s.phase === 'drain').at(-1)!;
  const base = load[0]!;
  const last = load.slice(Math.floor((load.length * 2) / 3));
  const middle = load[Math.floor(load.length / 2)]!;
  const perNode = [];
  for (let i = 0; i < nodes; i++) {
    const heapBase = base.nodes[i]!.heapUsed;
    const heapEnd = mean(last.map((s) => s.nodes[i]!.heapUsed));
    const heapGrowth = heapEnd - heapBase;
    const heapFlat = heapGrowth < 5 * MB || (heapGrowth < 20 * MB && heapGrowth / heapBase < 0.1);
    const rssBase = base.nodes[i]!.rss;
    const rssEnd = mean(last.map((s) => s.nodes[i]!.rss));
    const rssFlat = rssEnd - rssBase < 40 * MB || (rssEnd - rssBase) / rssBase < 0.25;
    // Handles are sockets (moved up and down by the storms) and timers (retries in flight), judged apart:
    // every other kind must stay where it was, and after the drain all of them back where they started.
    const other = (n: NodeSample) =>
      n.handles - (n.resources.TCPSocketWrap ?? 0) - (n.resources.Timeout ?? 0);
    const hBase = other(base.nodes[i]!);
    const hEnd = mean(last.map((s) => other(s.nodes[i]!)));
    const handlesFlat = hEnd <= hBase + 5 && drain.nodes[i]!.handles <= idle.nodes[i]!.handles;
    const d = drain.nodes[i]!;
    const countersLeft = Object.entries(d.counters).filter(
      ([k, v]) => v !== 0 && k !== 'slowConsumers' && k !== 'degraded',
    );
    const grown = Object.entries(d.sizes).filter(([k, v]) => v > (idle.nodes[i]!.sizes[k] ?? 0));
    const sizesLeft = grown.filter(([k]) => !RETAINED.some((r) => r.test(k)));
    const retained = grown.filter(([k]) => RETAINED.some((r) => r.test(k)));
    perNode.push({
      node: i,
      heap: { base: heapBase, lastThirdMean: heapEnd, growth: heapGrowth, flat: heapFlat },
      rss: { base: rssBase, lastThirdMean: rssEnd, flat: rssFlat },
      handles: { base: hBase, lastThirdMean: hEnd, flat: handlesFlat },
      drained: countersLeft.length === 0 && sizesLeft.length === 0,
      countersLeft: Object.fromEntries(countersLeft),
      sizesLeft: Object.fromEntries(
        sizesLeft.map(([k, v]) => [k, { idle: idle.nodes[i]!.sizes[k] ?? 0, after: v }]),
      ),
      retained: Object.fromEntries(retained),
    });
  }
  const redisV =
    base.redis && drain.redis && idle.redis
      ? {
          base: base.redis.usedMemory,
          lastThirdMean: mean(last.map((s) => s.redis!.usedMemory)),
          keysIdle: idle.redis.keys,
          keysAfterDrain: drain.redis.keys,
          memoryAfterDrain: drain.redis.usedMemory,
          flat: mean(last.map((s) => s.redis!.usedMemory)) - base.redis.usedMemory < 20 * MB,
          drained: drain.redis.keys - channelKeys(redisKeys) <= idle.redis.keys + 5,
        }
      : undefined;
  return { base, middle, end: load.at(-1)!, drain, perNode, redis: redisV };
}

function table(v: ReturnType<typeof verdict>, nodes: number): string {
  const rows: string[] = [];
  const cols = [
    ['warm-up', v.base],
    ['middle', v.middle],
    ['end', v.end],
    ['after drain', v.drain],
  ] as const;
  rows.push(`| node | metric | ${cols.map(([n, s]) => `${n} (${s.t} s)`).join(' | ')} |`);
  rows.push(`|---|---|${cols.map(() => '---|').join('')}`);
  const line = (i: number, name: string, f: (n: NodeSample) => string) =>
    rows.push(`| ${i} | ${name} | ${cols.map(([, s]) => f(s.nodes[i]!)).join(' | ')} |`);
  for (let i = 0; i < nodes; i++) {
    line(i, 'heap after GC (MB)', (n) => fmt(n.heapUsed));
    line(i, 'RSS (MB)', (n) => fmt(n.rss));
    line(i, 'open handles', (n) => String(n.handles));
    for (const k of [
      'connections',
      'sessions',
      'awaySessions',
      'subscriptions',
      'channels',
      'inflight',
      'offlineQueued',
    ])
      line(i, k, (n) => String(n.counters[k] ?? 0));
    for (const [k, label] of [
      ['engines.rateLimits.buckets', 'rate-limit buckets'],
      ['engines.presence.local', 'presence (local rooms)'],
      ['engines.broker.bus.presence.rooms', 'presence rooms (memory bus)'],
      ['engines.sessionStore.sessions', 'session store (memory)'],
      ['engines.offlineQueue.queues', 'offline queues (memory)'],
      ['engines.broker.bus.history.channels', 'history channels (memory)'],
      ['gateway.perAddress', 'caps: addresses'],
      ['gateway.perUser', 'caps: users'],
      ['operator.tracker.connections', 'latency tracker connections'],
    ] as const)
      if (cols.some(([, s]) => s.nodes[i]!.sizes[k] !== undefined))
        line(i, label, (n) => String(n.sizes[k] ?? '-'));
  }
  if (v.drain.redis)
    rows.push(
      `| redis | used_memory (MB) / keys | ${cols.map(([, s]) => `${fmt(s.redis!.usedMemory)} / ${s.redis!.keys}`).join(' | ')} |`,
    );
  return rows.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  dataRoot = mkdtempSync(join(tmpdir(), 'apix-soak-'));
  adminToken = await tokenFor('soak-admin', ['admin']);
  let redisUrl: string | undefined;
  if (opt.nodes === 3) {
    redis = await startRedis();
    redisUrl = redis.url;
    redisClient = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  }
  const gws: Gateway[] = [];
  for (let i = 0; i < opt.nodes; i++) gws.push(await startGateway(i, redisUrl));
  console.log(
    `soak: ${opt.nodes} node(s)${redisUrl ? ` on ${redisUrl}` : ' (embedded engine)'}, records ${opt.records}, ` +
      `${opt.minutes} min, ${opt.subscribers} subscribers, ${opt.rate} publishes/s, storms of ${opt.storm} every ${opt.stormSec} s, ` +
      `sample every ${opt.sampleSec} s, warm-up ${opt.warmupSec} s, session TTL ${opt.sessionTtlMs} ms`,
  );
  const samples: Sample[] = [];
  let missed = 0;
  const take = async (phase: Sample['phase']): Promise<Sample | undefined> => {
    try {
      const s = await sample(gws, phase);
      samples.push(s);
      progress(s);
      return s;
    } catch (err) {
      // A node too busy to answer within 60 s: the sample is missed (and counted), the soak goes on.
      missed++;
      console.log(`sample missed (${phase}): ${(err as Error).message}`);
      return undefined;
    }
  };
  await take('idle');

  const subs = await startSubscribers(gws);
  const stopPublishers = await startPublishers(gws);
  const loadStart = Date.now();
  console.log(`${subs.length} subscribers and ${PUBLISHERS} publishers connected; load on`);
  let round = 0;
  const storms = (async () => {
    while (running) {
      const started = Date.now();
      await storm(gws, round++);
      await sleep(Math.max(0, opt.stormSec * 1000 - (Date.now() - started)));
    }
  })();
  const end = loadStart + opt.minutes * 60_000;
  while (Date.now() < end) {
    await sleep(Math.min(opt.sampleSec * 1000, Math.max(0, end - Date.now())));
    await take(Date.now() - loadStart < opt.warmupSec * 1000 ? 'warmup' : 'load');
  }

  // Everyone leaves: the storms stop, the publishers and subscribers close (half cleanly, half by a reset).
  running = false;
  await storms;
  stopPublishers();
  subs.forEach((h, i) => (i % 2 === 0 ? h.ws?.close(1000) : h.ws?.terminate()));
  for (const ws of open) ws.terminate();
  // Idempotency keys live for their window in Redis (PX), whatever setting the broker gives them: up to 120 s.
  const waitMs =
    Math.max(opt.sessionTtlMs, PRESENCE_TTL_MS, IDEMPOTENCY_WINDOW_MS, HISTORY_TTL_MS, 120_000) + 20_000;
  console.log(
    `clients gone; waiting up to ${Math.round(waitMs / 1000)} s for sessions, presence and keys to expire`,
  );
  const drainDeadline = Date.now() + waitMs;
  for (;;) {
    await sleep(Math.min(10_000, Math.max(0, drainDeadline - Date.now())));
    const s = await take('drain');
    if (!s) continue;
    const idle = samples[0]!;
    const clean = s.nodes.every(
      (n, i) =>
        Object.entries(n.counters).every(([k, v]) => v === 0 || k === 'slowConsumers' || k === 'degraded') &&
        Object.entries(n.sizes).every(
          ([k, v]) => v <= (idle.nodes[i]!.sizes[k] ?? 0) || RETAINED.some((r) => r.test(k)),
        ),
    );
    const redisClean =
      !redisClient ||
      (await redisKeyCount(redisClient)) - channelKeys(await redisShapes(redisClient)) <=
        (idle.redis?.keys ?? 0) + 5;
    if (
      (clean && redisClean && Date.now() > drainDeadline - waitMs + opt.sessionTtlMs + 5000) ||
      Date.now() >= drainDeadline
    )
      break;
  }

  let redisKeys: Record<string, number> | undefined;
  if (redisClient) {
    redisKeys = await redisShapes(redisClient);
    console.log(`redis keys after drain, by shape: ${JSON.stringify(redisKeys)}`);
  }
  const v = verdict(samples, opt.nodes, redisKeys);
  const flat = v.perNode.every((n) => n.heap.flat && n.rss.flat && n.handles.flat) && (v.redis?.flat ?? true);
  const drained = v.perNode.every((n) => n.drained) && (v.redis?.drained ?? true);
  console.log(`\n${table(v, opt.nodes)}\n`);
  for (const n of v.perNode)
    console.log(
      `node ${n.node}: heap ${fmt(n.heap.base)} -> ${fmt(n.heap.lastThirdMean)} MB (${n.heap.growth >= 0 ? '+' : ''}${fmt(n.heap.growth)} MB) ${n.heap.flat ? 'flat' : 'GROWING'}; ` +
        `rss ${fmt(n.rss.base)} -> ${fmt(n.rss.lastThirdMean)} MB ${n.rss.flat ? 'flat' : 'GROWING'}; ` +
        `handles besides sockets and timers ${n.handles.base} -> ${n.handles.lastThirdMean.toFixed(0)} ${n.handles.flat ? 'flat' : 'GROWING'}; ` +
        `${n.drained ? 'drained' : `NOT DRAINED: ${JSON.stringify({ ...n.countersLeft, ...n.sizesLeft })}`}; ` +
        `retained by design: ${JSON.stringify(n.retained)}`,
    );
  if (v.redis)
    console.log(
      `redis: ${fmt(v.redis.base)} -> ${fmt(v.redis.lastThirdMean)} MB ${v.redis.flat ? 'flat' : 'GROWING'}; ` +
        `keys idle ${v.redis.keysIdle}, after drain ${v.redis.keysAfterDrain} of which ${channelKeys(redisKeys)} channel streams and metas (kept by design) ` +
        `(${fmt(v.redis.memoryAfterDrain)} MB) ${v.redis.drained ? 'drained' : 'NOT DRAINED'}`,
    );
  console.log(
    `client: ${stats.published} published (${stats.publishOk} ok, ${stats.publishFailed} failed), ${stats.delivered} delivered, ` +
      `${stats.acked} acked, ${stats.redelivered} redelivered, ${stats.stormConnections} storm connections, ` +
      `${stats.reconnects} reconnects of steady clients, ` +
      `${stats.established} established (${stats.resumed} resumed), ${stats.refused} refused at the upgrade; ` +
      `errors ${JSON.stringify(stats.errors)}; closes ${JSON.stringify(stats.closes)}`,
  );
  console.log(`verdict: ${flat ? 'FLAT' : 'NOT FLAT'}, ${drained ? 'DRAINED' : 'NOT DRAINED'}`);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, `bench/results/soak-${opt.nodes}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ options: opt, startedAt: new Date(t0).toISOString(), verdict: { flat, drained, perNode: v.perNode, redis: v.redis }, missedSamples: missed, redisKeysAfterDrain: redisKeys, client: stats, samples }, null, 1)}\n`,
  );
  console.log(`wrote ${file}`);
  await redisClient?.quit();
  await stopAll();
  process.exit(flat && drained ? 0 : 1);
}

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(2);
});
