/**
 * The baseline: a bare `ws` broadcast server, about the least work a Node process can do per delivery.
 * Per publish it builds the event once, frames it once with ws's `Sender.frame` into one buffer, and
 * writes that buffer straight to each subscriber's TCP socket (no per-subscriber framing, no
 * backpressure handling, no auth, no history). Heartbeats are ws pings; a socket that has not answered
 * the last two is terminated.
 *
 *   node --import tsx bench/servers/ws-baseline.ts --port 9000 [--host 127.0.0.1] [--heartbeat-ms 25000]
 *     [--workers N]   (node:cluster, for connection counts above one process's file limit; publishes are
 *                      not relayed between workers, so fan-out runs use one worker)
 *     [--deflate on]  (ws's own permessage-deflate, its defaults: each event goes through ws.send to each
 *                      subscriber, compressed per connection with that connection's context; the reference
 *                      of bench/tools/compression.ts)
 *
 * Client frames: `{"type":"subscribe","channels":[...]}` -> `{"type":"subscribed"}`;
 * `{"type":"<event>","channel":"...","payload":...}` publishes to the channel's subscribers.
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import * as wsModule from 'ws';
import type { WebSocket } from 'ws';
import { flag } from './args.ts';

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}
/** `Sender.frame` is public in ws but not in @types/ws. */
const Sender = (wsModule as unknown as { Sender: { frame(data: Buffer, o: FrameOptions): Buffer[] } }).Sender;
const TEXT: FrameOptions = { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false };

const port = Number(flag('port', '9000'));
const host = flag('host', '127.0.0.1');
const heartbeatMs = Number(flag('heartbeat-ms', '25000'));
const workers = Number(flag('workers', '1'));
const deflate = flag('deflate', 'off') === 'on';

interface Client {
  readonly ws: WebSocket;
  readonly socket: Socket;
  /** Pings sent since the last pong. */
  missed: number;
  readonly channels: Set<string>;
}

function serve(): void {
  const channels = new Map<string, Set<Client>>();
  const seqs = new Map<string, number>();
  const clients = new Set<Client>();

  const http = createServer((req, res) => {
    res.writeHead(req.url === '/healthz' ? 200 : 404).end();
  });
  const wss = new wsModule.WebSocketServer({
    server: http,
    perMessageDeflate: deflate,
    clientTracking: false,
  });

  function publish(channel: string, type: string, payload: unknown): void {
    const subs = channels.get(channel);
    const seq = (seqs.get(channel) ?? 0) + 1;
    seqs.set(channel, seq);
    if (!subs || subs.size === 0) return;
    const now = Date.now();
    const event =
      `{"type":${JSON.stringify(type)},"channel":${JSON.stringify(channel)},"id":"${now}-${seq}",` +
      `"payload":${JSON.stringify(payload)},"metadata":{"timestamp":${now},"version":"1"}}`;
    if (deflate) {
      const data = Buffer.from(event);
      for (const c of subs) c.ws.send(data, { binary: false });
      return;
    }
    const frame = Buffer.concat(Sender.frame(Buffer.from(event), TEXT));
    for (const c of subs) {
      c.socket.cork();
      c.socket.write(frame);
      c.socket.uncork();
    }
  }

  wss.on('connection', (ws) => {
    const client: Client = {
      ws,
      socket: (ws as unknown as { _socket: Socket })._socket,
      missed: 0,
      channels: new Set(),
    };
    clients.add(client);
    ws.on('pong', () => {
      client.missed = 0;
    });
    ws.on('close', () => {
      clients.delete(client);
      for (const ch of client.channels) channels.get(ch)?.delete(client);
    });
    ws.on('message', (data: Buffer) => {
      let msg: { type?: unknown; channel?: unknown; channels?: unknown; payload?: unknown };
      try {
        msg = JSON.parse(data.toString());
      } catch {
        ws.close(4000, 'bad json');
        return;
      }
      if (msg.type === 'subscribe' && Array.isArray(msg.channels)) {
        for (const ch of msg.channels as string[]) {
          let set = channels.get(ch);
          if (!set) channels.set(ch, (set = new Set()));
          set.add(client);
          client.channels.add(ch);
        }
        ws.send('{"type":"subscribed"}');
      } else if (typeof msg.type === 'string' && typeof msg.channel === 'string') {
        publish(msg.channel, msg.type, msg.payload);
      }
    });
  });

  setInterval(() => {
    for (const c of clients) {
      if (c.missed >= 2) {
        c.ws.terminate();
        continue;
      }
      c.missed++;
      c.ws.ping();
    }
  }, heartbeatMs).unref();

  http.listen(port, host);
}

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  serve();
}
