/**
 * Real redis-server processes for tests.
 *
 * - `startRedis()` spawns a private redis-server on a free port in a temp dir; the test can `kill()` it
 *   (SIGKILL, like a crash), `stop()` it, and `restart()` it on the same port and dir.
 * - `findRedis()` gives a test "some Redis": `REDIS_URL` if set, else 127.0.0.1:6379 if it answers PING,
 *   else a private one. Each test must then use a unique key prefix (`uniquePrefix()`) and clean up.
 * - `redisAvailable()`: when redis-server is missing, suites skip with a loud message, except under
 *   CI=true where that is a failure (a CI without Redis must not pass silently).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sleep } from './wait.ts';

export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';
export const REDIS_CLI_BIN = process.env.REDIS_CLI_BIN ?? 'redis-cli';

let availability: boolean | undefined;

/** Whether a redis-server binary can run here. Under CI=true a missing binary throws instead. */
export function redisAvailable(): boolean {
  if (availability !== undefined) return availability;
  const r = spawnSync(REDIS_SERVER_BIN, ['--version'], { encoding: 'utf8' });
  availability = r.status === 0;
  if (!availability) {
    const msg = `redis-server not found (${REDIS_SERVER_BIN}): the Redis engine tests cannot run`;
    if (process.env.CI === 'true') throw new Error(`${msg}; CI=true requires them`);
    console.warn(
      `\n!!!!!!!! ${msg}; SKIPPING them. Install redis-server or set REDIS_SERVER_BIN. !!!!!!!!\n`,
    );
  }
  return availability;
}

/** The `skip` option for node:test: a reason string when Redis tests cannot run here. */
export function skipWithoutRedis(): string | false {
  return redisAvailable() ? false : 'redis-server not installed';
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends PING over a raw socket; true when the server answers +PONG within `timeoutMs`. */
export function pingRedis(host: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => finish(d.toString().startsWith('+PONG')));
    sock.on('error', () => finish(false));
  });
}

export interface RedisServerOptions {
  readonly appendonly?: boolean;
  /** Use this port (default: a free one). */
  readonly port?: number;
  /** Extra `--name value` arguments. */
  readonly args?: readonly string[];
}

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  readonly url: string;
  /** SIGKILL (a crash) or SIGTERM; resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Graceful SIGTERM stop; the dir is kept for `restart()`. */
  stop(): Promise<void>;
  /** Starts again on the same port and dir (after `kill` or `stop`). */
  restart(): Promise<void>;
  /** Stops the server and removes its dir. */
  destroy(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  // Never leave a redis-server behind, even when a test fails before its cleanup.
  for (const p of running) p.kill('SIGKILL');
});

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'apix-redis-'));
  let proc: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      options.appendonly ? 'yes' : 'no',
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
      ...(options.args ?? []),
    ];
    const p = spawn(REDIS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    running.add(p);
    p.on('exit', () => running.delete(p));
    let stderr = '';
    p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`redis-server exited (${p.exitCode}): ${stderr}`);
      if (await pingRedis('127.0.0.1', port)) return;
      await sleep(20);
    }
    p.kill('SIGKILL');
    throw new Error(`redis-server did not answer on port ${port}: ${stderr}`);
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
  };

  await launch();
  return {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    kill,
    stop: () => kill('SIGTERM'),
    restart: async () => {
      await kill('SIGKILL');
      await launch();
    },
    destroy: async () => {
      await kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface FoundRedis {
  readonly url: string;
  /** Stops the server if this call started it; a shared server is left alone. */
  release(): Promise<void>;
}

/** Some Redis for tests that neither kill nor restart it. */
export async function findRedis(): Promise<FoundRedis> {
  const envUrl = process.env.REDIS_URL;
  if (envUrl) return { url: envUrl, release: async () => {} };
  if (await pingRedis('127.0.0.1', 6379)) return { url: 'redis://127.0.0.1:6379', release: async () => {} };
  const server = await startRedis();
  return { url: server.url, release: () => server.destroy() };
}

/** A key prefix no other test uses (`apixtest:<random>:`). */
export function uniquePrefix(): string {
  return `apixtest:${randomBytes(6).toString('hex')}:`;
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port > 55_000) continue;
    const busFree = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port + 10_000, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (busFree) return port;
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  /** `redis+cluster://host:port,...` for createRedisClients. */
  readonly url: string;
  destroy(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` masters (no replicas), each a private redis-server, joined with
 * `redis-cli --cluster create`. Resolves once every node reports cluster_state:ok.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freeClusterPort();
      nodes.push(
        await startRedis({
          port,
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
          ],
        }),
      );
    }
    const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
    const r = spawnSync(
      REDIS_CLI_BIN,
      ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes'],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = nodes.every((n) => {
        const info = spawnSync(REDIS_CLI_BIN, ['-p', String(n.port), 'cluster', 'info'], {
          encoding: 'utf8',
        });
        return info.stdout.includes('cluster_state:ok');
      });
      if (ok) break;
      if (Date.now() > deadline) throw new Error('the Redis Cluster did not reach cluster_state:ok');
      await sleep(50);
    }
    return {
      nodes,
      url: `redis+cluster://${addrs.join(',')}`,
      destroy: async () => {
        await Promise.all(nodes.map((n) => n.destroy()));
      },
    };
  } catch (err) {
    await Promise.all(nodes.map((n) => n.destroy()));
    throw err;
  }
}
