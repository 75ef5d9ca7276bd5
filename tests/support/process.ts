/**
 * A gateway as a real process (`apix serve`), for restart, persistence and SIGKILL tests: started on a
 * free port with the environment given, ready when /readyz answers 200. It runs what `npm start` runs:
 * the compiled CLI in dist/ (bin/apix.js; `node scripts/test.mjs` builds it first), not the sources.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from './redis.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The `apix` command as installed (bin/apix.js runs dist/cli/main.js). */
const APIX = ['bin/apix.js'];
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export interface GatewayProcess {
  readonly port: number;
  readonly wsUrl: string;
  readonly httpUrl: string;
  readonly output: () => string;
  /** Sends the signal and resolves with the exit code when the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function spawnGateway(
  env: Record<string, string>,
  options: { port?: number; readyTimeoutMs?: number; args?: readonly string[] } = {},
): Promise<GatewayProcess> {
  const port = options.port ?? (await freePort());
  let out = '';
  const child = spawn(process.execPath, [...APIX, 'serve', ...(options.args ?? [])], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      APIX_HOST: '127.0.0.1',
      APIX_LOG_LEVEL: 'warn',
      ...env,
      APIX_PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => (running.delete(child), resolve(code))),
  );
  const httpUrl = `http://127.0.0.1:${port}`;
  // Generous: a first start in a fresh data dir runs PGlite's initdb and the migrations, which take tens of
  // seconds on a busy 2-core machine. Polled: a fast start is not slowed down.
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode}): ${out}`);
    try {
      const r = await fetch(`${httpUrl}/readyz`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway not ready in time: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    httpUrl,
    output: () => out,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs an `apix` CLI command to completion. */
export function runCli(
  args: string[],
  env: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...APIX, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    encoding: 'utf8',
    timeout: 120_000, // opening the embedded database is slow on a busy machine
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
