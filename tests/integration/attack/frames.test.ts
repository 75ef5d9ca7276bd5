/**
 * Attack suite, frames: hand-made WebSocket frames on a bare socket (size limits, a deflate bomb,
 * fragmentation floods, invalid UTF-8, protocol violations, ping floods). Expected answers in the names;
 * after each case the control connection still publishes and receives its own event.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync, constants as zlib } from 'node:zlib';
import { startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { Control, Op, portOf, sleep, until, watchProcess, WireClient, wireConnected } from './helpers.ts';

const LIMIT = 64 * 1024;
const watch = watchProcess();
after(() => watch.assertNone());

/** A permessage-deflate payload (RSV1 frame body): sync-flushed, without the 00 00 ff ff tail. */
function deflateMessage(data: Buffer): Buffer {
  const out = deflateRawSync(data, { finishFlush: zlib.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** A JSON publish frame of exactly `size` bytes. */
function publishOfSize(size: number): string {
  const head = '{"type":"note","channel":"room:big","payload":"';
  const tail = '"}';
  return head + 'x'.repeat(size - head.length - tail.length) + tail;
}

describe('attack: frames', { concurrency: true }, () => {
  let node: ApiXNode;
  let port: number;
  let control: Control;
  before(async () => {
    node = await startNode({ maxMessageBytes: LIMIT, maxBufferedBytes: 256 * 1024 });
    port = portOf(node);
    control = await Control.start(node);
  });
  after(async () => {
    await control.check();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  it('a text frame of exactly APIX_MAX_MESSAGE_BYTES -> accepted (message.sent); one byte over -> close 1009', async () => {
    const atLimit = await wireConnected(node);
    const frame = publishOfSize(LIMIT);
    assert.equal(Buffer.byteLength(frame), LIMIT);
    atLimit.sendText(frame);
    const sent = await atLimit.waitJson((f) => f.type === 'message.sent' || f.type === 'message.failed');
    assert.equal(sent.type, 'message.sent');
    assert.equal(atLimit.closeCode, undefined);
    atLimit.destroy();

    const over = await wireConnected(node);
    over.sendText(publishOfSize(LIMIT + 1));
    assert.equal(await over.waitClosed(), 1009);
    over.destroy();
    await control.check();
  });

  it('fragments each under the limit but over it in total -> close 1009 before the last fragment', async () => {
    const c = await wireConnected(node);
    const part = 'x'.repeat(30 * 1024);
    c.sendFrame({
      opcode: Op.TEXT,
      fin: false,
      payload: `{"type":"note","channel":"room:f","payload":"${part}`,
    });
    c.sendFrame({ opcode: Op.CONT, fin: false, payload: part });
    c.sendFrame({ opcode: Op.CONT, fin: false, payload: part });
    assert.equal(await c.waitClosed(), 1009);
    c.destroy();
    await control.check();
  });

  it('a 64-bit length of 2^63 and a declared 10 MB frame with no body -> close 1009 at once, nothing buffered', async () => {
    for (const length64 of [1n << 63n, 10n * 1024n * 1024n]) {
      const c = await wireConnected(node);
      c.sendFrame({ opcode: Op.TEXT, payload: Buffer.alloc(0), lengthForm: 64, length64 });
      assert.equal(await c.waitClosed(), 1009, `length ${length64}`);
      c.destroy();
    }
    await control.check();
  });

  it('permessage-deflate bomb: 32 KB inflating to 32 MB, on 20 connections at once -> close 1009 each; memory stays bounded', async () => {
    const bomb = deflateMessage(Buffer.alloc(32 * 1024 * 1024, 0x20));
    assert.ok(bomb.length < LIMIT, `compressed size ${bomb.length}`);
    const clients = await Promise.all(Array.from({ length: 20 }, () => wireConnected(node, {}, true)));
    assert.ok(
      clients.every((c) => c.deflate),
      'permessage-deflate negotiated',
    );
    global.gc?.();
    const before = process.memoryUsage();
    for (const c of clients) c.sendFrame({ opcode: Op.TEXT, rsv1: true, payload: bomb });
    for (const c of clients) assert.equal(await c.waitClosed(15_000), 1009);
    const afterUse = process.memoryUsage();
    const grown = afterUse.rss - before.rss;
    // Unbounded inflation would need 20 x 32 MB = 640 MB; ws stops at the limit.
    assert.ok(grown < 160 * 1024 * 1024, `rss grew by ${(grown / 1048576).toFixed(1)} MB`);
    for (const c of clients) c.destroy();
    await control.check();
  });

  it('a compressed frame of garbage -> close 1007; RSV1 without negotiated deflate -> close 1002', async () => {
    // The inflation runs on libuv's thread pool, behind ws's limit of 10 inflations at once: this case runs
    // beside the deflate bomb's 20 (concurrency: true), and its answer may wait for theirs on a busy machine.
    const garbage = await wireConnected(node, {}, true);
    garbage.sendFrame({
      opcode: Op.TEXT,
      rsv1: true,
      payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01]),
    });
    assert.equal(await garbage.waitClosed(15_000), 1007);
    garbage.destroy();
    const plain = await wireConnected(node);
    plain.sendFrame({ opcode: Op.TEXT, rsv1: true, payload: deflateMessage(Buffer.from('{"type":"x"}')) });
    assert.equal(await plain.waitClosed(15_000), 1002);
    plain.destroy();
    await control.check();
  });

  it('16,000 empty continuation frames inside one message (under ws maxFragments) -> reassembled and answered', async () => {
    const c = await wireConnected(node);
    const empty = Buffer.from([0x00, 0x80, 1, 2, 3, 4]); // fin=0, continuation, masked, length 0
    c.sendFrame({ opcode: Op.TEXT, fin: false, payload: '{"type":"heartbeat.ping",' });
    c.write(Buffer.concat(Array.from({ length: 16_000 }, () => empty)));
    c.sendFrame({ opcode: Op.CONT, fin: true, payload: '"payload":{"ts":4242}}' });
    const pong = await c.waitJson((f) => f.type === 'heartbeat.pong', 5000);
    assert.equal(pong.payload.ts, 4242);
    assert.equal(c.closeCode, undefined);
    c.destroy();
    await control.check();
  });

  it('a flood of 50,000 empty (or one-byte) continuation frames -> close 1008 past 16,384 fragments, nothing buffered', async () => {
    for (const fragment of [
      Buffer.from([0x00, 0x80, 1, 2, 3, 4]), // empty
      Buffer.from([0x00, 0x81, 0, 0, 0, 0, 0x20]), // one space, mask key 0
    ]) {
      const c = await wireConnected(node);
      c.sendFrame({ opcode: Op.TEXT, fin: false, payload: '{"type":"heartbeat.ping",' });
      c.write(Buffer.concat(Array.from({ length: 50_000 }, () => fragment)));
      assert.equal(await c.waitClosed(5000), 1008);
      c.destroy();
    }
    await control.check();
  });

  it('a continuation with no message started, or a new text frame inside a fragmented one -> close 1002', async () => {
    const orphan = await wireConnected(node);
    orphan.sendFrame({ opcode: Op.CONT, payload: '{}' });
    assert.equal(await orphan.waitClosed(), 1002);
    orphan.destroy();
    const nested = await wireConnected(node);
    nested.sendFrame({ opcode: Op.TEXT, fin: false, payload: '{"a":' });
    nested.sendFrame({ opcode: Op.TEXT, payload: '{}' });
    assert.equal(await nested.waitClosed(), 1002);
    nested.destroy();
    await control.check();
  });

  it('invalid UTF-8 (bad byte, overlong, surrogate, split over fragments, in the close reason; before and after connect) -> close 1007', async () => {
    const bad: Array<[string, (c: WireClient) => void]> = [
      ['0xC3 0x28', (c) => c.sendText(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]))],
      ['overlong /', (c) => c.sendText(Buffer.from([0x22, 0xc0, 0xaf, 0x22]))],
      ['UTF-16 surrogate', (c) => c.sendText(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]))],
      ['0xFF', (c) => c.sendText(Buffer.from([0xff]))],
      [
        'a sequence split over two fragments, then broken',
        (c) => {
          c.sendFrame({ opcode: Op.TEXT, fin: false, payload: Buffer.from([0x22, 0xe2, 0x82]) });
          c.sendFrame({ opcode: Op.CONT, fin: true, payload: Buffer.from([0x28, 0x22]) });
        },
      ],
      [
        'the close reason',
        (c) => c.sendFrame({ opcode: Op.CLOSE, payload: Buffer.from([0x03, 0xe8, 0xc3, 0x28]) }),
      ],
    ];
    for (const [what, send] of bad) {
      for (const connected of [false, true]) {
        const c = connected ? await wireConnected(node) : await WireClient.open(port);
        send(c);
        assert.equal(await c.waitClosed(), 1007, `${what} (connected: ${connected})`);
        c.destroy();
      }
    }
    // A multi-byte character split cleanly over fragments is fine.
    const ok = await wireConnected(node);
    const euro = Buffer.from('{"type":"heartbeat.ping","payload":{"ts":1},"metadata":{"x":"€"}}');
    const cut = euro.indexOf(0xe2) + 1;
    ok.sendFrame({ opcode: Op.TEXT, fin: false, payload: euro.subarray(0, cut) });
    ok.sendFrame({ opcode: Op.CONT, fin: true, payload: euro.subarray(cut) });
    assert.equal((await ok.waitJson((f) => f.type === 'heartbeat.pong')).payload.ts, 1);
    ok.destroy();
    await control.check();
  });

  it('an unmasked client frame -> close 1002', async () => {
    const c = await wireConnected(node);
    c.sendFrame({ opcode: Op.TEXT, mask: false, payload: '{"type":"heartbeat.ping"}' });
    assert.equal(await c.waitClosed(), 1002);
    c.destroy();
    await control.check();
  });

  it('reserved opcodes 0x3-0x7 and 0xB-0xF, and RSV2/RSV3 bits -> close 1002', async () => {
    for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      const c = await wireConnected(node);
      c.sendFrame({ opcode, payload: 'x' });
      assert.equal(await c.waitClosed(), 1002, `opcode ${opcode}`);
      c.destroy();
    }
    for (const bits of [{ rsv2: true }, { rsv3: true }]) {
      const c = await wireConnected(node);
      c.sendFrame({ opcode: Op.TEXT, payload: '{}', ...bits });
      assert.equal(await c.waitClosed(), 1002, JSON.stringify(bits));
      c.destroy();
    }
    await control.check();
  });

  it('control-frame violations: a 126-byte ping, a fragmented ping, a 1-byte close, close codes 999/1005/1006/1015/5000 -> close 1002', async () => {
    const cases: Array<[string, (c: WireClient) => void]> = [
      ['126-byte ping', (c) => c.sendFrame({ opcode: Op.PING, payload: Buffer.alloc(126, 1) })],
      ['fragmented ping', (c) => c.sendFrame({ opcode: Op.PING, fin: false, payload: 'p' })],
      ['1-byte close', (c) => c.sendFrame({ opcode: Op.CLOSE, payload: Buffer.from([3]) })],
    ];
    for (const code of [999, 1005, 1006, 1015, 5000]) {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code);
      cases.push([`close code ${code}`, (c) => c.sendFrame({ opcode: Op.CLOSE, payload })]);
    }
    for (const [what, send] of cases) {
      const c = await wireConnected(node);
      send(c);
      assert.equal(await c.waitClosed(), 1002, what);
      c.destroy();
    }
    await control.check();
  });

  it('paced ping flood from a client that reads: 1,000 pings of 125 bytes in bursts of 50 -> 1,000 pongs echoing them; connection stays', async () => {
    const c = await wireConnected(node);
    const payload = Buffer.alloc(125, 0x61);
    const burst = Buffer.concat(Array.from({ length: 50 }, () => c.frameBytes(Op.PING, payload)));
    const pongs = () => c.messages.filter((m) => m.opcode === Op.PONG);
    for (let i = 1; i <= 20; i++) {
      c.write(burst);
      await until(() => pongs().length === 50 * i, 3000, `${50 * i} pongs`);
    }
    assert.ok(pongs().every((m) => m.data.equals(payload)));
    assert.equal(c.closeCode, undefined);
    c.sendJson({ type: 'heartbeat.ping', payload: { ts: 3 } });
    assert.equal((await c.waitJson((f) => f.type === 'heartbeat.pong')).payload.ts, 3);
    c.destroy();
    await control.check();
  });

  it('ping burst: 5,000 pings in one write -> at most 60 pongs outstanding (ws maxPendingAutoPongs), then the TCP connection is dropped (1006, no close frame)', async () => {
    const c = await wireConnected(node);
    c.write(
      Buffer.concat(Array.from({ length: 5000 }, () => c.frameBytes(Op.PING, Buffer.alloc(125, 0x61)))),
    );
    await c.waitEnded(3000);
    assert.ok(c.messages.filter((m) => m.opcode === Op.PONG).length <= 60);
    assert.equal(c.closeCode, undefined, 'terminated, not closed');
    await until(() => !c.heldBy(node), 2000, 'the server side to be gone');
    await control.check();
  });

  it('unsolicited pong flood (10,000 pongs) -> ignored: no reply, connection stays', async () => {
    const c = await wireConnected(node);
    const before = c.bytesReceived;
    c.write(Buffer.concat(Array.from({ length: 10_000 }, () => c.frameBytes(Op.PONG, Buffer.from('pong')))));
    c.sendJson({ type: 'heartbeat.ping', payload: { ts: 9 } });
    assert.equal((await c.waitJson((f) => f.type === 'heartbeat.pong')).payload.ts, 9);
    assert.ok(c.bytesReceived - before < 1024, 'nothing but the one pong came back');
    c.destroy();
    await control.check();
  });

  it('ping flood from a client that never reads -> dropped once 60 pongs are pending; its send buffer never grows past that', async () => {
    const c = await wireConnected(node);
    c.socket.pause(); // never read again
    const burst = Buffer.concat(
      Array.from({ length: 200 }, () => c.frameBytes(Op.PING, Buffer.alloc(125, 0x62))),
    );
    for (let i = 0; i < 400 && c.heldBy(node); i++) {
      c.write(burst);
      await sleep(2);
    }
    await until(() => !c.heldBy(node), 3000, 'the non-reading pinger to be dropped');
    c.destroy();
    await control.check();
  });
});

