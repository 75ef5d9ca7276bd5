/**
 * The transport seam (src/transport/transport.ts): a client on the in-process test transport, with no
 * socket, connects, subscribes, publishes, receives its event and closes through the gateway's
 * TransportHost side, next to a WebSocket client of the same node.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiXNode } from '../../../src/node.ts';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import { InProcessTransport } from '../../support/in-process-transport.ts';
import type { InProcessFrame } from '../../support/in-process-transport.ts';
import { waitFor } from '../../support/wait.ts';

describe('transport seam: an in-process transport', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode();
  });
  after(async () => {
    await node.close();
  });

  async function connect(sub: string, sessionId: string): Promise<InProcessTransport<unknown>> {
    const t = InProcessTransport.open(node.gateway as never);
    t.write({
      type: 'connect',
      payload: {
        authentication: { token: await token({ sub, roles: ['service'] }) },
        clientType: 'INTERNAL_SERVICE',
        sessionId,
        subscriptions: [],
      },
    });
    const established = await t.next(
      (f) => f.type === 'connection.established' || f.type === 'connection.error',
    );
    assert.equal(established.type, 'connection.established', JSON.stringify(established.payload));
    return t;
  }

  it('connects, subscribes, publishes, receives and closes with no socket', async () => {
    const before = node.gateway.connections.size;
    const a = await connect('inproc-a', 'inproc-a-1');
    const b = await connect('inproc-b', 'inproc-b-1');
    assert.equal(node.gateway.connections.size, before + 2);

    b.write({ type: 'subscribe', payload: { channels: ['agent:seam'] } });
    const added = await b.nextOfType('subscription.added');
    assert.deepEqual(
      added.payload.channels.map((c: { channel: string }) => c.channel),
      ['agent:seam'],
    );

    // A WebSocket client of the same node hears the in-process publisher too.
    const ws = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'inproc-ws', roles: ['service'] }),
      subscriptions: ['agent:seam'],
    });
    try {
      a.write({ type: 'agent.step', channel: 'agent:seam', payload: { n: 1 } });
      const sent = await a.nextOfType('message.sent');
      const isEvent = (f: InProcessFrame) => f.type === 'agent.step' && f.channel === 'agent:seam';
      const event = await b.next(isEvent);
      assert.deepEqual(event.payload, { n: 1 });
      assert.equal(event.id, sent.payload.id);
      const [wsEvent] = await ws.waitForEvents(1, 'agent:seam');
      assert.equal(wsEvent!.id, sent.payload.id);

      // Closed by the client: the gateway lets the connection go (its session waits for a resume).
      b.end(1000, 'bye');
      await waitFor(() => node.gateway.connections.size === before + 2, 5000, 'b gone');
      const session = [...node.gateway.sessions.values()].find((s) => s.sessionId === 'inproc-b-1');
      assert.equal(session?.isLive, false);

      // A frame the server refuses is answered through the seam (a second connect: not fatal).
      a.write({ type: 'connect', payload: {} });
      const err = await a.nextOfType('connection.error');
      assert.equal(err.payload.code, 'BAD_REQUEST');
      assert.equal(a.isOpen, true);
    } finally {
      ws.close();
      a.end();
    }
    await waitFor(() => node.gateway.connections.size === before, 5000, 'every connection gone');
  });

  it('is closed by the server with a code: a first frame that is not connect', async () => {
    const t = InProcessTransport.open(node.gateway as never);
    t.write({ type: 'subscribe', payload: { channels: ['agent:seam'] } });
    const err = await t.nextOfType('connection.error');
    assert.equal(err.payload.fatal, true);
    await waitFor(() => t.closed !== undefined, 5000, 'the close');
    assert.equal(t.closed!.code >= 4000, true, `close code ${t.closed!.code}`);
  });
});
