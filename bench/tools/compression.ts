/**
 * What compression and metrics cost in a fan-out, in one invocation, one run after the other on the same
 * machine: N subscribers on one channel, a ~2 KB tool_call_result event published R times a second for S
 * seconds (open loop), against
 *
 *   (a) APIX, APIX_COMPRESSION=false (subscribers offer no deflate)
 *   (b) APIX, compression on, subscribers offer permessage-deflate (the shared compressor: each event is
 *       compressed once for every subscriber that negotiated it, no context takeover)
 *   (c) the bare ws baseline (bench/servers/ws-baseline.ts --deflate on): ws's own per-connection
 *       permessage-deflate, subscribers offer deflate — the reference configuration (BENCHMARKS.md, compression)
 *   (d) APIX, APIX_METRICS=false (compression off)
 *   (e) APIX, APIX_METRICS=true (compression off; the same settings as (a): (a) against (e) is the noise)
 *   (g) as (a), but the subscribers use HTTP streaming (`POST /v1/stream`, ndjson; docs/transports.md)
 *   (h) as (a), but the subscribers use SSE (`GET /v1/sse` with a ticket)
 *   (i) as (a), but the subscribers speak MessagePack (`apix.v1.msgpack`, binary frames)
 *   (j) / (k) scenario (b)'s shape, JSON / MessagePack subscribers: the main bench's small event
 *       (`{bs, bq, bt}`), everyone on one channel
 *   (l) / (m) scenario (c)'s shape, JSON / MessagePack subscribers: the small event, the subscribers spread
 *       10 to a channel (at most 200 channels), publishes round-robin over the channels at `rate` x channels/s
 *       (so the same deliveries/s are offered as in the one-channel runs)
 *   (f) as (b), but the subscribers send their own frames uncompressed (browsers compress theirs, and the
 *       server then keeps an inflate stream per connection; ws clients do not compress under 1 KB)
 *
 * and reports for each: deliveries/s, publish-to-deliver p50/p99 (sampled subscribers), bytes read per
 * delivery on the subscribers' sockets, server CPU per delivery (utime + stime of the server's processes
 * from the first publish to the last delivery, /proc/<pid>/stat), server RSS per connection (growth over
 * the connected subscribers, and after the fan-out). Writes bench/results/compression.json.
 *
 *   node --import tsx bench/tools/compression.ts [--subscribers 5000] [--rate 5] [--seconds 10]
 *     [--payload-bytes 2000] [--runs a,b,f,c,d,e,g,h] [--heartbeat-ms 60000] [--no-pin] [--nice -10]
 *     [--out bench/results/compression.json]
 *
 * Transports and encodings in one run (BENCHMARKS.md, Transports): `--runs a,i,g,h,j,k,l,m`.
 *
 * The default offered load, 5 publishes/s to 5,000 subscribers (25,000 deliveries/s), stays below what
 * APIX and the clients' core sustain here (each costs about 20-30 µs per delivery on this 2-core VM), so
 * that CPU per delivery compares like with like; ws's own deflate saturates far below it (as BENCHMARKS.md
 * says), and a run stops waiting 20 s after the last publish: what has not arrived by then is `lost`.
 *
 * The server runs on core 0 and the clients (bench/tools/compression-clients.ts, one process) on core 1,
 * with `taskset`, as in `npm run bench`; loopback only. APIX runs without records (APIX_RECORDS=off: no
 * database in the process), rate limits and connection caps off, heartbeats every 60 s.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { Histogram } from '../lib/histogram.ts';
import type { Percentiles, SparseHistogram } from '../lib/histogram.ts';
import {
  OtherCpuMeter,
  cores,
  cpuSeconds,
  freePort,
  killAll,
  processTree,
  rssBytes,
  setNiceness,
  sleep,
  spawnPinned,
  stop,
  waitHttp,
} from '../lib/proc.ts';
import type {
  ClientOp,
  ConnectResult,
  PublishResult,
  ServerKind,
  Snapshot,
  SubscriberTransport,
} from './compression-clients.ts';
import { payloadFor } from './agent-payload.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : dflt;
};
if (argv.includes('--help')) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]!);
  process.exit(0);
}
const subscribers = Math.min(10_000, Math.max(1, Number(opt('subscribers', '5000'))));
const rate = Number(opt('rate', '5'));
const seconds = Math.min(30, Number(opt('seconds', '10')));
const payloadBytes = Number(opt('payload-bytes', '2000'));
const runNames = opt('runs', 'a,b,f,c,d,e').split(',');
const out = resolve(root, opt('out', 'bench/results/compression.json'));
const pin = !argv.includes('--no-pin');
/** APIX's heartbeat interval: each round also frees the inflate streams of idle compressing clients. */
const heartbeatMs = opt('heartbeat-ms', '60000');
setNiceness(Number(opt('nice', '-10')));
const { server: serverCore, load: loadCore } = cores(pin);
const secret = 'compression-bench-secret-0123456789';
const CHANNEL = 'agent:bench';
const SAMPLE_EVERY = 10;
/** After the last publish, how long deliveries may take to arrive (a saturated server stops here). */
const DRAIN_MAX_MS = 20_000;
const STALL_MS = 3_000;

