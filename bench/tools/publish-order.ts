/**
 * The cost of one publisher's order (src/router/publish-order.ts, issue 13 item 1).
 *
 * 1. In process: µs per publish of EventRouter.publish on the memory engine, back to back in batches of
 *    1,000 not awaited (what one socket read hands the gateway), without a PublishOrder (an HTTP
 *    request's path) and with one (a WebSocket connection's path), alternating rounds; the median round.
 * 2. End to end, one connection: a publisher sends N publishes back to back and one subscriber receives
 *    them; publishes/s until the subscriber has all N, APIX (`src/cli/main.ts serve`, memory engines,
 *    rate limits off as in `npm run bench`, audit of publishes off) against the bare ws baseline (bench/servers/ws-baseline.ts),
 *    each in its own process; the best of 3 rounds; APIX's order is checked (i = 0..N-1).
 *
 * Usage: node --import tsx bench/tools/publish-order.ts [N=20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { EventRouter } from '../../src/router/event-router.ts';
import type { PublishRequest } from '../../src/router/event-router.ts';
import type { Principal } from '../../src/auth/principal.ts';
import { PublishOrder } from '../../src/router/publish-order.ts';
import { MemoryBroker, MemoryBrokerBus } from '../../src/broker/memory-broker.ts';
import { MemoryChannelRegistry } from '../../src/subscriptions/channel-registry.ts';
import { HookBus } from '../../src/hooks.ts';
import { systemClock } from '../../src/clock.ts';
import { freePort, spawnPinned, stop, waitHttp } from '../lib/proc.ts';

const N = Number(process.argv[2] ?? 20_000);
const dataDir = mkdtempSync(join(tmpdir(), 'apix-order-bench-'));
const root = new URL('../../', import.meta.url).pathname;

// ------------------------------------------------------------------ 1. in process

async function inProcess(): Promise<{ plain: number; ordered: number }> {
  const bus = new MemoryBrokerBus(systemClock);
  const broker = new MemoryBroker(bus, { size: 100, ttlMs: 0 });
  const router = new EventRouter(broker, new MemoryChannelRegistry(), new HookBus(), systemClock, {
    maxMessageBytes: 1 << 20,
    history: { size: 100, ttlMs: 0 },
    idempotencyWindowMs: 0,
  });
  const principal: Principal = {
    orgId: 'acme',
    userId: 'svc',
    roles: ['service'],
    kind: 'jwt',
    scopes: [],
    isService: true,
    expiresAt: undefined,
    keyId: undefined,
  };
  const req = (i: number): PublishRequest => ({
    principal,
    clientType: 'INTERNAL_SERVICE',
    peer: { remoteAddress: undefined, userAgent: undefined, origin: undefined },
    connection: undefined,
    publisher: { nodeId: 'bench', connectionId: 'c1' },
    channel: 'org:bench',
    type: 'step',
    payload: { i },
    metadata: undefined,
  });
  const round = async (order: PublishOrder | undefined): Promise<number> => {
    const t0 = process.hrtime.bigint();
    for (let b = 0; b < N; b += 1000) {
      const batch: Promise<unknown>[] = [];
      // As the gateway does: the ticket when the frame is read, settled when the publish is answered.
      for (let i = b; i < b + 1000; i++) {
        if (order === undefined) {
          batch.push(router.publish(req(i)).then(() => void i));
          continue;
        }
        const ticket = order.enter();
        batch.push(router.publish(req(i), order, ticket).then(() => order.settle(ticket)));
      }
      await Promise.all(batch);
    }
    return Number(process.hrtime.bigint() - t0) / 1000 / N;
  };
  const plain: number[] = [];
  const ordered: number[] = [];
  await round(undefined); // warm-up
  await round(new PublishOrder());
  for (let r = 0; r < 7; r++) {
    plain.push(await round(undefined));
    ordered.push(await round(new PublishOrder()));
  }
  await broker.close();
  return { plain: median(plain), ordered: median(ordered) };
}

// ------------------------------------------------------------------ 2. end to end, one connection

const SECRET = 'bench-secret-0123456789abcdef0123';

function jwt(sub: string, roles: string[]): Promise<string> {
  return new SignJWT({ org: 'acme', roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function firstOfType(ws: WebSocket, type: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (data: WebSocket.RawData) => {
      if ((JSON.parse(data.toString()) as { type: string }).type !== type) return;
      ws.off('message', on);
      resolve();
    };
    ws.on('message', on);
  });
}

interface Side {
  pub: WebSocket;
  sub: WebSocket;
  channel: string;
}

async function apixSide(port: number): Promise<Side> {
  const url = `ws://127.0.0.1:${port}/v1/ws`;
  const connect = async (sub: string, roles: string[], subscriptions: string[]) => {
    const ws = await open(url);
    const ready = firstOfType(ws, 'connection.established');
    ws.send(
      JSON.stringify({
        type: 'connect',
        payload: {
          sessionId: `${sub}-${Math.random().toString(36).slice(2)}`,
          clientType: 'INTERNAL_SERVICE',
          authentication: { token: await jwt(sub, roles) },
          subscriptions,
        },
      }),
    );
    await ready;
    return ws;
  };
  return {
    sub: await connect('viewer', ['admin'], ['org:bench']),
    pub: await connect('svc', ['service'], []),
    channel: 'org:bench',
  };
}

async function baselineSide(port: number): Promise<Side> {
  const url = `ws://127.0.0.1:${port}`;
  const sub = await open(url);
  const subscribed = firstOfType(sub, 'subscribed');
  sub.send(JSON.stringify({ type: 'subscribe', channels: ['bench'] }));
  await subscribed;
  return { sub, pub: await open(url), channel: 'bench' };
}

/** Publishes/s of one connection, until the subscriber has all N; whether they came in send order. */
async function oneRound(side: Side): Promise<{ rate: number; inOrder: boolean }> {
  let got = 0;
  let inOrder = true;
  const done = new Promise<void>((resolve) => {
    const on = (data: WebSocket.RawData) => {
      const f = JSON.parse(data.toString()) as { channel?: string; payload?: { i?: number } };
      if (f.channel !== side.channel || f.payload?.i === undefined) return;
      if (f.payload.i !== got) inOrder = false;
      if (++got === N) {
        side.sub.off('message', on);
        resolve();
      }
    };
    side.sub.on('message', on);
  });
  const t0 = performance.now();
  for (let i = 0; i < N; i++)
    side.pub.send(JSON.stringify({ type: 'step', channel: side.channel, payload: { i } }));
  await done;
  return { rate: N / ((performance.now() - t0) / 1000), inOrder };
}

