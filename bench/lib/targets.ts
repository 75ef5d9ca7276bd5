/**
 * The systems under test and how to start them. A target starts its server process(es) pinned to the
 * server core, says where clients connect and which client protocol they speak, and stops cleanly.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, processTree, sleep, spawnPinned, stop, waitHttp } from './proc.ts';
import type { TargetKind } from './protocols.ts';

export type Scenario = 'a' | 'b' | 'c' | 'd' | 'e' | 'f';

export interface StartContext {
  readonly root: string;
  readonly tmpDir: string;
  readonly cpu: number | undefined;
  readonly jwtSecret: string;
  readonly heartbeatMs: number;
  /** Server processes to use (connection counts above one process's file limit). */
  readonly workers: number;
  /** When set, every server process writes a V8 CPU profile (`node --cpu-prof`) into this folder. */
  readonly cpuProfDir?: string;
  /**
   * PostgreSQL for APIX's records (`--database-url`): with several workers APIX keeps its records there
   * (the embedded database is single-process); unset, several workers run with records off.
   */
  readonly databaseUrl?: string;
}

export interface Running {
  /** ws:// base URLs, one per node. */
  readonly urls: string[];
  /** Every process of the system under test (gateway nodes, their workers, Redis). */
  pids(): number[];
  stop(): Promise<void>;
}

export interface TargetDef {
  readonly name: string;
  readonly label: string;
  readonly kind: TargetKind;
  readonly scenarios: readonly Scenario[];
  /** Gateway nodes (Redis mode runs 3). */
  readonly nodes: number;
  start(ctx: StartContext): Promise<Running>;
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

let serial = 0;
/** How long a stopping server may drain; a profiled one needs to exit by itself to write its profile. */
let stopGraceMs = 2000;

async function startNode(
  ctx: StartContext,
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  port: number,
  readyTimeoutMs: number,
): Promise<ChildProcess> {
  const logFile = join(ctx.tmpDir, `${name}-${++serial}.log`);
  const prof = ctx.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', ctx.cpuProfDir] : [];
  if (ctx.cpuProfDir) stopGraceMs = 60_000;
  const child = spawnPinned(process.execPath, [...prof, '--import', 'tsx', ...args], {
    cpu: ctx.cpu,
    cwd: ctx.root,
    env,
    logFile,
  });
  try {
    await waitHttp(`http://127.0.0.1:${port}/healthz`, child, readyTimeoutMs);
  } catch (err) {
    await stop(child);
    const tail = logTail(logFile);
    throw new Error(`${name}: ${(err as Error).message}${tail ? `\n${tail}` : ''}`, { cause: err });
  }
  return child;
}

function running(children: ChildProcess[], ports: number[]): Running {
  return {
    urls: ports.map((p) => `ws://127.0.0.1:${p}`),
    pids: () => children.flatMap((c) => (c.pid !== undefined ? processTree(c.pid) : [])),
    stop: async () => {
      await Promise.all(children.map((c) => stop(c, stopGraceMs)));
    },
  };
}

async function waitRedis(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('PING\r\n'));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error('redis-server did not answer PING');
}

const baseline: TargetDef = {
  name: 'baseline',
  label: 'ws baseline',
  kind: 'baseline',
  scenarios: ['a', 'b', 'c', 'f'],
  nodes: 1,
  async start(ctx) {
    const port = await freePort();
    const args = [
      'bench/servers/ws-baseline.ts',
      '--port',
      String(port),
      '--heartbeat-ms',
      String(ctx.heartbeatMs),
    ];
    args.push('--workers', String(ctx.workers));
    return running([await startNode(ctx, 'baseline', args, process.env, port, 20_000)], [port]);
  },
};

const socketio: TargetDef = {
  name: 'socketio',
  label: 'Socket.IO 4',
  kind: 'socketio',
  scenarios: ['a', 'b', 'c', 'f'],
  nodes: 1,
  async start(ctx) {
    const port = await freePort();
    const args = ['bench/servers/socketio.ts', '--port', String(port), '--secret', ctx.jwtSecret];
    args.push('--heartbeat-ms', String(ctx.heartbeatMs), '--workers', String(ctx.workers));
    return running([await startNode(ctx, 'socketio', args, process.env, port, 20_000)], [port]);
  },
};

function apixEnv(ctx: StartContext, port: number, node: number, redisUrl?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    APIX_PORT: String(port),
    APIX_HOST: '127.0.0.1',
    APIX_JWT_SECRET: ctx.jwtSecret,
    APIX_LOG_LEVEL: 'warn',
    APIX_DATA_DIR: join(ctx.tmpDir, `apix-data-${++serial}`),
    APIX_NODE_ID: `bench-${node}`,
    APIX_HEARTBEAT_INTERVAL_MS: String(ctx.heartbeatMs),
  };
  // The bench measures capacity, not policy: APIX's rate limits (per connection, channel, organization
  // and source address; docs/protocol.md leaves them to the operator) are off, as the other servers have none.
  for (const limit of ['CONNECTION', 'PUBLISH', 'CHANNEL', 'ORG_PUBLISH', 'ORG_SUBSCRIBE', 'ADDRESS']) {
    env[`APIX_RATE_${limit}_PER_SEC`] = '0';
  }
  // Likewise the caps on concurrent connections per address and user: the load comes from a few addresses.
  env.APIX_MAX_CONNECTIONS_PER_ADDRESS = '0';
  env.APIX_MAX_CONNECTIONS_PER_USER = '0';
  if (redisUrl) env.REDIS_URL = redisUrl;
  else delete env.REDIS_URL;
  delete env.DATABASE_URL;
  // Several workers cannot share the embedded database (PGlite is single-process): they keep their records in
  // PostgreSQL when the bench was given one, else they run without records.
  if (ctx.workers > 1 && ctx.databaseUrl) env.DATABASE_URL = ctx.databaseUrl;
  else if (ctx.workers > 1) env.APIX_RECORDS = 'off';
  return env;
}

