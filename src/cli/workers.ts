/**
 * `apix serve --workers N`: N gateway processes sharing one port through node:cluster, acting as one
 * through the Redis engine (each worker is a node with its own id). The primary only forks, restarts a
 * worker that dies, and forwards SIGTERM/SIGINT so every worker drains.
 */
import cluster from 'node:cluster';

export interface WorkerPlan {
  readonly workers: number;
  readonly redisUrl: string | undefined;
  readonly databaseUrl: string | undefined;
  readonly records: boolean;
}

/** Why this plan cannot run, or undefined. */
export function workerPlanProblem(plan: WorkerPlan): string | undefined {
  if (plan.workers <= 1) return undefined;
  if (!plan.redisUrl) return '--workers > 1 needs REDIS_URL (the workers act as one through Redis)';
  if (plan.records && !plan.databaseUrl)
    return '--workers > 1 needs DATABASE_URL (embedded PGlite is single-process) or APIX_RECORDS=off';
  return undefined;
}

/** Runs the primary: forks the workers and supervises them until a signal; resolves with the exit code. */
export function runPrimary(workers: number, log: (line: string) => void): Promise<number> {
  let stopping = false;
  const fork = (index: number) => {
    const w = cluster.fork({ APIX_WORKER_INDEX: String(index) });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      log(`apix: worker ${index} exited (${signal ?? code}); restarting it`);
      setTimeout(() => fork(index), 500).unref();
    });
  };
  for (let i = 0; i < workers; i++) fork(i);
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
      const check = setInterval(() => {
        if (Object.keys(cluster.workers ?? {}).length === 0) {
          clearInterval(check);
          resolve(0);
        }
      }, 50);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGTERM'));
  });
}

export const isWorker = (): boolean => cluster.isWorker;
