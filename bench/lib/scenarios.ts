/**
 * The measurements. (a) connections: connect N authenticated, subscribed clients, then measure connect
 * rate, server RSS per connection and idle CPU with heartbeats on. (b)-(e) fan-out: subscribers on
 * one or many channels, one publisher stepping through rising delivery rates; each step reports p50/p99
 * publish-to-deliver latency and loss, and the run stops at the first step with loss or p99 > 100 ms.
 */
import { Histogram } from './histogram.ts';
import { startLoadgens } from './pool.ts';
import type { Loadgen } from './pool.ts';
import { CpuMeter, OtherCpuMeter, rssBytes, sleep } from './proc.ts';
import type { ClientTarget } from './messages.ts';
import type { Running, StartContext, TargetDef } from './targets.ts';

export interface BenchSettings {
  readonly root: string;
  readonly tmpDir: string;
  readonly serverCpu: number | undefined;
  readonly loadCpu: number | undefined;
  readonly jwtSecret: string;
  readonly org: string;
  readonly heartbeatMs: number;
  readonly perProcess: number;
  readonly perWorker: number;
  readonly perAddress: number;
  readonly concurrency: number;
  readonly idleSeconds: number;
  readonly stepSeconds: number;
  readonly drainMs: number;
  readonly p99LimitMs: number;
}

export interface ConnectionsResult {
  readonly connections: number;
  readonly workers: number;
  readonly loadProcesses: number;
  connected?: number;
  failed?: number;
  connectSeconds?: number;
  connectsPerSec?: number;
  rssBeforeMB?: number;
  rssAfterMB?: number;
  rssPerConnKB?: number;
  idleCpuPct?: number;
  /** CPU used by other processes on the machine meanwhile (% of one core): noise in the measurement. */
  otherCpuPct?: number;
  /** Connections that closed after their handshake (heartbeat timeouts, server closes). */
  closedAfterConnect?: number;
  error?: string;
}

export interface StepResult {
  readonly offeredDeliveriesPerSec: number;
  readonly publishesPerSec: number;
  readonly published: number;
  readonly publishFailed: number;
  readonly expected: number;
  readonly received: number;
  readonly lost: number;
  readonly redelivered: number;
  readonly deliveriesPerSec: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly serverCpuPct: number;
  readonly loadCpuPct: number;
  readonly otherCpuPct: number;
  readonly firstPublishFailure?: string;
  readonly publisherBacklogBytes: number;
  readonly pass: boolean;
}

export interface FanoutResult {
  readonly subscribers: number;
  readonly channels: number;
  readonly ack: boolean;
  readonly nodes: number;
  connected?: number;
  steps: StepResult[];
  /** Deliveries/s of the highest step with p99 within the limit and no loss (0: none passed). */
  best: number;
  bestP50?: number;
  bestP99?: number;
  stoppedBecause?: string;
  error?: string;
}

export type Log = (line: string, transient?: boolean) => void;

let nextAddress = 1;
/** Fresh source addresses for every run, so no run meets the previous one's TIME_WAIT sockets. */
function takeAddresses(connections: number, perAddress: number): number {
  const base = nextAddress;
  nextAddress += Math.ceil(connections / perAddress) + 1;
  return base;
}

function startContext(s: BenchSettings, workers: number): StartContext {
  return {
    root: s.root,
    tmpDir: s.tmpDir,
    cpu: s.serverCpu,
    jwtSecret: s.jwtSecret,
    heartbeatMs: s.heartbeatMs,
    workers,
  };
}

function clientTarget(def: TargetDef, run: Running, s: BenchSettings, urls = run.urls): ClientTarget {
  return { kind: def.kind, urls, jwtSecret: s.jwtSecret, org: s.org };
}

/** Connects `total` clients spread over the load generators; logs progress. */
async function connectAll(
  gens: Loadgen[],
  target: ClientTarget,
  total: number,
  channels: readonly string[],
  ack: boolean,
  s: BenchSettings,
  log: Log,
  label: string,
): Promise<{ connected: number; failed: number; seconds: number; firstError: string | undefined }> {
  const addressBase = takeAddresses(total, s.perAddress);
  const per = Math.ceil(total / gens.length);
  const started = performance.now();
  const ticker = setInterval(() => {
    const c = gens.reduce((n, g) => n + g.connected, 0);
    const f = gens.reduce((n, g) => n + g.failed, 0);
    const secs = (performance.now() - started) / 1000;
    log(`${label}: ${c}/${total} connected, ${f} failed, ${Math.round(c / secs)}/s`, true);
  }, 1000);
  try {
    const results = await Promise.all(
      gens.map((g, k) =>
        g.connect({
          target,
          firstIndex: k * per,
          count: Math.max(0, Math.min(per, total - k * per)),
          role: 'subscriber',
          channels,
          ack,
          addressBase,
          perAddress: s.perAddress,
          concurrency: Math.max(8, Math.ceil(s.concurrency / gens.length)),
        }),
      ),
    );
    return {
      connected: results.reduce((n, r) => n + r.connected, 0),
      failed: results.reduce((n, r) => n + r.failed, 0),
      seconds: (performance.now() - started) / 1000,
      firstError: results.find((r) => r.firstError)?.firstError,
    };
  } finally {
    clearInterval(ticker);
  }
}

