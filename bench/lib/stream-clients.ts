/**
 * The raw WebSocket clients of bench scenario (g) (bench/streams.ts and its load generators,
 * bench/lib/stream-loadgen.ts): connect with an HS256 token, subscribe, request/reply, stream start/end.
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';

export const SECRET = 'bench-streams-secret-0123456789abcdef';
export const now = (): number => performance.timeOrigin + performance.now();

export type Frame = { type: string; channel?: string; id?: string; payload?: any; metadata?: any };

export class Client {
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  onFrame: ((f: Frame) => void) | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      if (f.type === 'heartbeat.ping')
        ws.send(JSON.stringify({ type: 'heartbeat.pong', payload: { ts: f.payload.ts } }));
      this.onFrame?.(f);
      const i = this.waiters.findIndex((w) => w.pred(f));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(f);
    });
  }
  static async open(url: string, sub: string, roles: string[]): Promise<Client> {
    const token = await new SignJWT({ org: 'bench', roles })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(sub)
      .setExpirationTime('2h')
      .sign(new TextEncoder().encode(SECRET));
    const ws = new WebSocket(url, 'apix.v1.json', { perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const c = new Client(ws);
    const est = c.next((f) => f.type.startsWith('connection.'));
    c.send({
      type: 'connect',
      payload: {
        sessionId: `${sub}-${Math.random()}`,
        clientType: 'API_CLIENT',
        authentication: { token },
        subscriptions: [],
      },
    });
    const f = await est;
    if (f.type !== 'connection.established') throw new Error(JSON.stringify(f));
    return c;
  }
  send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }
  next(pred: (f: Frame) => boolean): Promise<Frame> {
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
  async request(frame: Frame, id: string): Promise<Frame> {
    const reply = this.next((f) => f.metadata?.correlation_id === id);
    this.send({ ...frame, metadata: { correlation_id: id } });
    return reply;
  }
  async subscribe(channels: string[], replayLast?: number): Promise<void> {
    for (let i = 0; i < channels.length; i += 1000) {
      const payload: Record<string, unknown> = { channels: channels.slice(i, i + 1000) };
      if (replayLast) payload.replay = { last: replayLast };
      const r = await this.request({ type: 'subscribe', payload }, `sub-${i}-${Math.random()}`);
      if (r.type !== 'subscription.added' || r.payload.denied.length > 0) throw new Error(JSON.stringify(r));
    }
  }
  async unsubscribe(channels: string[]): Promise<void> {
    const r = await this.request({ type: 'unsubscribe', payload: { channels } }, `unsub-${Math.random()}`);
    if (r.type !== 'subscription.removed') throw new Error(JSON.stringify(r));
  }
  close(): void {
    this.ws.terminate();
  }
}

export async function openMany(url: string, n: number, sub: string, roles: string[]): Promise<Client[]> {
  const out: Client[] = [];
  for (let i = 0; i < n; i += 50)
    out.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, (_, k) => Client.open(url, `${sub}${i + k}`, roles)),
      )),
    );
  return out;
}

export async function startStream(pub: Client, channel: string, streamId: string): Promise<void> {
  const r = await pub.request(
    { type: 'stream.start', channel, payload: { streamId, eventType: 'agent_message' } },
    `st-${channel}-${streamId}`,
  );
  if (r.type !== 'message.sent') throw new Error(JSON.stringify(r));
}

export async function endStream(pub: Client, channel: string, streamId: string): Promise<Frame> {
  return pub.request(
    { type: 'stream.end', channel, payload: { streamId, status: 'complete' } },
    `end-${channel}-${streamId}`,
  );
}