interface RunDef {
  readonly name: string;
  readonly label: string;
  readonly kind: ServerKind;
  readonly deflate: boolean;
  /** Subscribers that negotiated deflate compress their own frames (browsers do; default true). */
  readonly compressOut?: boolean;
  readonly env?: Record<string, string>;
  /** APIX: how the subscribers connect (default websocket). */
  readonly transport?: SubscriberTransport;
  /** The event: about `--payload-bytes` of agent event (default), or `small`: the main bench's `{bs, bq, bt}`. */
  readonly event?: 'small';
  /** Scenario (c)'s layout: subscribers 10 to a channel, publishes round-robin (default: one channel). */
  readonly manyChannels?: boolean;
}
const RUNS: Record<string, RunDef> = {
  a: {
    name: 'a',
    label: 'APIX, compression off',
    kind: 'apix',
    deflate: false,
    env: { APIX_COMPRESSION: 'false' },
  },
  b: {
    name: 'b',
    label: 'APIX, compression on (shared compressor)',
    kind: 'apix',
    deflate: true,
    env: { APIX_COMPRESSION: 'true' },
  },
  f: {
    name: 'f',
    label: 'APIX, compression on, clients send plain frames',
    kind: 'apix',
    deflate: true,
    compressOut: false,
    env: { APIX_COMPRESSION: 'true' },
  },
  c: { name: 'c', label: "ws baseline, ws's permessage-deflate", kind: 'baseline', deflate: true },
  g: {
    name: 'g',
    label: 'APIX, subscribers over HTTP streaming (compression off)',
    kind: 'apix',
    deflate: false,
    transport: 'http-stream',
    env: { APIX_COMPRESSION: 'false' },
  },
  h: {
    name: 'h',
    label: 'APIX, subscribers over SSE (compression off)',
    kind: 'apix',
    deflate: false,
    transport: 'sse',
    env: { APIX_COMPRESSION: 'false' },
  },
  i: {
    name: 'i',
    label: 'APIX, subscribers over WebSocket + MessagePack (compression off)',
    kind: 'apix',
    deflate: false,
    transport: 'websocket-msgpack',
    env: { APIX_COMPRESSION: 'false' },
  },
  j: {
    name: 'j',
    label: "scenario (b)'s small event, one channel, WebSocket + JSON",
    kind: 'apix',
    deflate: false,
    event: 'small',
    env: { APIX_COMPRESSION: 'false' },
  },
  k: {
    name: 'k',
    label: "scenario (b)'s small event, one channel, WebSocket + MessagePack",
    kind: 'apix',
    deflate: false,
    event: 'small',
    transport: 'websocket-msgpack',
    env: { APIX_COMPRESSION: 'false' },
  },
  l: {
    name: 'l',
    label: "scenario (c)'s small event, 10 subscribers a channel, WebSocket + JSON",
    kind: 'apix',
    deflate: false,
    event: 'small',
    manyChannels: true,
    env: { APIX_COMPRESSION: 'false' },
  },
  m: {
    name: 'm',
    label: "scenario (c)'s small event, 10 subscribers a channel, WebSocket + MessagePack",
    kind: 'apix',
    deflate: false,
    event: 'small',
    manyChannels: true,
    transport: 'websocket-msgpack',
    env: { APIX_COMPRESSION: 'false' },
  },
  d: {
    name: 'd',
    label: 'APIX, metrics off (compression off)',
    kind: 'apix',
    deflate: false,
    env: { APIX_COMPRESSION: 'false', APIX_METRICS: 'false' },
  },
  e: {
    name: 'e',
    label: 'APIX, metrics on (compression off)',
    kind: 'apix',
    deflate: false,
    env: { APIX_COMPRESSION: 'false', APIX_METRICS: 'true' },
  },
};

