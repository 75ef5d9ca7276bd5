/**
 * Bench scenario (g) "agent streams" (issue 16, docs/streams.md): `node --import tsx bench/streams.ts
 * [--quick] [--no-pin] [--parts=fanout,answer,late] [--loadgens=4]`. Starts APIX (`apix serve`, memory
 * engines, rate limits off as in bench/run.ts) on core 0, drives it from the other cores with raw
 * WebSocket clients (the fan-out from `--loadgens` processes, bench/lib/stream-loadgen.ts; the rest from
 * this one), and prints a JSON report (also written to bench/results/streams-<quick|full>.json):
 *
 * 1. `fanout`: S concurrent streams (1,000; quick 200), each 20 appends/s, each to 10 subscribers (10
 *    subscriber connections subscribed to every stream's channel): p50/p99 from append to subscriber
 *    (every piece carries its send time) and the server's CPU (% of one core).
 * 2. `answer`: one answer of T tokens (2,000; quick 500) at 100 tokens/s to 100 subscribers, streamed
 *    with APIX_STREAM_FLUSH_MS=0 and with the default window, against the same tokens as T plain events:
 *    server CPU seconds of each, and the ratios.
 * 3. `late`: J late joiners (1,000; quick 500) of a finished T-token answer (its compacted event)
 *    against the same J joining a channel holding one plain event of the same size: server CPU per
 *    join, in R rounds (9; quick 3) of alternating order; the median ratio.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Histogram } from './lib/histogram.ts';
import {
  cores,
  cpuSeconds,
  freePort,
  killAll,
  processTree,
  sleep,
  spawnPinned,
  loadCores,
  stop,
  waitHttp,
} from './lib/proc.ts';
import { SECRET, endStream, now, openMany, startStream } from './lib/stream-clients.ts';
import type { FromStreamLoadgen, ToStreamLoadgen } from './lib/stream-loadgen.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
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
  lateRounds: QUICK ? 3 : 9,
};
/** `--loadgens=N`: processes the fan-out's streams are spread over (default 4). */
const LOADGENS = Number(
  process.argv
    .slice(2)
    .find((a) => a.startsWith('--loadgens='))
    ?.slice(11) ?? 4,
);

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

/** One load-generator process (bench/lib/stream-loadgen.ts): a request, the next reply. */
function startStreamLoadgen(
  tmp: string,
  i: number,
): { ask: (m: ToStreamLoadgen) => Promise<FromStreamLoadgen> } {
  const child = spawnPinned(process.execPath, ['--import', 'tsx', 'bench/lib/stream-loadgen.ts'], {
    cpu: loadCores(PIN),
    cwd: ROOT,
    ipc: true,
    logFile: join(tmp, `stream-loadgen-${i}.log`),
  });
  return {
    ask: (m) =>
      new Promise((resolve, reject) => {
        child.once('message', (r: FromStreamLoadgen) =>
          r.op === 'error' ? reject(new Error(`load generator ${i}: ${r.error}`)) : resolve(r),
        );
        child.send(m);
      }),
  };
}

