/** The load-generator children, as promises: one request, one reply (see messages.ts). */
import type { ChildProcess } from 'node:child_process';
import { spawnPinned, stop } from './proc.ts';
import type {
  ConnectRequest,
  ConnectResult,
  FromLoadgen,
  PublishRequest,
  PublishResult,
  Reply,
  StatsResult,
  ToLoadgen,
} from './messages.ts';

type Request<T extends ToLoadgen> = T extends unknown ? Omit<T, 'id'> : never;

export class Loadgen {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  connected = 0;
  failed = 0;

  constructor(readonly child: ChildProcess) {
    child.on('message', (msg: FromLoadgen) => {
      if (msg.op === 'progress') {
        this.connected = msg.connected;
        this.failed = msg.failed;
        return;
      }
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      p?.resolve(msg);
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`load generator exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private async request<R>(req: Request<ToLoadgen>): Promise<R> {
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ ...req, id });
    });
    if (!reply.ok) throw new Error(reply.error ?? 'load generator error');
    return reply.result as R;
  }

  connect(req: Omit<ConnectRequest, 'id' | 'op'>): Promise<ConnectResult> {
    return this.request({ op: 'connect', ...req });
  }
  reset(step: number): Promise<null> {
    return this.request({ op: 'reset', step });
  }
  stats(histogram: boolean): Promise<StatsResult> {
    return this.request({ op: 'stats', histogram });
  }
  publish(req: Omit<PublishRequest, 'id' | 'op'>): Promise<PublishResult> {
    return this.request({ op: 'publish', ...req });
  }
  async close(): Promise<void> {
    try {
      await Promise.race([this.request({ op: 'close' }), new Promise((r) => setTimeout(r, 2000))]);
    } catch {
      // it exited already
    }
    await stop(this.child, 1000);
  }
}

export function startLoadgens(n: number, cpu: number | undefined, cwd: string): Loadgen[] {
  return Array.from(
    { length: n },
    () =>
      new Loadgen(
        spawnPinned(process.execPath, ['--max-old-space-size=4096', '--import', 'tsx', 'bench/loadgen.ts'], {
          cpu,
          cwd,
          ipc: true,
        }),
      ),
  );
}