interface RunResult {
  readonly run: string;
  readonly label: string;
  readonly subscribers: number;
  readonly channels: number;
  readonly publishesPerSec: number;
  readonly connected: number;
  readonly connectFailed: number;
  readonly negotiatedDeflate: number;
  readonly published: number;
  readonly publishFailed: number;
  readonly expected: number;
  readonly delivered: number;
  readonly lost: number;
  readonly closedDuringRun: number;
  readonly compressedFrames: number;
  readonly deliveriesPerSec: number;
  /** From the first publish to the last delivery counted. */
  readonly windowSeconds: number;
  readonly latencyMs: Percentiles;
  readonly payloadBytes: number;
  readonly bytesPerDelivery: number;
  readonly serverCpuSeconds: number;
  readonly serverCpuUsPerDelivery: number;
  readonly serverCpuPercent: number;
  /** Deliveries/s one fully busy server core would sustain at this CPU cost per delivery. */
  readonly capacityPerSec: number;
  /** CPU of the clients' process over the same window (near 100: the clients were the limit). */
  readonly clientCpuPercent: number;
  readonly rssKbPerConnection: number;
  readonly rssKbPerConnectionAfterFanout: number;
  readonly serverRssMbAfter: number;
  readonly otherCpuPercent: number;
  readonly note?: string;
}

const log = (s: string): void => void process.stdout.write(`${s}\n`);

/** The clients' process: one request, one reply. */
class Clients {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor(readonly child: ChildProcess) {
    child.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.ok) w?.resolve(m.result);
      else w?.reject(new Error(m.error ?? 'client error'));
    });
    child.on('error', () => {}); // a send after it exited: the request is rejected on 'exit'
    child.on('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`clients exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }
  request<T>(op: ClientOp): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) return reject(new Error('clients exited'));
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op });
    });
  }
}

async function startServer(def: RunDef, port: number, tmp: string): Promise<ChildProcess> {
  const logFile = join(tmp, `${def.name}-server.log`);
  let args: string[];
  let env: NodeJS.ProcessEnv;
  if (def.kind === 'baseline') {
    args = [
      'bench/servers/ws-baseline.ts',
      '--port',
      String(port),
      '--heartbeat-ms',
      '60000',
      '--deflate',
      'on',
    ];
    env = process.env;
  } else {
    args = ['src/cli/main.ts', 'serve'];
    env = {
      ...process.env,
      APIX_PORT: String(port),
      APIX_HOST: '127.0.0.1',
      APIX_JWT_SECRET: secret,
      APIX_LOG_LEVEL: 'warn',
      APIX_DATA_DIR: join(tmp, `apix-${def.name}`),
      APIX_NODE_ID: `compression-${def.name}`,
      APIX_HEARTBEAT_INTERVAL_MS: heartbeatMs,
      APIX_RECORDS: 'off',
      APIX_MAX_CONNECTIONS_PER_ADDRESS: '0',
      APIX_MAX_CONNECTIONS_PER_USER: '0',
      ...def.env,
    };
    for (const limit of ['CONNECTION', 'PUBLISH', 'CHANNEL', 'ORG_PUBLISH', 'ORG_SUBSCRIBE', 'ADDRESS'])
      env[`APIX_RATE_${limit}_PER_SEC`] = '0';
    delete env.REDIS_URL;
    delete env.DATABASE_URL;
  }
  const child = spawnPinned(process.execPath, ['--import', 'tsx', ...args], {
    cpu: serverCore,
    cwd: root,
    env,
    logFile,
  });
  try {
    await waitHttp(`http://127.0.0.1:${port}/healthz`, child, 90_000);
  } catch (err) {
    await stop(child);
    let tail = '';
    try {
      tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      // no log
    }
    throw new Error(`${def.label}: ${(err as Error).message}\n${tail}`, { cause: err });
  }
  return child;
}