const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** Scenario (a). */
export async function runConnections(
  def: TargetDef,
  connections: number,
  s: BenchSettings,
  log: Log,
): Promise<ConnectionsResult> {
  const workers = Math.max(1, Math.ceil(connections / s.perWorker));
  const loadProcesses = Math.max(1, Math.ceil(connections / s.perProcess));
  const r: ConnectionsResult = { connections, workers, loadProcesses };
  const label = `[${def.name}] (a) ${connections} connections`;
  let run: Running | undefined;
  let gens: Loadgen[] = [];
  try {
    run = await def.start(startContext(s, workers));
    const server = run;
    await sleep(1000);
    const before = rssBytes(server.pids());
    gens = startLoadgens(loadProcesses, s.loadCpu, s.root);
    const c = await connectAll(
      gens,
      clientTarget(def, server, s),
      connections,
      ['agent:bench'],
      false,
      s,
      log,
      label,
    );
    r.connected = c.connected;
    r.failed = c.failed;
    r.connectSeconds = Math.round(c.seconds * 100) / 100;
    r.connectsPerSec = Math.round(c.connected / c.seconds);
    if (c.firstError) r.error = `${c.failed} failed; first: ${c.firstError}`;
    await sleep(2000);
    const after = rssBytes(server.pids());
    r.rssBeforeMB = mb(before);
    r.rssAfterMB = mb(after);
    r.rssPerConnKB =
      c.connected > 0 ? Math.round(((after - before) / 1024 / c.connected) * 100) / 100 : undefined;
    log(`${label}: connected; idle for ${s.idleSeconds} s with heartbeats every ${s.heartbeatMs} ms`, true);
    const cpu = new CpuMeter(() => server.pids());
    const other = new OtherCpuMeter(() => [process.pid, ...server.pids(), ...gens.map((g) => g.pid)]);
    await sleep(s.idleSeconds * 1000);
    r.idleCpuPct = Math.round(cpu.read() * 10) / 10;
    r.otherCpuPct = Math.round(other.read());
    const stats = await Promise.all(gens.map((g) => g.stats(false)));
    r.closedAfterConnect = stats.reduce((n, x) => n + x.closed, 0);
  } catch (err) {
    r.error = (err as Error).message;
  } finally {
    if (run) await run.stop();
    await Promise.all(gens.map((g) => g.close()));
  }
  log(
    `${label}: ${r.connected ?? 0} connected in ${r.connectSeconds ?? '-'} s (${r.connectsPerSec ?? '-'}/s), ` +
      `RSS ${r.rssBeforeMB ?? '-'} -> ${r.rssAfterMB ?? '-'} MB (${r.rssPerConnKB ?? '-'} KB/conn), ` +
      `idle CPU ${r.idleCpuPct ?? '-'}% (other processes ${r.otherCpuPct ?? '-'}%)${r.error ? `  ERROR: ${r.error.split('\n')[0]}` : ''}`,
  );
  return r;
}

export interface FanoutSpec {
  readonly scenario: 'b' | 'c' | 'd';
  readonly subscribers: number;
  readonly channels: number;
  readonly ack: boolean;
  /** Offered deliveries per second, in order. */
  readonly rates: readonly number[];
}

