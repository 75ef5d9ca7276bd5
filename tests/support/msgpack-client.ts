/**
 * The WebSocket client of the protocol over the MessagePack subprotocol (`apix.v1.msgpack`): one map per
 * binary frame each way. Frames are decoded as they are (binary values stay `Uint8Array`); a text frame
 * from the server would be a protocol violation and is recorded as `{type: 'TEXT_FRAME'}`.
 */
import WebSocket from 'ws';
import { decode, encode } from '@msgpack/msgpack';
import { WS_SUBPROTOCOL_MSGPACK } from '../../packages/protocol/src/constants.ts';
import { FrameClient, token } from './gateway.ts';
import type { Frame } from './gateway.ts';
import type { ConnectOptions } from './stream-client.ts';

export class MsgpackClient extends FrameClient {
  private constructor(readonly ws: WebSocket) {
    super();
    ws.on('message', (data, isBinary) => {
      if (!isBinary) return this.received({ type: 'TEXT_FRAME', payload: data.toString() });
      this.received(decode(data as Buffer) as Frame);
    });
    ws.on('close', (code, reason) => this.ended(code, reason.toString()));
    ws.on('error', () => {});
  }

  /** Opens a socket offering `protocols` (MessagePack alone by default). */
  static async open(url: string, protocols: string[] = [WS_SUBPROTOCOL_MSGPACK]): Promise<MsgpackClient> {
    const ws = new WebSocket(url, protocols);
    const client = new MsgpackClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return client;
  }

  /** Opens, sends `connect`, and waits for `connection.established`. */
  static async connect(url: string, opts: ConnectOptions = {}): Promise<MsgpackClient> {
    const c = await MsgpackClient.open(url);
    c.send({
      type: 'connect',
      payload: {
        sessionId: opts.sessionId ?? `s-${Math.random().toString(36).slice(2)}`,
        clientType: opts.clientType ?? 'WEB_APP',
        authentication: { token: opts.token ?? (await token()) },
        subscriptions: opts.subscriptions ?? [],
        ...(opts.resume ? { resume: { lastEventIds: opts.resume } } : {}),
      },
    });
    const f = await c.next((f) => f.type === 'connection.established' || f.type === 'connection.error');
    if (f.type !== 'connection.established') throw new Error(`connect failed: ${JSON.stringify(f.payload)}`);
    return c;
  }

  /** A frame object is sent as MessagePack; bytes (or a string) as they are, for malformed-frame tests. */
  send(frame: unknown): void {
    if (frame instanceof Uint8Array || typeof frame === 'string') this.ws.send(frame);
    else this.ws.send(encode(frame));
  }

  close(): void {
    this.ws.close();
  }
  terminate(): void {
    this.ws.terminate();
  }
}
