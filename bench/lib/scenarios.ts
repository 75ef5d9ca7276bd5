/**
 * The measurements. (a) connections: connect N authenticated, subscribed clients, then measure connect
 * rate, server RSS per connection and idle CPU with heartbeats on. (b)-(e) fan-out: subscribers on
 * one or many channels, one publisher stepping through rising delivery rates; each step reports p50/p99
 * publish-to-deliver latency, loss and server CPU per delivery. (f) dashboards: fewer clients, each on
 * many of many channels. Every fan-out run sweeps the rates coarsely, then finely (steps at most
 * `fineRatio` apart) between the last step kept up and the first not, and between the last step kept up
 * within the p99 limit and the first beyond it.
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
  /** Fine sweep: successive steps at most this factor apart (1.1: 10 %); 0: no fine sweep. */
  readonly fineRatio: number;
  /** The steps go on past the p99 limit, up to this p99 (or the first loss). */
  readonly stopP99Ms: number;
  /** Publishes per second per publisher connection, at most. */
  readonly publishesPerConnection: number;
  /** `--cpu-prof DIR`: server processes write CPU profiles there (see BENCHMARKS.md, where the time goes). */
  readonly cpuProfDir?: string;
  /** `--database-url URL`: PostgreSQL for APIX's records when it runs several workers. */
  readonly databaseUrl?: string;
}

export interface ConnectionsResult {
  readonly connections: number;
  readonly workers: number;
  readonly loadProcesses: number;
  connected?: number;
  failed?: number;
  /** Handshakes that failed and were tried again (counted once each in `connected` when they then passed). */
  retriedHandshakes?: number;
  connectSeconds?: number;
  connectsPerSec?: number;
  /** CPU (% of one core) of the server and of the load generators over both halves of the connects. */
  connectServerCpuPct?: number;
  connectLoadCpuPct?: number;
  rssBeforeMB?: number;
  /** Server RSS with half the connections. */
  rssMiddleMB?: number;
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
  /** Subscribers closed so far (cumulative over the run). */
  readonly closedSubscribers: number;
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
  /** Server CPU time (user + system, from /proc/<pid>/stat) over the step and its drain, per delivery. */
  readonly serverCpuUsPerDelivery: number | null;
  /** No loss, no failed publish and p99 within stopP99Ms. */
  readonly keptUp: boolean;
  /** Kept up with p99 within p99LimitMs. */
  readonly pass: boolean;
  /** A step of the fine sweep. */
  readonly fine?: true;
}

export interface FanoutResult {
  readonly subscribers: number;
  readonly channels: number;
  readonly ack: boolean;
  readonly nodes: number;
  connected?: number;
  connectsPerSec?: number;
  retriedHandshakes?: number;
  /** Subscriber connections closed by the server during the run (heartbeat timeouts, slow consumers). */
  closed?: number;
  steps: StepResult[];
  /** (f): channels each subscriber holds. */
  readonly channelsPerSubscriber?: number;
  /** Capacity: offered deliveries/s of the highest step kept up (0: none). */
  capacity?: number;
  /** Offered deliveries/s of the highest step kept up with p99 within the limit (0: none). */
  capacityP99?: number;
  /** Deliveries/s of the highest step with p99 within the limit and no loss (0: none passed). */
  best: number;
  /** Deliveries/s of the highest step without loss, whatever its latency. */
  maxNoLoss: number;
  bestP50?: number;
  bestP99?: number;
  stoppedBecause?: string;
  error?: string;
}

export type Log = (line: string, transient?: boolean) => void;