const round = (v: number, digits = 1): number => Math.round(v * 10 ** digits) / 10 ** digits;

async function runOne(def: RunDef, index: number, tmp: string, addressSeed: number): Promise<RunResult> {
  const t0 = Date.now();
  const channels = def.manyChannels ? Math.max(1, Math.min(200, Math.floor(subscribers / 10))) : 1;
  // The same deliveries/s offered whatever the layout: each publish reaches subscribers / channels.
  const runRate = rate * channels;
  const runPayloadBytes = def.event === 'small' ? 0 : payloadBytes;
  log(`\n(${def.name}) ${def.label}: starting the server`);
  const port = await freePort();
  const server = await startServer(def, port, tmp);
  const clients = new Clients(
    spawnPinned(
      process.execPath,
      ['--max-old-space-size=4096', '--import', 'tsx', 'bench/tools/compression-clients.ts'],
      {
        cpu: loadCore,
        cwd: root,
        ipc: true,
      },
    ),
  );
  const pids = (): number[] => (server.pid !== undefined ? processTree(server.pid) : []);
  try {
    await sleep(1000);
    const rss0 = rssBytes(pids());
    log(
      `(${def.name}) connecting ${subscribers} subscribers${def.deflate ? ' (offering permessage-deflate)' : ''}`,
    );
    const progress = setInterval(
      () => log(`(${def.name})   ... ${Math.round((Date.now() - t0) / 1000)} s`),
      10_000,
    );
    let conn: ConnectResult;
    try {
      conn = await clients.request<ConnectResult>({
        op: 'connect',
        kind: def.kind,
        port,
        count: subscribers,
        deflate: def.deflate,
        compressOut: def.compressOut ?? true,
        secret,
        channel: CHANNEL,
        addressPrefix: `127.${100 + ((addressSeed + index * 7) % 150)}.${(addressSeed >> 3) % 250}`,
        sampleEvery: SAMPLE_EVERY,
        concurrency: 100,
        ...(def.transport ? { transport: def.transport } : {}),
        channels,
      });
    } finally {
      clearInterval(progress);
    }
    log(
      `(${def.name}) ${conn.connected} connected in ${round(conn.elapsedMs / 1000)} s` +
        `${conn.failed ? `, ${conn.failed} failed (${conn.firstError})` : ''}; deflate negotiated by ${conn.negotiated}`,
    );
    if (conn.connected === 0) throw new Error(`no subscriber connected: ${conn.firstError}`);
    await sleep(2000);
    const rss1 = rssBytes(pids());
    const before = await clients.request<Snapshot>({ op: 'snapshot' });
    const other = new OtherCpuMeter(() => [...pids(), clients.child.pid!]);
    const cpu0 = cpuSeconds(pids());
    const clientCpu0 = cpuSeconds([clients.child.pid!]);
    log(
      `(${def.name}) publishing ${runRate}/s to ${channels} channel(s) for ${seconds} s ` +
        `(${Math.round((runRate * conn.connected) / channels)} deliveries/s offered)`,
    );
    const pub = await clients.request<PublishResult>({
      op: 'publish',
      rate: runRate,
      seconds,
      payloadBytes: runPayloadBytes,
    });
    const expected = pub.expected;
    // Drain: until every delivery arrived, nothing arrived for STALL_MS, or DRAIN_MAX_MS passed.
    let snap = await clients.request<Snapshot>({ op: 'snapshot' });
    let cpuAtLast = cpuSeconds(pids());
    let clientCpuAtLast = cpuSeconds([clients.child.pid!]);
    let lastCount = snap.deliveries;
    let lastProgress = Date.now();
    const drainStart = Date.now();
    while (snap.deliveries - before.deliveries < expected) {
      if (Date.now() - lastProgress > STALL_MS || Date.now() - drainStart > DRAIN_MAX_MS) break;
      await sleep(250);
      snap = await clients.request<Snapshot>({ op: 'snapshot' });
      if (snap.deliveries !== lastCount) {
        lastCount = snap.deliveries;
        lastProgress = Date.now();
        cpuAtLast = cpuSeconds(pids());
        clientCpuAtLast = cpuSeconds([clients.child.pid!]);
      }
    }
    const otherCpu = other.read();
    const rss2 = rssBytes(pids());
    const hist = new Histogram();
    hist.merge(await clients.request<SparseHistogram>({ op: 'histogram' }));
    const delivered = snap.deliveries - before.deliveries;
    // The schedule spans `seconds` (its last publish is due 1/rate before the end); a server that lags
    // stretches the window to its last delivery.
    const windowMs = Math.max(seconds * 1000, snap.lastDeliveryAt - pub.startedAt);
    const cpu = cpuAtLast - cpu0;
    const lost = Math.max(0, expected - delivered);
    const result: RunResult = {
      run: def.name,
      label: def.label,
      subscribers,
      channels,
      publishesPerSec: runRate,
      connected: conn.connected,
      connectFailed: conn.failed,
      negotiatedDeflate: conn.negotiated,
      published: pub.sent,
      publishFailed: pub.failed,
      expected,
      delivered,
      lost,
      closedDuringRun: snap.closed - before.closed,
      compressedFrames: snap.compressedFrames - before.compressedFrames,
      deliveriesPerSec: Math.round(delivered / (windowMs / 1000)),
      windowSeconds: round(windowMs / 1000, 2),
      latencyMs: hist.percentiles(),
      payloadBytes: pub.payloadBytes,
      bytesPerDelivery: Math.round((snap.bytes - before.bytes) / Math.max(1, delivered)),
      serverCpuSeconds: round(cpu, 2),
      serverCpuUsPerDelivery: round((cpu * 1e6) / Math.max(1, delivered)),
      serverCpuPercent: Math.round((100 * cpu) / (windowMs / 1000)),
      capacityPerSec: cpu > 0 ? Math.round(delivered / cpu) : 0,
      clientCpuPercent: Math.round((100 * (clientCpuAtLast - clientCpu0)) / (windowMs / 1000)),
      rssKbPerConnection: round((rss1 - rss0) / 1024 / conn.connected),
      rssKbPerConnectionAfterFanout: round((rss2 - rss0) / 1024 / conn.connected),
      serverRssMbAfter: Math.round(rss2 / 1024 / 1024),
      otherCpuPercent: Math.round(otherCpu),
      ...(lost > 0
        ? {
            note: `${lost} of ${expected} deliveries not arrived ${round((Date.now() - drainStart) / 1000)} s after the last publish`,
          }
        : {}),
    };
    log(
      `(${def.name}) ${delivered}/${expected} delivered, ${result.deliveriesPerSec}/s, p50 ${result.latencyMs.p50} ms ` +
        `p99 ${result.latencyMs.p99} ms, ${result.bytesPerDelivery} B/delivery, ${result.serverCpuUsPerDelivery} µs CPU/delivery, ` +
        `RSS ${result.rssKbPerConnection} KB/conn (${result.rssKbPerConnectionAfterFanout} after the fan-out); ` +
        `${Math.round((Date.now() - t0) / 1000)} s`,
    );
    if (pub.failed > 0) log(`(${def.name}) ${pub.failed} publishes failed: ${pub.firstFailure}`);
    return result;
  } finally {
    await clients.request({ op: 'close' }).catch(() => {});
    await stop(clients.child, 1000);
    await stop(server);
  }
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined || b === 0 ? null : Math.round((a / b) * 100) / 100;
}

