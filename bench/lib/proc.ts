/**
 * Child processes for the bench: started with the file limit raised to the hard limit and pinned to a
 * core with `taskset` (when there is more than one), measured through /proc, and always cleaned up.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { openSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';

const live = new Set<ChildProcess>();

export interface SpawnOptions {
  /** Core (or taskset list, e.g. `1-3`) to pin to; undefined: not pinned. */
  readonly cpu: number | string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** File that receives stdout and stderr; undefined: inherited. */
  readonly logFile?: string;
  readonly ipc?: boolean;
}

let niceness = 0;
/**
 * Scheduling priority for everything the bench starts (negative: ahead of other work on the machine,
 * which needs root; without it `nice` warns and runs the command at normal priority).
 */
export function setNiceness(n: number): void {
  niceness = n;
}

/** `sh -c 'ulimit -n <hard>; exec taskset -c <cpu> <cmd>'`: exec keeps the pid and the IPC channel. */
export function spawnPinned(cmd: string, args: readonly string[], o: SpawnOptions): ChildProcess {
  const pin = [
    ...(niceness !== 0 ? ['nice', '-n', String(niceness)] : []),
    ...(o.cpu !== undefined ? ['taskset', '-c', String(o.cpu)] : []),
  ];
  const out = o.logFile ? openSync(o.logFile, 'a') : 'inherit';
  const stdio: StdioOptions = ['ignore', out, out];
  if (o.ipc) stdio.push('ipc');
  const child = spawn(
    'sh',
    ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...pin, cmd, ...args],
    { cwd: o.cwd, env: o.env ?? process.env, stdio },
  );
  live.add(child);
  child.on('exit', () => live.delete(child));
  return child;
}

/**
 * Every core but the gateway's (`1-<n-1>`, or `1` on two cores): for load generators spread over
 * processes. undefined when not pinned or on one core.
 */
export function loadCores(pin: boolean): string | undefined {
  const n = availableParallelism();
  return pin && n >= 2 ? (n === 2 ? '1' : `1-${n - 1}`) : undefined;
}

/** Two cores or more: the gateway on core 0, load generators on core 1. */
export function cores(pin: boolean): { server: number | undefined; load: number | undefined } {
  return pin && availableParallelism() >= 2 ? { server: 0, load: 1 } : { server: undefined, load: undefined };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The pid and all its descendants (cluster workers, `apix serve --workers`). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // the process exited while we looked
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture Node runs on

/** CPU seconds (user + system) used so far by these processes. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15: utime, stime
    } catch {
      // exited
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** Resident set size in bytes (sum of VmRSS). */
export function rssBytes(pids: readonly number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // exited
    }
  }
  return kb * 1024;
}

/** CPU use of a process tree over an interval, as a percentage of one core. */
export class CpuMeter {
  private t0 = performance.now();
  private c0: number;
  constructor(private readonly pids: () => readonly number[]) {
    this.c0 = cpuSeconds(pids());
  }
  read(): number {
    const seconds = (performance.now() - this.t0) / 1000;
    return seconds > 0 ? (100 * (cpuSeconds(this.pids()) - this.c0)) / seconds : 0;
  }
  /** CPU seconds used since the meter started. */
  seconds(): number {
    return cpuSeconds(this.pids()) - this.c0;
  }
}

/** Busy CPU seconds of the whole machine (all cores) so far, from /proc/stat. */
export function machineCpuSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  return busy / TICKS_PER_SECOND;
}

/**
 * CPU used by processes that are not part of the bench over an interval (% of one core): other work on
 * the machine that competes with the measurement.
 */
export class OtherCpuMeter {
  private t0 = performance.now();
  private m0 = machineCpuSeconds();
  private o0: number;
  constructor(private readonly ours: () => readonly number[]) {
    this.o0 = cpuSeconds(ours());
  }
  read(): number {
    const seconds = (performance.now() - this.t0) / 1000;
    const other = machineCpuSeconds() - this.m0 - (cpuSeconds(this.ours()) - this.o0);
    return seconds > 0 ? Math.max(0, (100 * other) / seconds) : 0;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `url` until it answers 200; fails early if the child exits. */
export async function waitHttp(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`exited with code ${exited} before it was ready`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`not ready after ${timeoutMs} ms (${url})`);
}

/** SIGTERM the process tree, then SIGKILL what is left. */
export async function stop(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const pids = processTree(child.pid);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
  await Promise.race([exited, sleep(graceMs)]);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await Promise.race([exited, sleep(1000)]);
}

/** Kills every child still alive (on exit, Ctrl-C or a crash): the bench leaves nothing running. */
export function killAll(): void {
  for (const child of live) {
    if (child.pid === undefined) continue;
    for (const pid of processTree(child.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  live.clear();
}
