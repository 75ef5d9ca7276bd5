/**
 * Test support: a real gateway node on an ephemeral port, tokens, and a raw `ws` client that speaks
 * docs/protocol.md frame by frame (no SDK), with waits that fail with the frames seen so far.
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { createNode } from '../../src/node.ts';
import type { ApiXNode, NodeOptions } from '../../src/node.ts';
import { testConfig } from '../../src/config.ts';
import type { Config } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';

export const TEST_SECRET = 'test-secret-0123456789-abcdefghij';

export function config(overrides: Partial<Config> = {}): Config {
  const base = testConfig();
  return {
    ...base,
    logLevel: 'silent',
    ...overrides,
    auth: {
      ...base.auth,
      jwtSecret: TEST_SECRET,
      apiKeys: ['acme:apix_static_acmekey'],
      ...(overrides.auth ?? {}),
    },
  };
}

export async function startNode(
  overrides: Partial<Config> = {},
  options: Partial<NodeOptions> = {},
): Promise<ApiXNode> {
  const cfg = config(overrides);
  const node = createNode({ logger: createLogger('silent', 'test'), ...options, config: cfg });
  await node.listen();
  return node;
}

export interface TokenClaims {
  sub?: string;
  org?: string;
  roles?: string[];
  expiresIn?: string | number;
  secret?: string;
  [claim: string]: unknown;
}

export async function token(claims: TokenClaims = {}): Promise<string> {
  const {
    sub = 'alice',
    org = 'acme',
    roles = ['member'],
    expiresIn = '1h',
    secret = TEST_SECRET,
    ...rest
  } = claims;
  const jwt = new SignJWT({ org, roles, ...rest })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt();
  if (expiresIn !== 0) jwt.setExpirationTime(expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}

export type Frame = {
  type: string;
  channel?: string;
  id?: string;
  payload?: any;
  metadata?: any;
};

/**
 * A client that speaks the protocol frame by frame over some transport: the frames it received, in
 * order, and waits on them. `RawClient` is the WebSocket one; tests/support/stream-client.ts has the
 * HTTP streaming and SSE ones.
 */
export abstract class FrameClient {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: Array<() => void> = [];

  abstract send(frame: unknown): void;
  /** Closes from the client's side (the server keeps the session for a resume). */
  abstract close(): void;
  /** Drops the connection without any goodbye. */
  abstract terminate(): void;

  /** A frame arrived (subclasses call it). */
  protected received(frame: Frame): void {
    this.frames.push(frame);
    this.wake();
  }

  /** The connection closed (subclasses call it once). */
  protected ended(code: number, reason: string): void {
    this.closed ??= { code, reason };
    this.wake();
  }

  private cursor = 0;
  /** The next frame (after the last one returned) matching `pred`. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 3000): Promise<Frame> {
    return this.find(pred, this.cursor, timeoutMs);
  }

  /**
   * The first frame from index `from` on matching `pred`, without skipping anything for other waiters:
   * concurrent publishes on one client each find their own reply wherever it lands (`next` would move
   * the shared cursor past a reply another caller still waits for). The cursor ends up past the match.
   */
  private async find(pred: (f: Frame) => boolean, from: number, timeoutMs = 3000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (let i = from; ;) {
      for (; i < this.frames.length; i++) {
        const f = this.frames[i]!;
        if (pred(f)) {
          this.cursor = Math.max(this.cursor, i + 1);
          return f;
        }
      }
      if (this.closed)
        throw new Error(
          `closed (${this.closed.code} ${this.closed.reason}) before a matching frame; saw ${this.summary()}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a frame; saw ${this.summary()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  nextOfType(type: string, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f.type === type, timeoutMs);
  }

  /** Channel events received so far (any non-control type with an id). */
  events(channel?: string): Frame[] {
    return this.frames.filter(
      (f) => f.id !== undefined && f.channel !== undefined && (!channel || f.channel === channel),
    );
  }

  async waitForEvents(n: number, channel?: string, timeoutMs = 3000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events(channel).length < n) {
      if (Date.now() > deadline)
        throw new Error(`expected ${n} events, got ${this.events(channel).length}; saw ${this.summary()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.events(channel);
  }

  async waitClosed(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`not closed; saw ${this.summary()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.closed;
  }

  /** Publishes and waits for the reply with the same correlation id. */
  async publish(
    channel: string,
    type: string,
    payload: unknown,
    metadata: Record<string, unknown> = {},
  ): Promise<Frame> {
    const correlation_id = `c-${Math.random().toString(36).slice(2)}`;
    const from = this.frames.length;
    this.send({ type, channel, payload, metadata: { ...metadata, correlation_id } });
    return this.find((f) => f.metadata?.correlation_id === correlation_id, from);
  }

  async subscribe(payload: Record<string, unknown>): Promise<Frame> {
    const correlation_id = `c-${Math.random().toString(36).slice(2)}`;
    const from = this.frames.length;
    this.send({ type: 'subscribe', payload, metadata: { correlation_id } });
    return this.find((f) => f.metadata?.correlation_id === correlation_id, from);
  }

  protected summary(): string {
    return JSON.stringify(this.frames.slice(-5).map((f) => ({ type: f.type, payload: f.payload })));
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }
}

/** The WebSocket client of the protocol (`ws`), frame by frame. */
export class RawClient extends FrameClient {
  private constructor(readonly ws: WebSocket) {
    super();
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.received(JSON.parse(data.toString()) as Frame);
    });
    ws.on('close', (code, reason) => this.ended(code, reason.toString()));
    ws.on('error', () => {});
  }

  static async open(
    url: string,
    options: WebSocket.ClientOptions & { protocols?: string[] } = {},
  ): Promise<RawClient> {
    const ws = new WebSocket(url, options.protocols ?? [], options);
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return client;
  }

  /** Opens, sends `connect`, and waits for `connection.established`. */
  static async connect(
    url: string,
    opts: {
      token?: string;
      sessionId?: string;
      subscriptions?: string[];
      resume?: Record<string, string>;
      clientType?: string;
      ws?: WebSocket.ClientOptions;
    } = {},
  ): Promise<RawClient> {
    const c = await RawClient.open(url, opts.ws);
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

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  close(): void {
    this.ws.close();
  }
  terminate(): void {
    this.ws.terminate();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
