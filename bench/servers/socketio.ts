/**
 * Socket.IO 4 for comparison: rooms, the websocket transport only, the same JWT check as APIX in a
 * connection middleware, and the event envelope APIX delivers.
 *
 *   node --import tsx bench/servers/socketio.ts --port 9000 --secret <jwt secret> [--host 127.0.0.1]
 *     [--heartbeat-ms 25000] [--workers N]   (node:cluster without an adapter: rooms are per worker,
 *                                              so fan-out runs use one worker)
 *
 * Events: `sub` (channels, ack) joins the rooms; `pub` {type, channel, payload} broadcasts `event` to
 * the channel's room (Socket.IO encodes a broadcast once and writes it to every member).
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { jwtVerify } from 'jose';
import { Server } from 'socket.io';
import { flag } from './args.ts';

const port = Number(flag('port', '9000'));
const host = flag('host', '127.0.0.1');
const heartbeatMs = Number(flag('heartbeat-ms', '25000'));
const workers = Number(flag('workers', '1'));
const secret = new TextEncoder().encode(flag('secret', ''));

function serve(): void {
  const http = createServer((req, res) => {
    res.writeHead(req.url === '/healthz' ? 200 : 404).end();
  });
  const io = new Server(http, {
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    pingInterval: heartbeatMs,
    pingTimeout: 20_000,
  });
  const seqs = new Map<string, number>();

  io.use((socket, next) => {
    const token: unknown = socket.handshake.auth?.token;
    if (typeof token !== 'string') return next(new Error('UNAUTHORIZED'));
    jwtVerify(token, secret, { algorithms: ['HS256'] }).then(
      ({ payload }) => {
        socket.data.org = payload.org;
        socket.data.sub = payload.sub;
        next();
      },
      () => next(new Error('UNAUTHORIZED')),
    );
  });

  io.on('connection', (socket) => {
    socket.on('sub', (channels: unknown, ack?: (ok: boolean) => void) => {
      if (Array.isArray(channels) && channels.length > 0) void socket.join(channels as string[]);
      ack?.(true);
    });
    socket.on('pub', (msg: { type?: unknown; channel?: unknown; payload?: unknown }) => {
      if (typeof msg?.channel !== 'string' || typeof msg.type !== 'string') return;
      const seq = (seqs.get(msg.channel) ?? 0) + 1;
      seqs.set(msg.channel, seq);
      const now = Date.now();
      io.to(msg.channel).emit('event', {
        type: msg.type,
        channel: msg.channel,
        id: `${now}-${seq}`,
        payload: msg.payload,
        metadata: { timestamp: now, version: '1' },
      });
    });
  });

  http.listen(port, host);
}

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  serve();
}
