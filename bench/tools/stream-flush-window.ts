/**
 * What the stream flush window (APIX_STREAM_FLUSH_MS) saves, to pick its default: one 2,000-token answer
 * at 100 tokens/s to 100 subscribers on one node, streamed with each window, against the same tokens
 * published as 2,000 plain events. Reports the server's CPU seconds (utime + stime, /proc/<pid>/stat) from
 * the first token to the last delivery, the frames each subscriber received, and the CPU ratio to the
 * plain events. Each run starts its own `apix serve` (memory engines, no records, rate limits off).
 *
 *   node --import tsx bench/tools/stream-flush-window.ts [--windows 0,20,40,100] [--tokens 2000]
 *     [--rate 100] [--subscribers 100]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { cpuSeconds } from '../lib/proc.ts';

const { values } = parseArgs({
  options: {
    windows: { type: 'string', default: '0,20,40,100' },
    tokens: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '100' },
    subscribers: { type: 'string', default: '100' },
  },
});
const TOKENS = Number(values.tokens);
const RATE = Number(values.rate);
const SUBSCRIBERS = Number(values.subscribers);
const SECRET = 'bench-secret-0123456789-abcdefghij';
const CH = 'agent:bench';
const root = fileURLToPath(new URL('../../', import.meta.url));

const jwt = (sub: string, roles: string[]) =>
  new SignJWT({ org: 'acme', roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

async function client(url: string, token: string, subscriptions: string[], onFrame: (f: any) => void) {
  const ws = new WebSocket(url, ['apix.v1.json'], { perMessageDeflate: false });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  const ready = new Promise<void>((resolve) =>
    ws.on('message', (d) => {
      const f = JSON.parse(String(d));
      if (f.type === 'connection.established') resolve();
      onFrame(f);
    }),
  );
  ws.send(
    JSON.stringify({
      type: 'connect',
      payload: {
        sessionId: `s${Math.random()}`,
        clientType: 'API_CLIENT',
        authentication: { token },
        subscriptions,
      },
    }),
  );
  await ready;
  return ws;
}

async function run(mode: 'plain' | 'stream', flushMs: number) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const dir = mkdtempSync(join(tmpdir(), 'apix-flush-'));
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    APIX_PORT: String(port),
    APIX_HOST: '127.0.0.1',
    APIX_JWT_SECRET: SECRET,
    APIX_LOG_LEVEL: 'warn',
    APIX_DATA_DIR: dir,
    APIX_RECORDS: 'off',
    APIX_COMPRESSION: 'false',
    APIX_MAX_CONNECTIONS_PER_ADDRESS: '0',
    APIX_MAX_CONNECTIONS_PER_USER: '0',
    APIX_STREAM_FLUSH_MS: String(flushMs),
  };
  for (const limit of ['CONNECTION', 'PUBLISH', 'CHANNEL', 'ORG_PUBLISH', 'ORG_SUBSCRIBE', 'ADDRESS'])
    env[`APIX_RATE_${limit}_PER_SEC`] = '0';
  delete env.REDIS_URL;
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cwd: root,
    env,
    stdio: 'ignore',
  });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
      } catch {
        // not yet
      }
      if (i > 600) throw new Error('server not up');
      await new Promise((r) => setTimeout(r, 100));
    }
    const url = `ws://127.0.0.1:${port}/v1/ws`;
    let frames = 0;
    let done = 0;
    const member = await jwt('reader', ['member']);
    const subs = await Promise.all(
      Array.from({ length: SUBSCRIBERS }, () =>
        client(url, member, [CH], (f) => {
          if (f.channel !== CH) return;
          frames++;
          if (mode === 'stream' ? f.type === 'stream.end' : f.payload?.i === TOKENS - 1) done++;
        }),
      ),
    );
    const pub = await client(url, await jwt('agent', ['service']), [], () => {});
    const send = (o: object) => pub.send(JSON.stringify(o));
    if (mode === 'stream')
      send({ type: 'stream.start', channel: CH, payload: { streamId: 'a1', eventType: 'agent_message' } });
    await new Promise((r) => setTimeout(r, 200));
    const cpu0 = cpuSeconds([child.pid!]);
    const t0 = Date.now();
    for (let i = 0; i < TOKENS; i++) {
      const due = t0 + (i * 1000) / RATE;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const text = `tok${i} `;
      if (mode === 'stream') send({ type: 'stream.append', channel: CH, payload: { streamId: 'a1', text } });
      else send({ type: 'agent_token', channel: CH, payload: { i, text } });
    }
    if (mode === 'stream')
      send({ type: 'stream.end', channel: CH, payload: { streamId: 'a1', status: 'complete' } });
    while (done < SUBSCRIBERS) {
      if (Date.now() - t0 > 120_000) throw new Error(`only ${done} subscribers done`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const cpu = cpuSeconds([child.pid!]) - cpu0;
    for (const ws of [...subs, pub]) ws.close();
    return { cpu, framesPerSubscriber: frames / SUBSCRIBERS, seconds: (Date.now() - t0) / 1000 };
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const plain = await run('plain', 0);
console.log(
  `plain events: server CPU ${plain.cpu.toFixed(2)} s, ${plain.framesPerSubscriber} frames/subscriber`,
);
for (const w of values.windows!.split(',').map(Number)) {
  const r = await run('stream', w);
  console.log(
    `stream, APIX_STREAM_FLUSH_MS=${w}: server CPU ${r.cpu.toFixed(2)} s (${(r.cpu / plain.cpu).toFixed(2)}x plain), ` +
      `${r.framesPerSubscriber.toFixed(0)} frames/subscriber`,
  );
}
