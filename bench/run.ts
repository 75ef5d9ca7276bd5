/**
 * `npm run bench [-- options]`: the APIX load benchmark. Starts every server it measures (pinned to
 * core 0), drives them from load-generator processes (pinned to core 1), prints progress and a report,
 * writes bench/results/*.json, the SVG charts and (full runs) the results section of BENCHMARKS.md,
 * and stops everything it started, also on Ctrl-C.
 *
 * Options (defaults in brackets):
 *   --quick                  small and fast: 5,000 connections/subscribers, 500 channels, 2 s steps
 *   --targets LIST           baseline,socketio,apix                 [all three]
 *   --scenarios LIST         a,b,c,d,e                              [all]
 *   --connections LIST       scenario (a) sizes                     [10000,50000,100000]
 *   --subscribers N          fan-out subscribers                    [10000]
 *   --channels N             scenario (c) channels                  [1000]
 *   --rates LIST             offered deliveries/s per step          [10000,...,1000000]
 *   --step-seconds N         publishing time per step               [3]
 *   --drain-ms N             wait for late deliveries after a step  [2000]
 *   --p99-ms N               the latency limit of a passing step    [100]
 *   --idle-seconds N         scenario (a) idle CPU window           [10]
 *   --heartbeat-ms N         heartbeat interval of every server     [5000]
 *   --per-process N          connections per load-generator process [12500]
 *   --per-worker N           connections per server process in (a)  [15000]
 *   --concurrency N          handshakes in flight, in total         [400]
 *   --no-pin                 do not use taskset
 *   --no-doc                 do not rewrite BENCHMARKS.md (quick runs never do)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cores, killAll } from './lib/proc.ts';
import { writeReport } from './lib/report.ts';
import type { BenchResults, TargetResults } from './lib/report.ts';
import { runConnections, runFanout } from './lib/scenarios.ts';
import type { BenchSettings, Log } from './lib/scenarios.ts';
import { TARGETS } from './lib/targets.ts';
import type { Scenario } from './lib/targets.ts';

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

  const targetNames = list('targets', 'baseline,socketio,apix');
  const scenarios = new Set(list('scenarios', 'a,b,c,d,e') as Scenario[]);
  const connections = nums('connections', quick ? '5000' : '10000,50000,100000');
  const subscribers = num('subscribers', quick ? 5000 : 10000);
  const channelCount = num('channels', quick ? 500 : 1000);
  const rates = nums(
    'rates',
    quick
      ? '10000,50000,100000,200000,400000'
      : '10000,20000,50000,100000,150000,200000,300000,400000,500000,750000,1000000',
  );
  const pin = !args.has('no-pin');
  const { server: serverCpu, load: loadCpu } = cores(pin);
  const tmpDir = mkdtempSync(join(tmpdir(), 'apix-bench-'));
  const s: BenchSettings = {
    root: ROOT,
    tmpDir,
    serverCpu,
    loadCpu,
    jwtSecret: 'bench-secret-0123456789abcdef-0123456789abcdef',
    org: 'bench',
    heartbeatMs: num('heartbeat-ms', 5000),
    perProcess: num('per-process', 12_500),
    perWorker: num('per-worker', 15_000),
    perAddress: 10_000,
    concurrency: num('concurrency', 400),
    idleSeconds: num('idle-seconds', quick ? 5 : 10),
    stepSeconds: num('step-seconds', quick ? 2 : 3),
    drainMs: num('drain-ms', 2000),
    p99LimitMs: num('p99-ms', 100),
  };

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
      `server on core ${serverCpu ?? '-'}, load on core ${loadCpu ?? '-'}; logs in ${tmpDir}`,
  );

  const results: BenchResults = {
    startedAt: new Date().toISOString(),
    quick,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    settings: {
      connections,
      subscribers,
      channels: channelCount,
      rates,
      stepSeconds: s.stepSeconds,
      drainMs: s.drainMs,
      p99LimitMs: s.p99LimitMs,
      idleSeconds: s.idleSeconds,
      heartbeatMs: s.heartbeatMs,
      perProcess: s.perProcess,
      perWorker: s.perWorker,
      pinned: serverCpu !== undefined,
    },
    targets: {},
    durationSeconds: 0,
  };

  for (const def of selected) {
    const tr: TargetResults = { label: def.label };
    results.targets[def.name] = tr;
    // The Redis targets run (b) and (c) as scenario (e).
    const isRedis = def.name.startsWith('apix-redis');
    const has = (x: Scenario): boolean => def.scenarios.includes(x) && scenarios.has(isRedis ? 'e' : x);
    if (has('a')) {
      tr.a = [];
      for (const n of connections) tr.a.push(await runConnections(def, n, s, log));
    }
    if (has('b')) {
      tr.b = await runFanout(def, { scenario: 'b', subscribers, channels: 1, ack: false, rates }, s, log);
    }
    if (has('c')) {
      tr.c = await runFanout(
        def,
        { scenario: 'c', subscribers, channels: channelCount, ack: false, rates },
        s,
        log,
      );
    }
    if (has('d')) {
      tr.d = await runFanout(def, { scenario: 'd', subscribers, channels: 1, ack: true, rates }, s, log);
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
  rmSync(tmpDir, { recursive: true, force: true });
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