function apixArgs(workers: number): string[] {
  return ['src/cli/main.ts', 'serve', ...(workers > 1 ? ['--workers', String(workers)] : [])];
}

const apix: TargetDef = {
  name: 'apix',
  label: 'APIX',
  kind: 'apix',
  scenarios: ['a', 'b', 'c', 'd', 'f'],
  nodes: 1,
  async start(ctx) {
    const port = await freePort();
    if (ctx.workers <= 1) {
      const child = await startNode(ctx, 'apix', apixArgs(ctx.workers), apixEnv(ctx, port, 1), port, 90_000);
      return running([child], [port]);
    }
    // Several workers act as one node through Redis (apix serve --workers needs REDIS_URL).
    const redisPort = await freePort();
    const redis = spawnPinned(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { cpu: ctx.cpu, cwd: ctx.tmpDir, logFile: join(ctx.tmpDir, `redis-${++serial}.log`) },
    );
    try {
      await waitRedis(redisPort, 10_000);
      const env = apixEnv(ctx, port, 1, `redis://127.0.0.1:${redisPort}`);
      const child = await startNode(ctx, 'apix', apixArgs(ctx.workers), env, port, 90_000);
      return running([redis, child], [port]);
    } catch (err) {
      await stop(redis);
      throw err;
    }
  },
};

/** APIX with the audit of publishes off: the cost of auditing every publish, in the same run. */
const apixAuditOff: TargetDef = {
  name: 'apix-audit-off',
  label: 'APIX, audit of publishes off',
  kind: 'apix',
  scenarios: ['b', 'c'],
  nodes: 1,
  async start(ctx) {
    const port = await freePort();
    const env = { ...apixEnv(ctx, port, 1), APIX_AUDIT_PUBLISHES: 'false' };
    const child = await startNode(ctx, 'apix-audit-off', apixArgs(ctx.workers), env, port, 90_000);
    return running([child], [port]);
  },
};

/** APIX without records (`APIX_RECORDS=off`: no database, no audit trail): what the records cost, same run. */
const apixRecordsOff: TargetDef = {
  name: 'apix-records-off',
  label: 'APIX, records off',
  kind: 'apix',
  scenarios: ['a', 'b', 'c'],
  nodes: 1,
  async start(ctx) {
    const port = await freePort();
    const env = { ...apixEnv(ctx, port, 1), APIX_RECORDS: 'off' };
    const child = await startNode(ctx, 'apix-records-off', apixArgs(ctx.workers), env, port, 90_000);
    return running([child], [port]);
  },
};

/**
 * APIX with batched writes off (`APIX_WRITE_FLUSH_MS=0`: every frame written to its socket on its own, as
 * the baseline does): what the flush window buys, in the same run (`--targets baseline,apix,apix-flush-off`).
 */
const apixFlushOff: TargetDef = {
  name: 'apix-flush-off',
  label: 'APIX, batched writes off',
  kind: 'apix',
  scenarios: ['b', 'c', 'f'],
  nodes: 1,
  async start(ctx) {
    const port = await freePort();
    const env = { ...apixEnv(ctx, port, 1), APIX_WRITE_FLUSH_MS: '0' };
    const child = await startNode(ctx, 'apix-flush-off', apixArgs(ctx.workers), env, port, 90_000);
    return running([child], [port]);
  },
};

function apixRedis(nodes: number): TargetDef {
  return {
    name: `apix-redis-${nodes}`,
    label: `APIX + Redis, ${nodes} node${nodes > 1 ? 's' : ''}`,
    kind: 'apix',
    scenarios: ['b', 'c'],
    nodes,
    async start(ctx) {
      const redisPort = await freePort();
      const redis = spawnPinned(
        'redis-server',
        ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { cpu: ctx.cpu, cwd: ctx.tmpDir, logFile: join(ctx.tmpDir, `redis-${++serial}.log`) },
      );
      const children: ChildProcess[] = [redis];
      try {
        await waitRedis(redisPort, 10_000);
        const ports: number[] = [];
        for (let n = 1; n <= nodes; n++) {
          const port = await freePort();
          const env = apixEnv(ctx, port, n, `redis://127.0.0.1:${redisPort}`);
          children.push(
            await startNode(ctx, `apix-redis-node${n}`, apixArgs(ctx.workers), env, port, 90_000),
          );
          ports.push(port);
        }
        return running(children, ports);
      } catch (err) {
        await Promise.all(children.map((c) => stop(c, stopGraceMs)));
        throw err;
      }
    },
  };
}

export const TARGETS: readonly TargetDef[] = [
  baseline,
  socketio,
  apix,
  apixAuditOff,
  apixRecordsOff,
  apixFlushOff,
  apixRedis(1),
  apixRedis(3),
];
