/**
 * A TCP proxy in front of a real server (PostgreSQL, Redis), to cut and restore the network in tests:
 * `cut()` destroys every open connection and refuses new ones; `blackhole()` keeps every connection open
 * but stops moving bytes (like a partition: nothing arrives, nothing fails, until TCP gives up);
 * `restore()` lets them through again (a black-holed connection then delivers what was held back).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  cut(): void;
  blackhole(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let mode: 'open' | 'cut' | 'blackhole' = 'open';
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const link = (p: { client: Socket; upstream: Socket }) => {
    p.client.pipe(p.upstream);
    p.upstream.pipe(p.client);
  };
  const hold = (p: { client: Socket; upstream: Socket }) => {
    p.client.unpipe(p.upstream);
    p.upstream.unpipe(p.client);
    p.client.pause();
    p.upstream.pause();
  };
  const server: Server = createServer((client) => {
    track(client);
    if (mode === 'cut') return void client.destroy();
    const upstream = createConnection({ host: targetHost, port: targetPort });
    track(upstream);
    const pair = { client, upstream };
    pairs.add(pair);
    if (mode === 'open') link(pair);
    else hold(pair);
    client.on('close', () => (pairs.delete(pair), upstream.destroy()));
    upstream.on('close', () => (pairs.delete(pair), client.destroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut() {
      mode = 'cut';
      for (const s of sockets) s.destroy();
    },
    blackhole() {
      mode = 'blackhole';
      for (const p of pairs) hold(p);
    },
    restore() {
      const wasHolding = mode === 'blackhole';
      mode = 'open';
      if (wasHolding) for (const p of pairs) link(p);
    },
    close() {
      mode = 'cut';
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
