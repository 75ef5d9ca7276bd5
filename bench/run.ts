/**
 * `npm run bench [-- options]`: the APIX load benchmark. Starts every server it measures (pinned to
 * core 0), drives them from load-generator processes (pinned to core 1), prints progress and a report,
 * writes bench/results/*.json, the SVG charts and (full runs) the results section of BENCHMARKS.md,
 * and stops everything it started, also on Ctrl-C.
 *
 * Options (defaults in brackets):
 *   --quick                  small and fast: 5,000 connections/subscribers, 500 channels, 2 s steps
 *                            ((f) keeps its sizes)
 *   --targets LIST           baseline (or ws),socketio,apix         [all three, in one run]
 *                            (also: apix-flush-off, APIX with APIX_WRITE_FLUSH_MS=0; apix-audit-off; apix-records-off)
 *   --scenarios LIST         a,b,c,d,e,f                            [all]
 *   --connections LIST       scenario (a) sizes                     [10000,50000,100000]
 *   --subscribers N          fan-out subscribers                    [10000]
 *   --channels N             scenario (c) channels                  [1000]
 *   --dashboard-clients N    scenario (f) clients                   [1000]
 *   --dashboard-channels N   scenario (f) channels                  [1000]
 *   --dashboard-per-client N scenario (f) channels per client       [100]
 *   --rates LIST             offered deliveries/s per step          [10000,...,1000000]
 *   --fine-ratio R           fine sweep after the coarse one: steps at most R apart, between the last
 *                            step kept up and the first not, and likewise for the p99 limit [1.1]
 *   --no-fine                the coarse steps only
 *   --step-seconds N         publishing time per step               [3]
 *   --drain-ms N             wait for late deliveries after a step  [3000]
 *   --p99-ms N               the latency limit of a passing step    [20]
 *   --stop-p99-ms N          a step with a higher p99 is not kept up [2000]
 *   --budget-minutes N       (a) sizes that would overrun are skipped [15]
 *   --idle-seconds N         scenario (a) idle CPU window           [20]
 *   --heartbeat-ms N         heartbeat interval of every server     [10000]
 *   --per-process N          connections per load-generator process [12500]
 *   --per-worker N           connections per server process in (a)  [15000]
 *   --concurrency N          handshakes in flight, in total         [100]
 *   --publishes-per-connection N  publisher pool sizing (APIX caps frames/s per connection) [100]
 *   --cpu-prof DIR           server processes write V8 CPU profiles (.cpuprofile) into DIR
 *   --database-url URL       PostgreSQL for APIX's records when (a) runs it with several workers
 *                            (without it, several workers run with APIX_RECORDS=off)
 *   --no-pin                 do not use taskset
 *   --no-doc                 do not rewrite BENCHMARKS.md (quick runs never do)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cores, killAll, setNiceness } from './lib/proc.ts';
import { writeReport } from './lib/report.ts';
import type { BenchResults } from './lib/report.ts';
import { runConnections, runFanout } from './lib/scenarios.ts';
import type { BenchSettings, FanoutPhase, Log } from './lib/scenarios.ts';
import { TARGETS } from './lib/targets.ts';
import type { Scenario, TargetDef } from './lib/targets.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`);
    const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (v !== undefined) out.set(k, v);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out.set(k, argv[++i]!);
    else out.set(k, true);
  }
  return out;
}

const KNOWN = new Set([
  'quick',
  'targets',
  'scenarios',
  'connections',
  'subscribers',
  'channels',
  'rates',
  'step-seconds',
  'drain-ms',
  'p99-ms',
  'idle-seconds',
  'heartbeat-ms',
  'per-process',
  'per-worker',
  'concurrency',
  'no-pin',
  'no-doc',
  'help',
  'nice',
  'stop-p99-ms',
  'budget-minutes',
  'publishes-per-connection',
  'cpu-prof',
  'database-url',
  'dashboard-clients',
  'dashboard-channels',
  'dashboard-per-client',
  'fine-ratio',
  'no-fine',
]);

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has('help')) {
    const { readFileSync } = await import('node:fs');
    const src = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    process.stdout.write(src.slice(src.indexOf('/**') + 4, src.indexOf('*/')).replace(/^ \* ?/gm, '') + '\n');
    return 0;
  }
  for (const k of args.keys()) if (!KNOWN.has(k)) throw new Error(`unknown option --${k} (see --help)`);
  const quick = args.has('quick');
  const str = (k: string, d: string): string => {
    const v = args.get(k);
    return typeof v === 'string' ? v : d;
  };
  const num = (k: string, d: number): number => {
    const v = Number(str(k, String(d)));
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);
    return v;
  };
  const list = (k: string, d: string): string[] =>
    str(k, d)
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const nums = (k: string, d: string): number[] => list(k, d).map(Number);

  const targetNames = list('targets', 'baseline,socketio,apix').map((t) => (t === 'ws' ? 'baseline' : t));
  const scenarios = new Set(list('scenarios', 'a,b,c,d,e,f') as Scenario[]);
  const connections = nums('connections', quick ? '5000' : '10000,50000,100000');
  const subscribers = num('subscribers', quick ? 5000 : 10000);
  const channelCount = num('channels', quick ? 500 : 1000);
  const dashboards = {
    clients: num('dashboard-clients', 1000),
    channels: num('dashboard-channels', 1000),
    perClient: num('dashboard-per-client', 100),
  };
  const fineRatio = args.has('no-fine') ? 0 : num('fine-ratio', 1.1);
  if (fineRatio !== 0 && fineRatio <= 1) throw new Error('--fine-ratio must be above 1');
  const rates = nums(
    'rates',
    quick
      ? '10000,20000,50000,100000,200000,400000'
      : '10000,20000,50000,100000,150000,200000,300000,400000,500000,750000,1000000',
  );
  const pin = !args.has('no-pin');
  const nice = Number(str('nice', '-10'));
  if (!Number.isInteger(nice) || nice < -20 || nice > 19)
    throw new Error('--nice must be an integer from -20 to 19');
  setNiceness(nice);
  const { server: serverCpu, load: loadCpu } = cores(pin);
  const tmpDir = mkdtempSync(join(tmpdir(), 'apix-bench-'));
  const s: BenchSettings = {
    root: ROOT,
    tmpDir,
    serverCpu,
    loadCpu,
    jwtSecret: 'bench-secret-0123456789abcdef-0123456789abcdef',
    org: 'bench',
    heartbeatMs: num('heartbeat-ms', 10_000),
    perProcess: num('per-process', 12_500),
    perWorker: num('per-worker', 15_000),
    perAddress: 10_000,
    concurrency: num('concurrency', 100),
    idleSeconds: num('idle-seconds', quick ? 10 : 20),
    stepSeconds: num('step-seconds', quick ? 2 : 3),
    drainMs: num('drain-ms', 3000),
    p99LimitMs: num('p99-ms', 20),
    fineRatio,
    stopP99Ms: num('stop-p99-ms', 2000),
    publishesPerConnection: num('publishes-per-connection', 100),
    ...(args.has('cpu-prof') ? { cpuProfDir: resolve(str('cpu-prof', 'bench/results/profiles')) } : {}),
    ...(args.has('database-url') ? { databaseUrl: str('database-url', '') } : {}),
  };
  if (s.cpuProfDir) mkdirSync(s.cpuProfDir, { recursive: true });

  const tty = process.stdout.isTTY;
  let lastTransient = 0;
  const log: Log = (line, transient = false) => {
    const stamp = `${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s `;
    if (transient) {
      if (tty) process.stdout.write(`\r\x1b[K${stamp}${line}`);
      else if (performance.now() - lastTransient > 2000) {
        lastTransient = performance.now();
        process.stdout.write(`${stamp}${line}\n`);
      }
      return;
    }
    process.stdout.write(`${tty ? '\r\x1b[K' : ''}${stamp}${line}\n`);
  };
  const t0 = performance.now();

  const selected = TARGETS.filter((t) => {
    if (t.name.startsWith('apix-redis')) return targetNames.includes('apix') && scenarios.has('e');
    return targetNames.includes(t.name);
  });
  log(
    `APIX bench: targets ${selected.map((t) => t.name).join(', ')}; scenarios ${[...scenarios].join(',')}; ` +
      `server on core ${serverCpu ?? '-'}, load on core ${loadCpu ?? '-'}, nice ${nice}; logs in ${tmpDir}`,
  );

  const results: BenchResults = {
    startedAt: new Date().toISOString(),
    quick,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    settings: {
      connections,
      subscribers,
      channels: channelCount,
      dashboards,
      rates,
      fineRatio,
      stepSeconds: s.stepSeconds,
      drainMs: s.drainMs,
      p99LimitMs: s.p99LimitMs,
      stopP99Ms: s.stopP99Ms,
      idleSeconds: s.idleSeconds,
      heartbeatMs: s.heartbeatMs,
      perProcess: s.perProcess,
      perWorker: s.perWorker,
      pinned: serverCpu !== undefined,
      nice,
    },
    targets: {},
    durationSeconds: 0,
  };

  for (const def of selected) results.targets[def.name] = { label: def.label };
  // The Redis targets run (b) and (c) as scenario (e).
  const has = (def: TargetDef, x: Scenario): boolean =>
    def.scenarios.includes(x) && scenarios.has(def.name.startsWith('apix-redis') ? 'e' : x);

  // Fan-out first, for every target: (b) and (c) over one set of connections, then (d), then (f).
  for (const def of selected) {
    const tr = results.targets[def.name]!;
    const phases: FanoutPhase[] = [];
    if (has(def, 'b')) phases.push({ scenario: 'b', channels: 1 });
    if (has(def, 'c')) phases.push({ scenario: 'c', channels: channelCount });
    if (phases.length > 0) {
      const out = await runFanout(def, { subscribers, ack: false, phases, rates }, s, log);
      phases.forEach((p, i) => (tr[p.scenario] = out[i]));
    }
    if (has(def, 'd')) {
      [tr.d] = await runFanout(
        def,
        { subscribers, ack: true, phases: [{ scenario: 'd', channels: 1 }], rates },
        s,
        log,
      );
    }
    if (has(def, 'f')) {
      [tr.f] = await runFanout(
        def,
        {
          subscribers: dashboards.clients,
          ack: false,
          phases: [{ scenario: 'f', channels: dashboards.channels, perClient: dashboards.perClient }],
          rates,
        },
        s,
        log,
      );
    }
  }

  // Then (a), size by size across the targets, within the time budget: a size is skipped when the
  // connect rate measured at the previous size says it would not finish in time.
  // APIX goes first within a size, and no target moves to a larger size once one was skipped (the
  // ratios need every target at the same size).
  const budgetMs = num('budget-minutes', 15) * 60_000;
  const connectionTargets = [...selected].sort(
    (x, y) => Number(y.name === 'apix') - Number(x.name === 'apix'),
  );
  let skipped = false;
  for (const n of connections) {
    if (skipped) break;
    for (const def of connectionTargets) {
      if (!has(def, 'a')) continue;
      const tr = results.targets[def.name]!;
      tr.a ??= [];
      const prev = tr.a.at(-1);
      // The connect rate of the previous size, else the one seen when the fan-out subscribers connected.
      const rate =
        prev?.connectsPerSec ?? tr.b?.connectsPerSec ?? tr.c?.connectsPerSec ?? tr.d?.connectsPerSec ?? 500;
      const estimateMs = (n / Math.max(1, rate) + s.idleSeconds + 20) * 1000;
      const left = budgetMs - (performance.now() - t0);
      if (estimateMs > left) {
        const why = `skipped: about ${Math.round(estimateMs / 1000)} s at ${rate} connects/s, ${Math.max(0, Math.round(left / 1000))} s left of the budget`;
        log(`[${def.name}] (a) ${n} connections ${why}`);
        tr.a.push({ connections: n, workers: 0, loadProcesses: 0, error: why });
        skipped = true;
        continue;
      }
      tr.a.push(await runConnections(def, n, s, log));
    }
  }
  results.durationSeconds = Math.round((performance.now() - t0) / 1000);

  const outDir = join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const written = writeReport(results, {
    outDir,
    root: ROOT,
    writeDoc: !quick && !args.has('no-doc'),
    print: (line) => process.stdout.write(`${line}\n`),
  });
  log(`done in ${results.durationSeconds} s; wrote ${written.join(', ')}`);
  const failed = JSON.stringify(results.targets).includes('"error"');
  if (failed) log(`some runs failed: server logs kept in ${tmpDir}`);
  else rmSync(tmpDir, { recursive: true, force: true });
  return 0;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stdout.write(`\n${sig}: stopping everything the bench started\n`);
    killAll();
    process.exit(130);
  });
}
process.on('exit', killAll);

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
