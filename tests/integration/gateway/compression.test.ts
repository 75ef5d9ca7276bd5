/** permessage-deflate with a shared compressor: each event compressed once, valid for every client. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';

describe('compression', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode({ compression: { enabled: true, thresholdBytes: 512 } });
  });
  after(() => node.close());

  it('negotiates permessage-deflate when offered, and not otherwise', async () => {
    const z = await RawClient.connect(node.wsUrl, { ws: { perMessageDeflate: true } });
    const plain = await RawClient.connect(node.wsUrl, { ws: { perMessageDeflate: false } });
    assert.match(z.ws.extensions, /permessage-deflate/);
    const params = (z.ws as unknown as { _extensions: Record<string, { params: Record<string, unknown> }> })
      ._extensions['permessage-deflate']!.params;
    assert.equal(params.server_no_context_takeover, true);
    assert.equal(plain.ws.extensions, '');
    z.close();
    plain.close();
  });

  it('delivers the same events to compressing and plain clients, compressed on the wire over the threshold', async () => {
    const clients = await Promise.all(
      [true, true, false, true].map((deflate) =>
        RawClient.connect(node.wsUrl, { subscriptions: ['agent:z'], ws: { perMessageDeflate: deflate } }),
      ),
    );
    const pub = await RawClient.connect(node.wsUrl, { token: await token({ roles: ['service'] }) });
    const events = Array.from({ length: 30 }, (_, i) => ({
      i,
      text: i % 3 === 0 ? 'short' : `tool output ${i} `.repeat(200),
      nested: { list: Array.from({ length: 20 }, (_, k) => ({ k, s: `v${k}` })) },
    }));
    for (const p of events) await pub.publish('agent:z', 'tool_output', p);
    for (const c of clients) {
      const got = await c.waitForEvents(30, 'agent:z');
      assert.deepEqual(
        got.map((e) => e.payload),
        events,
      );
    }
    const bytes = clients.map(
      (c) => (c.ws as unknown as { _socket: { bytesRead: number } })._socket.bytesRead,
    );
    assert.ok(bytes[0]! < bytes[2]! / 3, `compressed client read ${bytes[0]} bytes, plain ${bytes[2]}`);
    for (const c of [...clients, pub]) c.close();
  });

  it('still decodes control frames and replays on a compressing connection', async () => {
    const pub = await RawClient.connect(node.wsUrl, { token: await token({ roles: ['service'] }) });
    const first = await pub.publish('agent:zr', 'note', { big: 'x'.repeat(4000) });
    await pub.publish('agent:zr', 'note', { big: 'y'.repeat(4000) });
    const c = await RawClient.connect(node.wsUrl, { ws: { perMessageDeflate: true } });
    const added = await c.subscribe({ channels: ['agent:zr'], since: { 'agent:zr': first.payload.id } });
    assert.equal(added.payload.channels[0].recovered, true);
    const [ev] = await c.waitForEvents(1, 'agent:zr');
    assert.equal(ev!.payload.big, 'y'.repeat(4000));
    c.send({ type: 'heartbeat.ping', payload: { ts: 3 } });
    assert.equal((await c.nextOfType('heartbeat.pong')).payload.ts, 3);
    c.close();
    pub.close();
  });
});