async function fanout(tmp: string): Promise<Record<string, unknown>> {
  const server = await startApix(tmp, undefined);
  try {
    const S = SIZES.streams;
    const G = Math.min(LOADGENS, S);
    const gens = Array.from({ length: G }, (_, i) => startStreamLoadgen(tmp, i));
    // Load generator g runs streams g, g+G, ...: each with its own 10 subscribers and publishers.
    await Promise.all(
      gens.map((g, k) =>
        g.ask({
          op: 'setup',
          url: server.url,
          channels: Array.from({ length: S }, (_, i) => `agent:g${i}`).filter((_, i) => i % G === k),
          subscribers: 10,
          tag: String(k),
        }),
      ),
    );
    await sleep(500);
    let sent = 0;
    const measured = await cpuOf(server.pids, async () => {
      const r = await Promise.all(
        gens.map((g) =>
          g.ask({ op: 'go', durationMs: SIZES.fanoutSeconds * 1000, appendsPerSec: SIZES.appendsPerSec }),
        ),
      );
      for (const x of r) if (x.op === 'sent') sent += x.sent;
    });
    const hist = new Histogram();
    let pieces = 0;
    for (const r of await Promise.all(gens.map((g) => g.ask({ op: 'finish' })))) {
      if (r.op !== 'stats') continue;
      hist.merge(r.histogram);
      pieces += r.pieces;
    }
    const p = hist.percentiles();
    return {
      streams: S,
      loadGenerators: G,
      subscribersPerStream: 10,
      appendsPerSecPerStream: SIZES.appendsPerSec,
      appendsSent: sent,
      appendsPerSec: Math.round(sent / SIZES.fanoutSeconds),
      // From the first append to the last piece received: past fanoutSeconds when the gateway fell behind.
      measuredSeconds: round(measured.wallSeconds),
      piecesReceived: pieces,
      expectedPieces: sent * 10,
      p50Ms: round(p.p50),
      p90Ms: round(p.p90),
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
    // The gateway's CPU with the same connections and nothing published (timers, heartbeats, the embedded
    // database), over 5 s: subtracted, scaled to the run's length, so the ratios compare the work of the answer.
    const idle = await cpuOf(server.pids, () => sleep(5000));
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
      idleCpuSeconds: round((idle.cpuSeconds * measured.wallSeconds) / idle.wallSeconds),
      netCpuSeconds: round(
        Math.max(0, measured.cpuSeconds - (idle.cpuSeconds * measured.wallSeconds) / idle.wallSeconds),
      ),
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
    const J = SIZES.lateJoiners;
    const joiners = await openMany(server.url, J, 'late', ['member']);
    const full = text.join('').length;
    const joinAll = async (channel: string): Promise<void> => {
      await Promise.all(
        joiners.map(async (c) => {
          const got = c.next((f) => f.channel === channel && f.type === 'agent_message');
          await c.subscribe([channel], 1);
          const f = await got;
          if ((f.payload.text as string).length !== full) throw new Error('short text');
        }),
      );
    };
    const leaveAll = (channel: string): Promise<unknown> =>
      Promise.all(joiners.map((c) => c.unsubscribe([channel])));
    // Rounds of J joins of each, in alternating order (neither always runs warmer); the median ratio.
    const rounds: Array<{ compactedMsPerJoin: number; plainMsPerJoin: number; ratio: number }> = [];
    // Round -1 warms both paths up (JIT, first reads of the history) and is not counted.
    for (let r = -1; r < SIZES.lateRounds; r++) {
      const order = r % 2 === 0 ? ['agent:done', 'agent:plain'] : ['agent:plain', 'agent:done'];
      const cpu: Record<string, number> = {};
      for (const ch of order) {
        await sleep(200);
        cpu[ch] = (await cpuOf(server.pids, () => joinAll(ch))).cpuSeconds;
        await leaveAll(ch);
      }
      if (r < 0) continue;
      rounds.push({
        compactedMsPerJoin: round((1000 * cpu['agent:done']!) / J),
        plainMsPerJoin: round((1000 * cpu['agent:plain']!) / J),
        ratio: round(cpu['agent:done']! / cpu['agent:plain']!),
      });
      console.error(`(g) late round ${r}: ${JSON.stringify(rounds.at(-1))}`);
    }
    for (const c of [...joiners, pub!]) c.close();
    const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    return {
      joinersPerRound: J,
      rounds: rounds.length,
      textBytes: full,
      compactedCpuMsPerJoin: med(rounds.map((x) => x.compactedMsPerJoin)),
      plainCpuMsPerJoin: med(rounds.map((x) => x.plainMsPerJoin)),
      medianRatio: med(rounds.map((x) => x.ratio)),
      perRound: rounds,
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
    netRatioFlush0: round((flush0.netCpuSeconds as number) / (plain.netCpuSeconds as number)),
    netRatioFlushDefault: round((flushDefault.netCpuSeconds as number) / (plain.netCpuSeconds as number)),
  };
  console.error(JSON.stringify(report.answer));
}

await main();