async function endToEnd(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  port: number,
  side: (port: number) => Promise<Side>,
): Promise<{ rate: number; inOrder: boolean }> {
  const child = spawnPinned(process.execPath, ['--import', 'tsx', ...args], {
    cpu: undefined,
    cwd: root,
    env,
    logFile: join(dataDir, `${name}.log`),
  });
  try {
    await waitHttp(`http://127.0.0.1:${port}/healthz`, child, 90_000);
    const s = await side(port);
    let best = 0;
    let inOrder = true;
    for (let r = 0; r < 3; r++) {
      const res = await oneRound(s);
      best = Math.max(best, res.rate);
      inOrder &&= res.inOrder;
    }
    s.pub.close();
    s.sub.close();
    return { rate: best, inOrder };
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}`, { cause: err });
  } finally {
    await stop(child);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

const inproc = await inProcess();
console.log(`1. EventRouter.publish, memory engine, ${N} back to back (median of 7 rounds):`);
console.log(`   without PublishOrder ${inproc.plain.toFixed(2)} µs/publish`);
console.log(
  `   with PublishOrder    ${inproc.ordered.toFixed(2)} µs/publish (${(inproc.ordered / inproc.plain).toFixed(2)}×)`,
);

try {
  const basePort = await freePort();
  const baseline = await endToEnd(
    'baseline',
    ['bench/servers/ws-baseline.ts', '--port', String(basePort)],
    process.env,
    basePort,
    baselineSide,
  );
  const apixPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    APIX_PORT: String(apixPort),
    APIX_HOST: '127.0.0.1',
    APIX_JWT_SECRET: SECRET,
    APIX_LOG_LEVEL: 'warn',
    APIX_DATA_DIR: join(dataDir, 'data'),
    APIX_NODE_ID: 'bench-order',
    // The audit entry of every publish is measured by `npm run bench` (apix-audit-off); here, the publish path.
    APIX_AUDIT_PUBLISHES: 'false',
  };
  for (const limit of ['CONNECTION', 'PUBLISH', 'CHANNEL', 'ORG_PUBLISH'])
    env[`APIX_RATE_${limit}_PER_SEC`] = '0';
  delete env.REDIS_URL;
  delete env.DATABASE_URL;
  const apix = await endToEnd('apix', ['src/cli/main.ts', 'serve'], env, apixPort, apixSide);
  console.log(`2. One connection, ${N} publishes back to back to one subscriber (best of 3):`);
  console.log(`   ws baseline ${Math.round(baseline.rate)} publishes/s`);
  console.log(
    `   APIX        ${Math.round(apix.rate)} publishes/s (${(apix.rate / baseline.rate).toFixed(2)}× the baseline), ` +
      `in send order: ${apix.inOrder ? 'yes' : 'NO'}`,
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