describe('attack: frames before connect', () => {
  it('a 1009-size frame as the very first frame, before connect -> close 1009 (no buffering of early frames)', async () => {
    const node = await startNode({ maxMessageBytes: LIMIT });
    const control = await Control.start(node);
    try {
      const c = await WireClient.open(portOf(node));
      c.sendText(publishOfSize(LIMIT + 1));
      assert.equal(await c.waitClosed(), 1009);
      c.destroy();
      // A connect followed by 100 pipelined frames: the first 64 wait for authentication, then RATE_LIMITED, 4008.
      const p = await WireClient.open(portOf(node));
      const tok = await token();
      const frames = [
        JSON.stringify({
          type: 'connect',
          payload: {
            sessionId: 'pipe',
            clientType: 'WEB_APP',
            authentication: { token: tok },
            subscriptions: [],
          },
        }),
        ...Array.from({ length: 100 }, (_, i) =>
          JSON.stringify({ type: 'heartbeat.ping', payload: { ts: i } }),
        ),
      ];
      p.write(Buffer.concat(frames.map((f) => p.frameBytes(Op.TEXT, Buffer.from(f)))));
      assert.equal(await p.waitClosed(), 4008);
      assert.equal(p.json.find((f) => f.type === 'connection.error')?.payload.code, 'RATE_LIMITED');
      p.destroy();
      await control.check();
    } finally {
      control.close();
      WireClient.destroyAll();
      await node.close();
    }
  });
});
