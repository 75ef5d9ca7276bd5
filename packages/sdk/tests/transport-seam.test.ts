/**
 * The SDK's transport seam (transport.ts, `ClientTransport`): a transport is one object implementing it,
 * and the client needs nothing else. Here an in-memory transport, wired to a scripted in-memory gateway,
 * drives the whole client with no WebSocket at all: connect, subscribe, receive, publish, drop, reconnect
 * and resume the session (no duplicate across the resume), close.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiXClient, type ClientTransport, type IncomingMessage } from '../src/index.ts';
import { eventually } from './support/helpers.ts';

interface Frame {
  type: string;
  id?: string;
  channel?: string;
  payload?: any;
  metadata?: any;
}

/** One connection: the client side implements the seam; `push` and `drop` are the gateway's side. */
class MemoryTransport implements ClientTransport {
  onOpen: (() => void) | null = null;
  onMessage: ((message: IncomingMessage) => void) | null = null;
  onClose: ((code: number, reason: string) => void) | null = null;
  isOpen = false;
  bufferedAmount = 0;
  url: string | undefined;
  closedWith: { code: number; reason: string } | undefined;
  readonly received: Frame[] = [];

  constructor(private readonly gateway: MemoryGateway) {}

  connect(url: string): void {
    this.url = url;
    this.gateway.connections.push(this);
    queueMicrotask(() => {
      this.isOpen = true;
      this.onOpen?.();
    });
  }

  send(text: string): void {
    const frame = JSON.parse(text) as Frame;
    this.received.push(frame);
    queueMicrotask(() => this.gateway.onFrame(this, frame));
  }

  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
    this.end(code, reason);
  }

  push(frame: Frame): void {
    queueMicrotask(() => this.onMessage?.(JSON.stringify(frame)));
  }

  /** The connection is lost (no closing handshake). */
  drop(): void {
    this.end(1006, '');
  }

  private end(code: number, reason: string): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    queueMicrotask(() => this.onClose?.(code, reason));
  }
}

/** Just enough gateway: sessions with their subscriptions, one channel's history, publish replies. */
class MemoryGateway {
  readonly connections: MemoryTransport[] = [];
  readonly sessions = new Map<string, Set<string>>();
  readonly history: Frame[] = [];
  private seq = 0;

  emitEvent(channel: string, status: string): string {
    const id = `1700000000000-${++this.seq}`;
    const event = {
      type: 'agent_status_update',
      channel,
      id,
      payload: { agentId: 'a1', status },
      metadata: { timestamp: 1_700_000_000_000, version: '1' },
    };
    this.history.push(event);
    for (const c of this.connections) if (c.isOpen) c.push(event);
    return id;
  }

  onFrame(c: MemoryTransport, frame: Frame): void {
    const reply = (type: string, payload: unknown) =>
      c.push({
        type,
        payload,
        metadata: { timestamp: 0, version: '1', correlation_id: frame.metadata?.correlation_id },
      });
    if (frame.type === 'connect') {
      const { sessionId, resume } = frame.payload;
      const known = this.sessions.get(sessionId);
      const subs = known ?? new Set<string>();
      this.sessions.set(sessionId, subs);
      reply('connection.established', {
        connectionId: `conn-${this.connections.indexOf(c)}`,
        sessionId,
        resumed: known !== undefined,
        heartbeatIntervalMs: 25_000,
        subscriptions: [...subs],
        denied: [],
      });
      // Resumed: replay from the client's last ids, one event of overlap included (at-least-once).
      for (const [channel, last] of Object.entries<string>(resume?.lastEventIds ?? {})) {
        const events = this.history.filter((e) => e.channel === channel);
        const from = Math.max(
          0,
          events.findIndex((e) => e.id === last),
        );
        for (const e of events.slice(from)) c.push(e);
      }
    } else if (frame.type === 'subscribe') {
      const session = [...this.sessions.values()].at(-1)!;
      for (const channel of frame.payload.channels as string[]) session.add(channel);
      reply('subscription.added', {
        channels: frame.payload.channels.map((channel: string) => ({ channel, recovered: true })),
        denied: [],
      });
    } else if (frame.channel !== undefined) {
      reply('message.sent', { id: `1700000000001-${++this.seq}` });
    }
  }
}

describe('SDK transport seam: an in-memory ClientTransport drives the client', () => {
  it('connects, subscribes, receives, publishes, resumes after a drop and closes, with no WebSocket', async () => {
    const gateway = new MemoryGateway();
    const client = new ApiXClient({
      url: 'memory://gateway',
      token: 'test-token',
      clientType: 'WEB_APP',
      transport: () => new MemoryTransport(gateway),
      reconnect: { baseMs: 10, maxMs: 20, factor: 2 },
      random: () => 0.5,
      heartbeat: false,
    });
    const seen: string[] = [];
    const sub = client.subscribe('agent:a1');
    sub.on('*', (e) => void seen.push(e.id));

    const info = await client.connect();
    assert.equal(info.resumed, false);
    assert.deepEqual(await sub.ready, { recovered: true });
    const first = gateway.connections[0]!;
    assert.equal(first.url, 'memory://gateway/v1/ws', 'the gateway URL, normalized, reaches the transport');
    assert.equal(first.received[0]?.type, 'connect');
    assert.equal(first.received[0]?.payload.sessionId, client.sessionId);

    const ids = [gateway.emitEvent('agent:a1', 'running'), gateway.emitEvent('agent:a1', 'idle')];
    await eventually(() => seen.length === 2);
    assert.deepEqual(seen, ids);

    const result = await client.publish('agent:a1', 'agent_status_update', {
      agentId: 'a1',
      status: 'running',
    });
    assert.equal(result.status, 'sent');

    // The connection drops; the client opens a new transport and resumes its session from the last id.
    first.drop();
    await eventually(() => gateway.connections.length === 2 && client.state === 'connected');
    const second = gateway.connections[1]!;
    const connect = second.received[0]!;
    assert.equal(connect.type, 'connect');
    assert.equal(connect.payload.sessionId, client.sessionId);
    assert.deepEqual(connect.payload.resume, { lastEventIds: { 'agent:a1': ids[1] } });
    assert.ok(
      !second.received.some((f) => f.type === 'subscribe'),
      'the resumed session kept the subscription: no new subscribe',
    );
    ids.push(gateway.emitEvent('agent:a1', 'done'));
    await eventually(() => seen.length === 3);
    assert.deepEqual(seen, ids, 'the replayed overlap is not delivered twice');

    await client.close();
    assert.deepEqual(second.closedWith, { code: 1000, reason: 'client closed' });
    assert.equal(client.state, 'closed');
  });
});