// Each run starts at its own block of source addresses: the previous run's connections leave their ports in
// TIME_WAIT for a minute, and binding beside 10,000 of them on the same address made a run right after another
// connect at half the rate (the load generator's kernel time).
let nextAddress = 1 + 1000 * Math.floor(Math.random() * 4000);
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
    ...(s.cpuProfDir ? { cpuProfDir: s.cpuProfDir } : {}),
    ...(s.databaseUrl ? { databaseUrl: s.databaseUrl } : {}),
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
  channelGroups: readonly (readonly string[])[],
  ack: boolean,
  retries: number,
  s: BenchSettings,
  log: Log,
  label: string,
  offset = 0,
): Promise<{
  connected: number;
  failed: number;
  retried: number;
  seconds: number;
  firstError: string | undefined;
}> {
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
          firstIndex: offset + k * per,
          count: Math.max(0, Math.min(per, total - k * per)),
          role: 'subscriber',
          channelGroups,
          ack,
          addressBase,
          perAddress: s.perAddress,
          concurrency: Math.max(8, Math.ceil(s.concurrency / gens.length)),
          retries,
        }),
      ),
    );
    return {
      connected: results.reduce((n, r) => n + r.connected, 0),
      failed: results.reduce((n, r) => n + r.failed, 0),
      retried: results.reduce((n, r) => n + r.retried, 0),
      // The handshakes' own time, from each generator's first handshake (after it minted its tokens:
      // clients bring tokens their backend minted beforehand) to its last; the generators run at once.
      seconds: Math.max(...results.map((r) => r.elapsedMs)) / 1000,
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
    // Two halves: RSS per connection is the growth over the second half, which leaves out what a fresh
    // server allocates or frees on its first connections (and after start-up, e.g. a shrinking heap).
    const half = Math.floor(connections / 2);
    const target = clientTarget(def, server, s);
    const connectCpu = new CpuMeter(() => server.pids());
    const connectLoadCpu = new CpuMeter(() => gens.map((g) => g.pid));
    const groups = [['agent:bench']];
    const c1 = await connectAll(gens, target, half, groups, false, 0, s, log, `${label} (1st half)`);
    await sleep(2000);
    const middle = rssBytes(server.pids());
    const c2 = await connectAll(
      gens,
      target,
      connections - half,
      groups,
      false,
      0,
      s,
      log,
      `${label} (2nd half)`,
      half,
    );
    r.connectServerCpuPct = Math.round(connectCpu.read());
    r.connectLoadCpuPct = Math.round(connectLoadCpu.read());
    const connected = c1.connected + c2.connected;
    const seconds = c1.seconds + c2.seconds;
    r.connected = connected;
    r.failed = c1.failed + c2.failed;
    r.retriedHandshakes = c1.retried + c2.retried;
    r.connectSeconds = Math.round(seconds * 100) / 100;
    r.connectsPerSec = Math.round(connected / seconds);
    const firstError = c1.firstError ?? c2.firstError;
    if (firstError) r.error = `${r.failed} failed; first: ${firstError}`;
    await sleep(2000);
    const after = rssBytes(server.pids());
    r.rssBeforeMB = mb(before);
    r.rssMiddleMB = mb(middle);
    r.rssAfterMB = mb(after);
    r.rssPerConnKB =
      c2.connected > 0 ? Math.round(((after - middle) / 1024 / c2.connected) * 100) / 100 : undefined;
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
      `RSS ${r.rssBeforeMB ?? '-'} -> ${r.rssMiddleMB ?? '-'} -> ${r.rssAfterMB ?? '-'} MB (${r.rssPerConnKB ?? '-'} KB/conn), ` +
      `CPU % while connecting: server ${r.connectServerCpuPct ?? '-'} load ${r.connectLoadCpuPct ?? '-'}; ` +
      `idle CPU ${r.idleCpuPct ?? '-'}% (other processes ${r.otherCpuPct ?? '-'}%)${r.error ? `  ERROR: ${r.error.split('\n')[0]}` : ''}`,
  );
  return r;
}