/** Scenarios (b), (c), (d) and, on the Redis targets, (e). */
export async function runFanout(
  def: TargetDef,
  spec: FanoutSpec,
  s: BenchSettings,
  log: Log,
): Promise<FanoutResult> {
  const channels =
    spec.channels === 1
      ? ['agent:bench']
      : Array.from({ length: spec.channels }, (_, k) => `agent:bench-${k}`);
  const subsOf = channels.map(
    (_, k) =>
      Math.floor(spec.subscribers / channels.length) + (k < spec.subscribers % channels.length ? 1 : 0),
  );
  const perPublish = spec.subscribers / channels.length;
  const r: FanoutResult = {
    subscribers: spec.subscribers,
    channels: channels.length,
    ack: spec.ack,
    nodes: def.nodes,
    steps: [],
    best: 0,
  };
  const label = `[${def.name}] (${spec.scenario}${def.nodes > 1 || def.name.includes('redis') ? '/e' : ''})`;
  let run: Running | undefined;
  let gens: Loadgen[] = [];
  try {
    run = await def.start(startContext(s, 1));
    const server = run;
    gens = startLoadgens(Math.max(1, Math.ceil(spec.subscribers / s.perProcess)), s.loadCpu, s.root);
    const [pub] = startLoadgens(1, s.loadCpu, s.root);
    gens.push(pub!);
    const subscriberGens = gens.slice(0, -1);
    const target = clientTarget(def, server, s);
    const c = await connectAll(
      subscriberGens,
      target,
      spec.subscribers,
      channels,
      spec.ack,
      s,
      log,
      `${label} subscribers`,
    );
    r.connected = c.connected;
    if (c.failed > 0) throw new Error(`${c.failed} subscribers failed to connect; first: ${c.firstError}`);
    const p = await pub!.connect({
      target: clientTarget(def, server, s, server.urls.slice(0, 1)),
      firstIndex: 0,
      count: 1,
      role: 'publisher',
      channels: [],
      ack: false,
      addressBase: takeAddresses(1, s.perAddress),
      perAddress: s.perAddress,
      concurrency: 1,
    });
    if (p.connected !== 1) throw new Error(`publisher failed to connect: ${p.firstError}`);
    log(
      `${label} ${c.connected} subscribers on ${channels.length} channel(s)${spec.ack ? ', acknowledged' : ''} in ${c.seconds.toFixed(1)} s`,
    );
    await sleep(500);

    const loadPids = (): number[] => gens.map((g) => g.pid);
    for (let i = 0; i < spec.rates.length; i++) {
      const offered = spec.rates[i]!;
      const publishesPerSec = offered / perPublish;
      const durationMs = s.stepSeconds * 1000;
      log(
        `${label} step ${i + 1}/${spec.rates.length}: ${offered} deliveries/s (${+publishesPerSec.toFixed(2)} publishes/s)`,
        true,
      );
      await Promise.all(subscriberGens.map((g) => g.reset(i)));
      const serverCpu = new CpuMeter(() => server.pids());
      const loadCpu = new CpuMeter(loadPids);
      const otherCpu = new OtherCpuMeter(() => [process.pid, ...server.pids(), ...loadPids()]);
      const pr = await pub!.publish({
        step: i,
        rate: publishesPerSec,
        durationMs,
        channels,
        random: channels.length > 1,
      });
      const expected = pr.counts.reduce((n, k, ch) => n + k * subsOf[ch]!, 0);
      const drainUntil = performance.now() + s.drainMs;
      let received = 0;
      while (performance.now() < drainUntil) {
        const st = await Promise.all(subscriberGens.map((g) => g.stats(false)));
        received = st.reduce((n, x) => n + x.received, 0);
        if (received >= expected) break;
        await sleep(50);
      }
      const serverCpuPct = serverCpu.read();
      const loadCpuPct = loadCpu.read();
      const otherCpuPct = otherCpu.read();
      const st = await Promise.all(subscriberGens.map((g) => g.stats(true)));
      const h = new Histogram();
      for (const x of st) if (x.histogram) h.merge(x.histogram);
      received = st.reduce((n, x) => n + x.received, 0);
      const pc = h.percentiles();
      const lost = Math.max(0, expected - received);
      const step: StepResult = {
        offeredDeliveriesPerSec: offered,
        publishesPerSec: +publishesPerSec.toFixed(3),
        published: pr.sent,
        publishFailed: pr.failed,
        expected,
        received,
        lost,
        redelivered: st.reduce((n, x) => n + x.redelivered, 0),
        deliveriesPerSec: Math.round(received / Math.max(s.stepSeconds, pr.elapsedMs / 1000)),
        p50: pc.p50,
        p90: pc.p90,
        p99: pc.p99,
        max: pc.max,
        serverCpuPct: Math.round(serverCpuPct),
        loadCpuPct: Math.round(loadCpuPct),
        otherCpuPct: Math.round(otherCpuPct),
        ...(pr.firstFailure ? { firstPublishFailure: pr.firstFailure } : {}),
        publisherBacklogBytes: pr.maxBufferedBytes,
        pass: lost === 0 && pr.failed === 0 && pc.p99 <= s.p99LimitMs,
      };
      r.steps.push(step);
      log(
        `${label} ${String(offered).padStart(8)} deliveries/s: p50 ${step.p50} ms, p99 ${step.p99} ms, ` +
          `max ${step.max} ms, lost ${lost}/${expected}${step.publishFailed ? `, ${step.publishFailed} publishes failed` : ''}, ` +
          `CPU % server ${step.serverCpuPct} load ${step.loadCpuPct} other ${step.otherCpuPct} ${step.pass ? 'ok' : 'FAIL'}` +
          (pr.firstFailure ? `\n    first failed publish: ${pr.firstFailure}` : ''),
      );
      if (!step.pass) {
        r.stoppedBecause =
          lost > 0
            ? `${lost} of ${expected} deliveries lost at ${offered}/s`
            : pr.failed > 0
              ? `${pr.failed} publishes failed at ${offered}/s`
              : `p99 ${step.p99} ms > ${s.p99LimitMs} ms at ${offered}/s`;
        break;
      }
      r.best = step.deliveriesPerSec;
      r.bestP50 = step.p50;
      r.bestP99 = step.p99;
      await sleep(300);
    }
  } catch (err) {
    r.error = (err as Error).message;
    log(`${label} ERROR: ${r.error.split('\n')[0]}`);
  } finally {
    if (run) await run.stop();
    await Promise.all(gens.map((g) => g.close()));
  }
  return r;
}
