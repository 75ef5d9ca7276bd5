/**
 * What batched writes (src/transport/websocket/write-batcher.ts, issue 15 item 4) save per frame, with
 * no gateway around them: 1,000 loopback TCP connections, rounds of F frames of 200 bytes to each, written
 * either one `socket.write` each (as the bare ws baseline and `APIX_WRITE_FLUSH_MS=0` do) or through the
 * WriteBatcher (the first frame of a window corks the socket, the window's end uncorks it: one `writev`).
 * A window here is one round. F = 1 is one-channel fan-out (b) at light load, where a window holds one
 * frame per socket: the batcher's own cost. The clients read in the same process, so the CPU per frame
 * counts both sides (user + system, process.cpuUsage); compare the two modes, not the absolute figures.
 *
 * Usage: node --import tsx bench/tools/batched-writes.ts [rounds=200] [connections=1000]
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { ManualClock } from '../../src/clock.ts';
import { WriteBatcher } from '../../src/transport/websocket/write-batcher.ts';
import type { BatchedWriter } from '../../src/transport/websocket/write-batcher.ts';

const ROUNDS = Number(process.argv[2] ?? 200);
const N = Number(process.argv[3] ?? 1000);
const frame = Buffer.alloc(200, 120);

async function connectPairs(): Promise<{ server: net.Server; sockets: Socket[]; clients: Socket[] }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets: Socket[] = [];
  server.on('connection', (s) => {
    s.setNoDelay(true);
    sockets.push(s);
  });
  const { port } = server.address() as net.AddressInfo;
  const clients = Array.from({ length: N }, () => net.connect(port, '127.0.0.1').on('data', () => {}));
  while (sockets.length < N) await new Promise((r) => setTimeout(r, 10));
  return { server, sockets, clients };
}

async function measure(sockets: Socket[], batched: boolean, perWindow: number): Promise<number> {
  const clock = new ManualClock();
  const batcher = new WriteBatcher(1, clock);
  const writers: BatchedWriter[] = sockets.map((socket) => ({ socket, batched: false }));
  const start = process.cpuUsage();
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < perWindow; k++) {
      for (const w of writers) {
        const socket = w.socket as Socket;
        if (batched) batcher.hold(w, socket.writableLength);
        socket.write(frame);
        if (w.batched) batcher.check(w, socket.writableLength);
      }
    }
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / (ROUNDS * sockets.length * perWindow);
}

const { server, sockets, clients } = await connectPairs();
console.log(`${N} connections, ${ROUNDS} rounds, 200-byte frames; µs of CPU per frame (both sides)`);
console.log('frames per socket per window | one write each | batched | batched / one write each');
for (const perWindow of [1, 2, 5, 10]) {
  const direct: number[] = [];
  const batched: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    direct.push(await measure(sockets, false, perWindow));
    batched.push(await measure(sockets, true, perWindow));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
  const d = median(direct);
  const b = median(batched);
  console.log(`${perWindow} | ${d.toFixed(2)} | ${b.toFixed(2)} | ${(b / d).toFixed(2)}×`);
}
for (const c of clients) c.destroy();
server.close();