export interface FanoutPhase {
  readonly scenario: 'b' | 'c' | 'd' | 'f';
  /** 1: every subscriber on `agent:bench`; more: subscriber i on `agent:bench-<i % channels>`. */
  readonly channels: number;
  /**
   * Channels per subscriber (default 1): subscriber i holds `agent:bench-<(i + k * stride) % channels>`
   * for k < perClient, stride = floor(channels / perClient), so every channel has the same number of
   * subscribers when the counts divide evenly ((f) dashboards: 1,000 clients on 100 of 1,000 channels).
   */
  readonly perClient?: number;
}

export interface FanoutSpec {
  readonly subscribers: number;
  readonly ack: boolean;
  /**
   * Measured one after the other over the same connections: each subscriber holds one channel of every
   * phase, so (b) and (c) share one connect.
   */
  readonly phases: readonly FanoutPhase[];
  /** Offered deliveries per second, in order. */
  readonly rates: readonly number[];
}

function channelNames(n: number): string[] {
  return n === 1 ? ['agent:bench'] : Array.from({ length: n }, (_, k) => `agent:bench-${k}`);
}

/**
 * The channel groups of a phase (connection i takes group[i % group.length] of every group, see
 * ConnectRequest) and the number of subscribers of each channel.
 */
function phaseGroups(p: FanoutPhase, subscribers: number): { groups: string[][]; subsOf: number[] } {
  const names = channelNames(p.channels);
  const perClient = Math.min(p.perClient ?? 1, p.channels);
  const stride = Math.max(1, Math.floor(p.channels / perClient));
  const groups = Array.from({ length: perClient }, (_, k) =>
    names.map((_, j) => names[(j + k * stride) % names.length]!),
  );
  const subsOf = new Array<number>(names.length).fill(0);
  for (let i = 0; i < subscribers; i++) {
    const seen = new Set<number>();
    for (let k = 0; k < perClient; k++) seen.add((i + k * stride) % names.length);
    for (const j of seen) subsOf[j]!++;
  }
  return { groups, subsOf };
}

/**
 * Rates strictly between lo and hi, geometric, so that no two successive steps (lo and hi included) are
 * more than `ratio` apart; rounded to 10 deliveries/s.
 */
export function fineRates(lo: number, hi: number, ratio: number): number[] {
  if (!(ratio > 1) || !(lo > 0) || hi <= lo * ratio) return [];
  // Rounding can move a step by up to 5/s: aim a little under the ratio.
  const n = Math.ceil(Math.log(hi / lo) / Math.log(1 + (ratio - 1) * 0.97));
  const out: number[] = [];
  for (let k = 1; k < n; k++) {
    const r = Math.round((lo * (hi / lo) ** (k / n)) / 10) * 10;
    if (r > lo && r < hi && r !== out.at(-1)) out.push(r);
  }
  return out;
}

/**
 * Waits until no more deliveries arrive (at most 15 s), so that the backlog of an overloaded step does not
 * spill into the next one.
 */
async function quiesce(gens: readonly Loadgen[]): Promise<void> {
  const total = async (): Promise<number> =>
    (await Promise.all(gens.map((g) => g.stats(false)))).reduce(
      (n, x) => n + x.received + x.stale + x.redelivered,
      0,
    );
  const deadline = performance.now() + 15_000;
  let last = await total();
  let still = 0;
  while (still < 2 && performance.now() < deadline) {
    await sleep(200);
    const now = await total();
    still = now === last ? still + 1 : 0;
    last = now;
  }
}

/** Waits (at most 20 s) until the server uses under 10 % of a core over half a second; returns seconds. */
async function settle(pids: () => readonly number[]): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < 20_000) {
    const cpu = new CpuMeter(pids);
    await sleep(500);
    if (cpu.read() < 10) break;
  }
  return (performance.now() - t0) / 1000;
}