function table(results: readonly RunResult[]): string {
  const head =
    '| run | deliveries/s | p50 ms | p99 ms | bytes/delivery | server CPU µs/delivery | capacity/s at 1 core | server CPU % | client CPU % | RSS KB/conn (after fan-out) | lost | other CPU % |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  return (
    head +
    results
      .map(
        (r) =>
          `| (${r.run}) ${r.label} | ${r.deliveriesPerSec.toLocaleString('en-US')} | ${r.latencyMs.p50} | ${r.latencyMs.p99} | ` +
          `${r.bytesPerDelivery.toLocaleString('en-US')} | ${r.serverCpuUsPerDelivery} | ${r.capacityPerSec.toLocaleString('en-US')} | ${r.serverCpuPercent} | ${r.clientCpuPercent} | ` +
          `${r.rssKbPerConnection} (${r.rssKbPerConnectionAfterFanout}) | ${r.lost.toLocaleString('en-US')} | ${r.otherCpuPercent} |`,
      )
      .join('\n')
  );
}

/**
 * The shared compressor's own cost, per event (not per delivery), at zlib levels 1 (APIX's, in
 * src/gateway/frames.ts), 6 (zlib's default, ws's) and 9, on the same events: what a level buys.
 */
function compressorCost(): Array<{ level: number; usPerEvent: number; bytes: number; ratio: number }> {
  const events = Array.from(
    { length: 300 },
    (_, i) =>
      `{"type":"tool_call_result","channel":"${CHANNEL}","id":"1764400000000-${i}","payload":` +
      `${payloadFor(i, payloadBytes, 1234567.891)},"metadata":{"timestamp":1764400000000,"version":"1"}}`,
  );
  const plain = events.reduce((n, e) => n + Buffer.byteLength(e), 0);
  const options = (level: number) => ({ finishFlush: zlibConstants.Z_SYNC_FLUSH, level, memLevel: 8 });
  for (const level of [1, 6, 9]) for (const e of events) deflateRawSync(Buffer.from(e), options(level)); // warm up
  return [1, 6, 9].map((level) => {
    const o = options(level);
    let bytes = 0;
    const t = performance.now();
    for (const e of events) bytes += deflateRawSync(Buffer.from(e), o).length - 4;
    const us = ((performance.now() - t) * 1000) / events.length;
    return {
      level,
      usPerEvent: round(us),
      bytes: Math.round(bytes / events.length),
      ratio: round(bytes / plain, 3),
    };
  });
}

