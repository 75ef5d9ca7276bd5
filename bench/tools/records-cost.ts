/**
 * What the records cost per event, in CPU time (not wall time, so a busy machine disturbs it little):
 * audit entries shaped like a publish's and connection records shaped like a connect's, recorded at a
 * steady rate into a real embedded PGlite (or PostgreSQL with --database-url) and flushed, as the node does.
 *
 *   node --import tsx bench/tools/records-cost.ts [--entries 20000] [--rate 2000] [--kind audit|connect|both]
 *     [--database-url postgres://...] [--buffers-mb 16]
 *
 * Prints, per entry: the whole process's CPU, and each thread's (from /proc: the event loop is the thread
 * named after the pid, PGlite's the busiest other one; the rest are V8's collector helpers). The event
 * loop's utilization is printed too, but it is wall time and means little on a busy machine. And the
 * process's RSS and this thread's heap before and after (growth, not what stays: garbage may not be
 * collected yet). --buffers-mb: PGlite's shared_buffers, the node's default (16) unless given.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AuditLogger } from '../../src/audit/audit-logger.ts';
import { auditHooks } from '../../src/audit/audit-hooks.ts';
import { createDatabase } from '../../src/store/database.ts';
import { migrate } from '../../src/store/migrate.ts';
import { createRecordRepositories } from '../../src/store/records.ts';
import { recordHooks } from '../../src/store/record-hooks.ts';
import type { ConnectionInfo, GatewayHooks } from '../../src/hooks.ts';
import { pgliteTemplate } from '../../tests/support/databases.ts';

/** CPU ticks (1/100 s) per thread of this process, by thread name and id, from /proc. */
function threadTicks(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${name}#${tid}`, Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended
    }
  }
  return out;
}

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const entries = Number(arg('entries', '20000'));
const rate = Number(arg('rate', '2000'));
const kind = arg('kind', 'both');
const databaseUrl = arg('database-url', '') || undefined;

const dataDir = mkdtempSync(join(tmpdir(), 'apix-records-cost-'));
if (!databaseUrl)
  cpSync(join(await pgliteTemplate(), 'pgdata'), join(dataDir, 'pgdata'), { recursive: true });
// The node's default shared_buffers (APIX_EMBEDDED_DB_BUFFERS_MB), or the memory figures mean nothing.
const db = await createDatabase({ databaseUrl, dataDir, embeddedBuffersMb: Number(arg('buffers-mb', '16')) });
await migrate(db);

function connectionInfo(i: number): ConnectionInfo {
  return {
    connectionId: `c-${i}`,
    sessionId: `s-${i}`,
    clientType: 'AGENT',
    status: 'CONNECTED',
    connectedAt: Date.now(),
    channels: ['agent:bench'],
    metadata: {},
    principal: { kind: 'user', orgId: 'bench', userId: `u-${i}`, roles: ['member'] },
    peer: { remoteAddress: '127.0.0.2', userAgent: undefined, origin: undefined },
  } as unknown as ConnectionInfo;
}

/** Emits `count` events at `rate` per second in 10 ms ticks; resolves when all were emitted. */
async function drive(count: number, emit: (i: number) => void): Promise<void> {
  const perTick = Math.max(1, Math.round(rate / 100));
  let i = 0;
  while (i < count) {
    const end = Math.min(count, i + perTick);
    for (; i < end; i++) emit(i);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function measure(label: string, run: () => Promise<void>): Promise<void> {
  const mem0 = process.memoryUsage();
  const rss0 = mem0.rss;
  const ticks0 = threadTicks();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await run();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const cpuUs = cpu.user + cpu.system;
  const perThread = [...threadTicks()]
    .map(([k, v]) => [k, v - (ticks0.get(k) ?? 0)] as const)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${((v * 10_000) / entries).toFixed(1)}`)
    .join(', ');
  process.stdout.write(`${label}: µs/entry by thread: ${perThread}\n`);
  const mem = process.memoryUsage();
  const rss = mem.rss;
  process.stdout.write(
    `${label}: this thread's heap ${(mem0.heapTotal / 2 ** 20).toFixed(1)} -> ${(mem.heapTotal / 2 ** 20).toFixed(1)} MB, ` +
      `external ${(mem0.external / 2 ** 20).toFixed(1)} -> ${(mem.external / 2 ** 20).toFixed(1)} MB\n`,
  );
  process.stdout.write(
    `${label}: RSS ${(rss0 / 2 ** 20).toFixed(1)} -> ${(rss / 2 ** 20).toFixed(1)} MB ` +
      `(${((rss - rss0) / 1024 / entries).toFixed(2)} KB/entry; the heap may not have shrunk yet)\n`,
  );
  process.stdout.write(
    `${label}: ${entries} in ${(wall / 1000).toFixed(1)} s; process CPU ${(cpuUs / entries).toFixed(1)} µs/entry; ` +
      `event loop busy ${((elu.active * 1000) / entries).toFixed(1)} µs/entry\n`,
  );
}

if (kind === 'audit' || kind === 'both') {
  const audit = new AuditLogger({ db, dataDir });
  const hooks: GatewayHooks = auditHooks(audit);
  const conn = connectionInfo(0);
  await measure('audit (publish entries)', async () => {
    await drive(entries, (i) =>
      hooks.onPublish!({
        principal: conn.principal,
        peer: conn.peer,
        connection: conn,
        channel: `agent:ch-${i % 1000}`,
        channelType: 'agent',
        type: 'bench',
        id: `e-${i}`,
        bytes: 256,
      } as never),
    );
    await audit.flush();
  });
  await audit.close();
}
if (kind === 'connect' || kind === 'both') {
  const repos = createRecordRepositories(db.prisma, {
    flushIntervalMs: 5_000,
    execute: (sql, params) => db.withRawSession((session) => session.query(sql, params)),
  });
  const audit = new AuditLogger({ db, dataDir });
  const records = recordHooks(repos);
  const trail = auditHooks(audit);
  await measure('connect (records + audit)', async () => {
    await drive(entries, (i) => {
      const connection = connectionInfo(i);
      records.onConnect!({ connection, resumed: false } as never);
      trail.onConnect!({ connection, resumed: false } as never);
      trail.onSubscribe!({
        connection,
        channel: 'agent:bench',
        channelType: 'agent',
        granted: true,
      } as never);
    });
    await repos.flush();
    await audit.flush();
  });
  await repos.close();
  await audit.close();
}
await db.close();
rmSync(dataDir, { recursive: true, force: true });