/** Scenarios (b), (c), (d), (f) and, on the Redis targets, (e): one result per phase. */
export async function runFanout(
  def: TargetDef,
  spec: FanoutSpec,
  s: BenchSettings,
  log: Log,
): Promise<FanoutResult[]> {
  const layout = spec.phases.map((p) => phaseGroups(p, spec.subscribers));
  const groups = layout.flatMap((l) => l.groups);
  const results: FanoutResult[] = spec.phases.map((p) => ({
    subscribers: spec.subscribers,
    channels: p.channels,
    ...(p.perClient && p.perClient > 1 ? { channelsPerSubscriber: p.perClient } : {}),
    ack: spec.ack,
    nodes: def.nodes,
    steps: [],
    best: 0,
    maxNoLoss: 0,
  }));
  // Deliveries per publish, on average over a phase's channels.
  const perPublishOf = layout.map((l) => l.subsOf.reduce((n, x) => n + x, 0) / l.subsOf.length);
  // Enough publisher connections that none sends more than publishesPerConnection frames/s at the top
  // step (APIX limits inbound frames per connection; every target gets the same pool). The fine sweep
  // stays below the top coarse step.
  const maxPublishRate = Math.max(...perPublishOf.map((d) => Math.max(...spec.rates) / d));
  const publishers = Math.min(2000, Math.max(1, Math.ceil(maxPublishRate / s.publishesPerConnection)));
  const redis = def.name.includes('redis');
  const tag = (p: FanoutPhase): string => `[${def.name}] (${p.scenario}${redis ? '/e' : ''})`;
  const head = `[${def.name}] (${spec.phases.map((p) => p.scenario).join(',')}${redis ? '/e' : ''})`;
  let run: Running | undefined;
  let gens: Loadgen[] = [];
  try {
    run = await def.start(startContext(s, 1));
    const server = run;
    gens = startLoadgens(Math.max(1, Math.ceil(spec.subscribers / s.perProcess)) + 1, s.loadCpu, s.root);
    const pub = gens.at(-1)!;
    const subscriberGens = gens.slice(0, -1);
    const c = await connectAll(
      subscriberGens,
      clientTarget(def, server, s),
      spec.subscribers,
      groups,
      spec.ack,
      3,
      s,
      log,
      `${head} subscribers`,
    );
    for (const r of results) {
      r.connected = c.connected;
      r.connectsPerSec = Math.round(c.connected / c.seconds);
      r.retriedHandshakes = c.retried;
    }
    if (c.failed > 0) throw new Error(`${c.failed} subscribers failed to connect; first: ${c.firstError}`);
    const p = await pub.connect({
      target: clientTarget(def, server, s, server.urls.slice(0, 1)),
      firstIndex: 0,
      count: publishers,
      role: 'publisher',
      channelGroups: [],
      ack: false,
      addressBase: takeAddresses(publishers, s.perAddress),
      perAddress: s.perAddress,
      concurrency: 50,
      retries: 3,
    });
    if (p.connected !== publishers) throw new Error(`publisher failed to connect: ${p.firstError}`);
    log(
      `${head} ${c.connected} subscribers${spec.ack ? ' (acknowledged)' : ''}, ${server.urls.length} node(s), ` +
        `connected in ${c.seconds.toFixed(1)} s; ${publishers} publisher connection(s)`,
    );
    await sleep(500);
    // Measure the steady state, for every target alike: let the server finish what the connects left
    // it (APIX writes its connection records and audit entries after the fact), then warm it up at the
    // first rate for one step's length, unmeasured.
    const settled = await settle(() => server.pids());
    const warm = channelNames(spec.phases[0]!.channels);
    await pub.publish({
      step: -1,
      rate: spec.rates[0]! / perPublishOf[0]!,
      durationMs: s.stepSeconds * 1000,
      channels: warm,
      random: warm.length > 1,
    });
    await quiesce(subscriberGens);
    log(`${head} settled in ${settled.toFixed(1)} s, warmed up for ${s.stepSeconds} s`);

    const loadPids = (): number[] => gens.map((g) => g.pid);
    let stepId = 0;
    for (const [pi, phase] of spec.phases.entries()) {
      const r = results[pi]!;
      const label = tag(phase);
      const channels = channelNames(phase.channels);
      const { subsOf } = layout[pi]!;
      const perPublish = perPublishOf[pi]!;

      /** One step at `offered` deliveries/s. */
      const measure = async (offered: number, progress: string, fine: boolean): Promise<StepResult> => {
        const step = stepId++;
        const publishesPerSec = offered / perPublish;
        log(
          `${label} ${progress}: ${offered} deliveries/s (${+publishesPerSec.toFixed(2)} publishes/s)`,
          true,
        );
        await quiesce(subscriberGens);
        await Promise.all(subscriberGens.map((g) => g.reset(step)));
        const serverCpu = new CpuMeter(() => server.pids());
        const loadCpu = new CpuMeter(loadPids);
        const otherCpu = new OtherCpuMeter(() => [process.pid, ...server.pids(), ...loadPids()]);
        const pr = await pub.publish({
          step,
          rate: publishesPerSec,
          durationMs: s.stepSeconds * 1000,
          channels,
          random: channels.length > 1,
        });
        const expected = pr.counts.reduce((n, k, ch) => n + k * subsOf[ch]!, 0);
        const drainUntil = performance.now() + s.drainMs;
        while (performance.now() < drainUntil) {
          const st = await Promise.all(subscriberGens.map((g) => g.stats(false)));
          if (st.reduce((n, x) => n + x.received, 0) >= expected) break;
          await sleep(50);
        }
        const serverCpuPct = serverCpu.read();
        const serverCpuSeconds = serverCpu.seconds();
        const loadCpuPct = loadCpu.read();
        const otherCpuPct = otherCpu.read();
        const st = await Promise.all(subscriberGens.map((g) => g.stats(true)));
        const h = new Histogram();
        for (const x of st) if (x.histogram) h.merge(x.histogram);
        const received = st.reduce((n, x) => n + x.received, 0);
        const closed = st.reduce((n, x) => n + x.closed, 0);
        r.closed = closed;
        const pc = h.percentiles();
        const lost = Math.max(0, expected - received);
        const deliveriesPerSec = Math.round(received / Math.max(s.stepSeconds, pr.elapsedMs / 1000));
        // The load is open loop (every publish goes out, late or not): a server that falls behind shows
        // up as loss or latency.
        const keptUp = lost === 0 && pr.failed === 0 && pc.p99 <= s.stopP99Ms;
        const result: StepResult = {
          offeredDeliveriesPerSec: offered,
          publishesPerSec: +publishesPerSec.toFixed(3),
          published: pr.sent,
          publishFailed: pr.failed,
          expected,
          received,
          lost,
          redelivered: st.reduce((n, x) => n + x.redelivered, 0),
          closedSubscribers: closed,
          deliveriesPerSec,
          p50: pc.p50,
          p90: pc.p90,
          p99: pc.p99,
          max: pc.max,
          serverCpuPct: Math.round(serverCpuPct),
          loadCpuPct: Math.round(loadCpuPct),
          otherCpuPct: Math.round(otherCpuPct),
          ...(pr.firstFailure ? { firstPublishFailure: pr.firstFailure } : {}),
          publisherBacklogBytes: pr.maxBufferedBytes,
          serverCpuUsPerDelivery:
            received > 0 ? Math.round(((serverCpuSeconds * 1e6) / received) * 10) / 10 : null,
          keptUp,
          pass: keptUp && pc.p99 <= s.p99LimitMs,
          ...(fine ? { fine: true as const } : {}),
        };
        r.steps.push(result);
        log(
          `${label} ${fine ? 'fine ' : ''}${String(offered).padStart(8)} deliveries/s: p50 ${result.p50} ms, p99 ${result.p99} ms, ` +
            `max ${result.max} ms, lost ${lost}/${expected}${result.publishFailed ? `, ${result.publishFailed} publishes failed` : ''}` +
            `${closed ? `, ${closed} subscribers closed` : ''}, ` +
            `CPU % server ${result.serverCpuPct} load ${result.loadCpuPct} other ${result.otherCpuPct}, ` +
            `${result.serverCpuUsPerDelivery ?? '-'} µs server CPU/delivery; ` +
            `${result.pass ? 'ok' : keptUp ? `kept up, p99 over ${s.p99LimitMs} ms` : 'NOT kept up'}` +
            (pr.firstFailure ? `\n    first failed publish: ${pr.firstFailure}` : ''),
        );
        if (lost === 0 && pr.failed === 0) r.maxNoLoss = Math.max(r.maxNoLoss, result.deliveriesPerSec);
        if (result.pass && result.deliveriesPerSec > r.best) {
          r.best = result.deliveriesPerSec;
          r.bestP50 = result.p50;
          r.bestP99 = result.p99;
        }
        if (!keptUp && r.stoppedBecause === undefined) {
          r.stoppedBecause =
            lost > 0
              ? `${lost} of ${expected} deliveries lost at ${offered}/s`
              : pr.failed > 0
                ? `${pr.failed} publishes failed at ${offered}/s`
                : `p99 ${result.p99} ms > ${s.stopP99Ms} ms at ${offered}/s`;
        }
        await sleep(300);
        return result;
      };

      // The coarse sweep, up to the first step not kept up.
      for (const [i, offered] of spec.rates.entries()) {
        const x = await measure(offered, `step ${i + 1}/${spec.rates.length}`, false);
        if (!x.keptUp) break;
      }
      // The fine sweeps: between the highest step kept up within the p99 limit and the next step above
      // it, then between the highest step kept up and the first not; each stops at its first miss.
      const sweeps: Array<{ what: string; ok: (x: StepResult) => boolean }> = [
        { what: `p99 ≤ ${s.p99LimitMs} ms`, ok: (x) => x.pass },
        { what: 'kept up', ok: (x) => x.keptUp },
      ];
      for (const sw of sweeps) {
        if (s.fineRatio <= 1) break;
        const sorted = [...r.steps].sort((x, y) => x.offeredDeliveriesPerSec - y.offeredDeliveriesPerSec);
        const lo = sorted.filter(sw.ok).at(-1)?.offeredDeliveriesPerSec;
        const hi = sorted.find(
          (x) => lo !== undefined && x.offeredDeliveriesPerSec > lo && !sw.ok(x),
        )?.offeredDeliveriesPerSec;
        if (lo === undefined || hi === undefined) continue;
        const measured = new Set(sorted.map((x) => x.offeredDeliveriesPerSec));
        const fine = fineRates(lo, hi, s.fineRatio).filter((x) => !measured.has(x));
        for (const [i, offered] of fine.entries()) {
          const x = await measure(offered, `fine step ${i + 1}/${fine.length} (${sw.what})`, true);
          if (!sw.ok(x)) break;
        }
      }
      r.capacity = Math.max(0, ...r.steps.filter((x) => x.keptUp).map((x) => x.offeredDeliveriesPerSec));
      r.capacityP99 = Math.max(0, ...r.steps.filter((x) => x.pass).map((x) => x.offeredDeliveriesPerSec));
      log(
        `${label} capacity ${r.capacity} deliveries/s kept up, ${r.capacityP99} with p99 ≤ ${s.p99LimitMs} ms` +
          `${r.stoppedBecause ? ` (first miss: ${r.stoppedBecause})` : ' (every step kept up)'}`,
      );
    }
  } catch (err) {
    const message = (err as Error).message;
    for (const r of results) if (r.steps.length === 0 || !r.stoppedBecause) r.error ??= message;
    log(`${head} ERROR: ${message.split('\n')[0]}`);
  } finally {
    if (run) await run.stop();
    await Promise.all(gens.map((g) => g.close()));
  }
  return results;
}