async function main(): Promise<void> {
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'apix-compression-'));
  const addressSeed = Math.floor(Math.random() * 1000);
  log(
    `compression: ${subscribers} subscribers on one channel, ${rate} publishes/s for ${seconds} s, ~${payloadBytes} B ` +
      `payload; runs ${runNames.join(',')}; server core ${serverCore ?? '-'}, clients core ${loadCore ?? '-'}`,
  );
  const compressor = compressorCost();
  for (const c of compressor)
    log(
      `zlib level ${c.level}: ${c.usPerEvent} µs per event, ${c.bytes} B (${Math.round(c.ratio * 100)} % of the plain event)`,
    );
  const results: RunResult[] = [];
  const failures: Record<string, string> = {};
  try {
    for (const [i, name] of runNames.entries()) {
      const def = RUNS[name];
      if (!def) throw new Error(`unknown run ${name} (${Object.keys(RUNS).join(', ')})`);
      try {
        results.push(await runOne(def, i, tmp, addressSeed));
      } catch (err) {
        failures[name] = (err as Error).message;
        log(`(${name}) failed: ${(err as Error).message}`);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const by = (n: string): RunResult | undefined => results.find((r) => r.run === n);
  const [a, b, c, d, e, f, g, h, i, j, k, l, m] = 'abcdefghijklm'.split('').map(by);
  const bytesRatio = (x: RunResult | undefined, y: RunResult | undefined) =>
    ratio(x?.bytesPerDelivery, y?.bytesPerDelivery);
  const cpuRatio = (x: RunResult | undefined, y: RunResult | undefined) =>
    ratio(x?.serverCpuUsPerDelivery, y?.serverCpuUsPerDelivery);
  const ratios = {
    'compressed/uncompressed CPU per delivery (b/a)': ratio(
      b?.serverCpuUsPerDelivery,
      a?.serverCpuUsPerDelivery,
    ),
    'bandwidth saved by compression, % (1 - b/a bytes per delivery)':
      a && b ? Math.round((1 - b.bytesPerDelivery / a.bytesPerDelivery) * 1000) / 10 : null,
    "ws's deflate / APIX compressed, CPU per delivery (c/b)": ratio(
      c?.serverCpuUsPerDelivery,
      b?.serverCpuUsPerDelivery,
    ),
    "ws's deflate / APIX compressed, RSS per connection after the fan-out (c/b)": ratio(
      c?.rssKbPerConnectionAfterFanout,
      b?.rssKbPerConnectionAfterFanout,
    ),
    'compression on, RSS per connection after the fan-out: browser-like clients / plain-frame clients (b/f)':
      ratio(b?.rssKbPerConnectionAfterFanout, f?.rssKbPerConnectionAfterFanout),
    'metrics on/off throughput (e/d deliveries/s)': ratio(e?.deliveriesPerSec, d?.deliveriesPerSec),
    'metrics on/off capacity at one core (e/d)': ratio(e?.capacityPerSec, d?.capacityPerSec),
    'metrics on/off CPU per delivery (e/d)': ratio(e?.serverCpuUsPerDelivery, d?.serverCpuUsPerDelivery),
    'same settings twice, CPU per delivery (a/e: the noise)': ratio(
      a?.serverCpuUsPerDelivery,
      e?.serverCpuUsPerDelivery,
    ),
    'HTTP streaming / WebSocket, CPU per delivery (g/a)': cpuRatio(g, a),
    'SSE / WebSocket, CPU per delivery (h/a)': cpuRatio(h, a),
    'MessagePack / JSON, ~2 KB agent event: bytes per delivery (i/a)': bytesRatio(i, a),
    'MessagePack / JSON, ~2 KB agent event: CPU per delivery (i/a)': cpuRatio(i, a),
    "MessagePack / JSON, scenario (b)'s shape: bytes per delivery (k/j)": bytesRatio(k, j),
    "MessagePack / JSON, scenario (b)'s shape: CPU per delivery (k/j)": cpuRatio(k, j),
    "MessagePack / JSON, scenario (c)'s shape: bytes per delivery (m/l)": bytesRatio(m, l),
    "MessagePack / JSON, scenario (c)'s shape: CPU per delivery (m/l)": cpuRatio(m, l),
  };
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  const report = {
    startedAt: started.toISOString(),
    seconds: Math.round((Date.now() - started.getTime()) / 1000),
    commit,
    command: `node --import tsx bench/tools/compression.ts ${argv.join(' ')}`.trim(),
    machine: {
      cpu: cpus()[0]?.model ?? '',
      cores: availableParallelism(),
      memoryGb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
    settings: {
      subscribers,
      rate,
      seconds,
      payloadBytes,
      sampleEvery: SAMPLE_EVERY,
      pinned: serverCore !== undefined,
    },
    compressor,
    results,
    ratios,
    failures,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`\n${table(results)}\n`);
  for (const [k, v] of Object.entries(ratios)) log(`${k}: ${v ?? '–'}`);
  log(`\nwrote ${out} (${report.seconds} s)`);
}

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});
main().catch((err: unknown) => {
  killAll();
  log(`compression: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
