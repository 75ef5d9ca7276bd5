/**
 * The webhook receiver (webhook-receiver.mjs) as a child process: started on a given port with a secret and
 * a log file; its deliveries read back from the log; killed with any signal and started again.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { config } from './gateway.ts';
import type { Config } from '../../src/config.ts';

/** Node settings for webhook tests: fast batching and retries, loopback receivers allowed (or not). */
export function webhookConfig(allowPrivate = true): { webhooks: Config['webhooks'] } {
  const base = config();
  return {
    webhooks: {
      ...base.webhooks,
      allowPrivate,
      flushMs: 30,
      retryBaseMs: 50,
      retryMaxMs: 400,
      timeoutMs: 2000,
    },
  };
}

const SCRIPT = fileURLToPath(new URL('./webhook-receiver.mjs', import.meta.url));

export interface Receiver {
  readonly port: number;
  readonly url: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface ReceivedEvent {
  readonly id: string;
  readonly type: string;
  readonly organizationId: string;
  readonly time: number;
  readonly data: Record<string, unknown>;
  readonly receivedAt: number;
}

export async function startReceiver(options: {
  port: number;
  secret: string;
  log: string;
  status?: number;
}): Promise<Receiver> {
  const child = spawn(process.execPath, [SCRIPT], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(options.port),
      WEBHOOK_SECRET: options.secret,
      WEBHOOK_LOG: options.log,
      ...(options.status !== undefined ? { WEBHOOK_STATUS: String(options.status) } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.once('exit', () => child.kill('SIGKILL'));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.stderr!.on('data', (d) => (out += d));
    child.once('exit', (code) => reject(new Error(`receiver exited (${code}): ${out}`)));
  });
  return {
    port,
    url: `http://127.0.0.1:${port}/hooks`,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Every event the receiver accepted (and every rejection, as `{rejected}` lines), in order. */
export function readLog(log: string): { events: ReceivedEvent[]; rejected: string[] } {
  if (!existsSync(log)) return { events: [], rejected: [] };
  const events: ReceivedEvent[] = [];
  const rejected: string[] = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line) continue;
    const x = JSON.parse(line) as ReceivedEvent & { rejected?: string };
    if (x.rejected) rejected.push(x.rejected);
    else events.push(x);
  }
  return { events, rejected };
}
