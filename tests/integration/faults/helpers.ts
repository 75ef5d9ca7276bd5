/**
 * Shared pieces of the fault tests: gateway processes over a test-owned Redis, an HTTP publisher whose
 * outcomes go to the checker, and SDK subscribers whose deliveries go to the checker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { ApiXClient } from '../../../packages/sdk/src/index.ts';
import type { ApiXEvent } from '../../../packages/sdk/src/index.ts';
import { spawnGateway } from '../../support/process.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { token, TEST_SECRET } from '../../support/gateway.ts';
import { UnknownOutcome } from '../../support/checker.ts';
import type { Checker, PublishOp } from '../../support/checker.ts';
import { sleep } from '../../support/wait.ts';

export const API_KEY = 'apix_static_faultkey';

/** Cleanups run in reverse order by the suite's after() hook, whatever happened. */
export class Cleanup {
  private fns: Array<() => Promise<unknown> | unknown> = [];
  add(fn: () => Promise<unknown> | unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    const fns = this.fns.reverse();
    this.fns = [];
    for (const fn of fns) {
      try {
        await fn();
      } catch {
        // keep cleaning
      }
    }
  }
}

/** The environment of a fault-test gateway: Redis engine, no database, fast heartbeats and acks. */
export function gatewayEnv(
  redisUrl: string,
  prefix: string,
  dataDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    APIX_REDIS_PREFIX: prefix,
    APIX_RECORDS: 'off',
    APIX_DATA_DIR: dataDir,
    APIX_JWT_SECRET: TEST_SECRET,
    APIX_API_KEYS: `acme:${API_KEY}`,
    // Short enough to notice dead peers in a test, long enough for a loaded 2-core machine.
    APIX_HEARTBEAT_INTERVAL_MS: '3000',
    APIX_ACK_TIMEOUT_MS: '500',
    APIX_RETRY_BASE_MS: '200',
    APIX_RETRY_MAX_MS: '1000',
    APIX_RETRY_MAX_ATTEMPTS: '20',
    APIX_SESSION_TTL_MS: '30000',
    APIX_DRAIN_TIMEOUT_MS: '500',
    APIX_LOG_LEVEL: 'error',
    ...extra,
  };
}

export function tempDir(cleanup: Cleanup): string {
  const dir = mkdtempSync(join(tmpdir(), 'apix-faults-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startGateway(env: Record<string, string>, cleanup: Cleanup): Promise<GatewayProcess> {
  const gw = await spawnGateway(env);
  cleanup.add(() => gw.kill('SIGKILL'));
  return gw;
}

/**
 * One HTTP publish of `op` (payload `{uid, seq}`): resolves with the event id on 200; throws an error
 * with the response's `code` on a refusal (recorded as failed), or an UnknownOutcome when there was no
 * answer (connection reset, timeout) or a 5xx came only after `unknownAfterMs` (the gateway gave up
 * waiting for Redis: the write may still be applied when the link heals).
 */
export async function httpPublish(
  gw: { httpUrl: string },
  op: PublishOp,
  timeoutMs = 3000,
  unknownAfterMs = Infinity,
): Promise<string> {
  const started = Date.now();
  let res: Response;
  try {
    res = await fetch(`${gw.httpUrl}/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        channel: op.channel,
        type: 'fault.step',
        payload: { uid: op.uid, seq: op.seq },
      }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new UnknownOutcome(`no answer: ${(err as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as { id?: string; code?: string; message?: string };
  if (res.status === 200 && typeof body.id === 'string') return body.id;
  // A 5xx after the gateway gave up waiting, or one that says the outcome is unknown (Redis went away
  // with the publish in flight: it may have been applied), may or may not have happened.
  if (
    res.status >= 500 &&
    (Date.now() - started >= unknownAfterMs || /outcome unknown/.test(body.message ?? ''))
  )
    throw new UnknownOutcome(`HTTP ${res.status} ${body.code ?? '?'} after ${Date.now() - started} ms`);
  throw Object.assign(new Error(`HTTP ${res.status} ${body.code ?? ''} ${body.message ?? ''}`), {
    code: `HTTP ${res.status} ${body.code ?? '?'}`,
  });
}

export interface Subscriber {
  readonly name: string;
  readonly client: ApiXClient;
  /** Times of every `connection.established` after the first. */
  readonly reconnects: number[];
}

/**
 * An SDK client (given every gateway URL, the first one preferred) that subscribes to `channels` and
 * records every event its application sees into the checker. `ack` applies to every channel.
 */
export async function sdkSubscriber(
  checker: Checker,
  name: string,
  urls: readonly string[],
  channels: ReadonlyArray<{ channel: string; ack: boolean }>,
  cleanup: Cleanup,
): Promise<Subscriber> {
  const client = new ApiXClient({
    url: urls,
    tokenProvider: () => token({ sub: name }),
    clientType: 'WEB_APP',
    WebSocket,
    probeGateways: false,
    reconnect: { baseMs: 50, maxMs: 400, factor: 2 },
    heartbeat: { intervalMs: 1000, timeoutMs: 5000 },
    connectTimeoutMs: 3000,
  });
  cleanup.add(() => client.close());
  const reconnects: number[] = [];
  let established = 0;
  client.on('connection.established', () => {
    if (established++ > 0) reconnects.push(Date.now());
  });
  client.on('error', () => {});
  await client.connect();
  for (const { channel, ack } of channels) {
    const sub = client.subscribe(channel, { ack });
    sub.on('*', (event: ApiXEvent) => {
      const p = event.payload as { uid?: unknown } | null;
      checker.deliver(name, channel, typeof p?.uid === 'string' ? p.uid : `?${event.id}`, event.id);
    });
    await sub.ready;
    checker.expect(name, [channel]);
  }
  return { name, client, reconnects };
}

/** Polls /readyz; the status code, or 0 when the node does not answer. */
export async function readyz(gw: { httpUrl: string }): Promise<number> {
  try {
    const r = await fetch(`${gw.httpUrl}/readyz`, { signal: AbortSignal.timeout(3000) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

/** Waits until `check()` holds, polling every `stepMs`; returns how long it took, or throws. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  stepMs = 20,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

export interface PublishLoop {
  /** Stops after the publish in progress and waits for it. */
  stop(): Promise<void>;
  readonly count: () => number;
}

/**
 * Publishes over HTTP to `gw` in a loop, one channel after the other (one at a time, so publish order
 * is id order on each channel), recording every outcome in the checker, until stopped.
 */
export function publishLoop(
  checker: Checker,
  gw: { httpUrl: string },
  channels: readonly string[],
  options: { pauseMs?: number; timeoutMs?: number; unknownAfterMs?: number } = {},
): PublishLoop {
  let stopped = false;
  let n = 0;
  const done = (async () => {
    while (!stopped) {
      for (const channel of channels) {
        await checker.record(channel, (op) =>
          httpPublish(gw, op, options.timeoutMs ?? 3000, options.unknownAfterMs),
        );
        n++;
      }
      await sleep(options.pauseMs ?? 10);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
    },
    count: () => n,
  };
}
