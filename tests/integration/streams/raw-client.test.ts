/**
 * A stream client written from docs/protocol.md §14 alone, on plain `ws` (no SDK, no test helpers for
 * frames): a publisher streams 2,000 appends; one subscriber follows from the start, a second joins
 * halfway, a third drops and resumes its session mid-stream. All three end with the same full text, each
 * with a seq chain with no gap and nothing twice. On one node (a real `apix serve` process, what `npm
 * start` runs, configured only through docs/configuration.md's variables) and on three Redis nodes
 * (publisher, joiner and resumer on different nodes).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { config, TEST_SECRET, token } from '../../support/gateway.ts';
import { spawnGateway } from '../../support/process.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { waitFor } from '../../support/wait.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import type { Config } from '../../../src/config.ts';

const CHANNEL = 'agent:raw';
const APPENDS = 2000;

/** A subscriber's state of one stream, kept by the rules of §14. */
interface Stream {
  text: string;
  seq: number;
  status: string;
  /** Every (fromSeq, seq) applied since the last snapshot, to check the chain. */
  chain: Array<[number, number]>;
  problems: string[];
}

/** A minimal client: connect (or resume a session), subscribe, apply stream frames, publish frames. */
class Client {
  readonly streams = new Map<string, Stream>();
  private readonly replies = new Map<string, (f: any) => void>();
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.onFrame(JSON.parse(String(data))));
  }

  static async open(url: string, jwt: string, sessionId: string, channels: string[]): Promise<Client> {
    const ws = new WebSocket(url, ['apix.v1.json']);
    const c = new Client(ws);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    const established = c.reply('connect');
    ws.send(
      JSON.stringify({
        type: 'connect',
        payload: {
          sessionId,
          clientType: 'API_CLIENT',
          authentication: { token: jwt },
          subscriptions: channels,
        },
        metadata: { correlation_id: 'connect' },
      }),
    );
    const f = await established;
    if (f.type !== 'connection.established') throw new Error(JSON.stringify(f));
    return c;
  }

  reply(correlationId: string): Promise<any> {
    return new Promise((resolve) => this.replies.set(correlationId, resolve));
  }

  async request(type: string, payload: object): Promise<any> {
    const cid = `c${Math.random()}`;
    const r = this.reply(cid);
    this.ws.send(JSON.stringify({ type, channel: CHANNEL, payload, metadata: { correlation_id: cid } }));
    return r;
  }

  append(streamId: string, text: string): void {
    this.ws.send(JSON.stringify({ type: 'stream.append', channel: CHANNEL, payload: { streamId, text } }));
  }

  private onFrame(f: any): void {
    const cid = f.metadata?.correlation_id;
    if (cid !== undefined && this.replies.has(cid)) {
      this.replies.get(cid)!(f);
      this.replies.delete(cid);
    }
    if (f.type === 'connection.established') this.replies.get('connect')?.(f);
    if (f.type === 'message.failed') throw new Error(`refused: ${JSON.stringify(f.payload)}`);
    if (f.channel !== CHANNEL || typeof f.type !== 'string' || !f.type.startsWith('stream.')) return;
    const p = f.payload;
    const s = this.streams.get(p.streamId);
    switch (f.type) {
      case 'stream.start':
        this.streams.set(p.streamId, { text: '', seq: 0, status: 'streaming', chain: [], problems: [] });
        return;
      case 'stream.snapshot':
        // A snapshot replaces what we had (a resume): it must not go backwards.
        if (s && p.seq < s.seq) s.problems.push(`snapshot at ${p.seq} after ${s.seq}`);
        this.streams.set(p.streamId, {
          text: p.text,
          seq: p.seq,
          status: 'streaming',
          chain: [],
          problems: s?.problems ?? [],
        });
        return;
      case 'stream.append':
        if (!s) throw new Error(`append before start/snapshot of ${p.streamId}`);
        if (p.fromSeq !== s.seq + 1) s.problems.push(`append ${p.fromSeq}..${p.seq} after ${s.seq}`);
        else {
          s.text += p.text;
          s.seq = p.seq;
          s.chain.push([p.fromSeq, p.seq]);
        }
        return;
      case 'stream.end':
        if (!s) throw new Error(`end of unknown ${p.streamId}`);
        if (p.seq !== s.seq) s.problems.push(`end at ${p.seq}, have ${s.seq}`);
        s.status = p.status;
    }
  }

  close(): void {
    this.ws.close();
  }
}

async function run(urls: readonly [string, string, string]): Promise<void> {
  const pubJwt = await token({ sub: 'raw-agent', roles: ['service'] });
  const subJwt = await token({ sub: 'raw-reader' });
  const [pubUrl, joinUrl, resumeUrl] = urls;
  const streamId = `raw-${Date.now()}`;
  const first = await Client.open(pubUrl, subJwt, `first-${streamId}`, [CHANNEL]);
  const dropperSession = `dropper-${streamId}`;
  let dropper = await Client.open(resumeUrl, subJwt, dropperSession, [CHANNEL]);
  const pub = await Client.open(pubUrl, pubJwt, `pub-${streamId}`, []);
  const started = await pub.request('stream.start', {
    streamId,
    eventType: 'agent_message',
    data: { model: 'fake' },
  });
  assert.equal(started.type, 'message.sent');
  const pieces = Array.from({ length: APPENDS }, (_, i) => `tok${i}${i % 7 === 0 ? '\n' : ' '}`);
  let joiner: Client | undefined;
  for (let i = 0; i < APPENDS; i++) {
    pub.append(streamId, pieces[i]!);
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
    if (i === APPENDS / 2) joiner = await Client.open(joinUrl, subJwt, `joiner-${streamId}`, [CHANNEL]);
    if (i === APPENDS / 4) dropper.ws.terminate();
    if (i === (APPENDS * 3) / 4) dropper = await Client.open(joinUrl, subJwt, dropperSession, [CHANNEL]);
  }
  const ended = await pub.request('stream.end', { streamId, status: 'complete' });
  assert.equal(ended.type, 'message.sent', JSON.stringify(ended.payload));
  assert.equal(ended.payload.seq, APPENDS);
  const full = pieces.join('');
  for (const [name, c] of [
    ['first', first],
    ['joiner', joiner!],
    ['dropper', dropper],
  ] as const) {
    await waitFor(() => c.streams.get(streamId)?.status === 'complete', 30_000, `${name} to see the end`);
    const s = c.streams.get(streamId)!;
    assert.deepEqual(s.problems, [], name);
    assert.equal(s.seq, APPENDS, name);
    assert.equal(s.text.length, full.length, name);
    assert.equal(s.text, full, name);
    // The chain after its start (or snapshot) is contiguous to the end: no gap, nothing twice.
    for (let i = 1; i < s.chain.length; i++) assert.equal(s.chain[i]![0], s.chain[i - 1]![1] + 1, name);
  }
  for (const c of [first, joiner!, dropper, pub]) c.close();
}

const fast: Partial<Config> = {
  sessionTtlMs: 30_000,
  streams: { maxBytes: 1024 * 1024, maxOpenPerConnection: 100, idleTimeoutMs: 60_000, flushMs: 20 },
};
function withRates(cfg: Config): Config {
  // 2,000 appends as fast as a test sends them: above the default inbound rate of one connection.
  return { ...cfg, rateLimits: { ...cfg.rateLimits, connection: { perSec: 100_000, burst: 100_000 } } };
}

describe('a raw client from docs/protocol.md: 2,000 appends (`npm start`: a real `apix serve`)', () => {
  let gw: GatewayProcess;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'apix-raw-streams-'));
    // What `npm start` runs, configured only by variables of docs/configuration.md: the defaults
    // (memory engines, embedded records, the default flush window), a JWT secret to sign the test's
    // tokens with, and a connection rate above 2,000 appends sent as fast as a test sends them.
    gw = await spawnGateway({
      APIX_DATA_DIR: dataDir,
      APIX_JWT_SECRET: TEST_SECRET,
      APIX_RATE_CONNECTION_PER_SEC: '100000',
      APIX_RATE_CONNECTION_BURST: '100000',
    });
  });
  after(async () => {
    await gw?.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  });
  test('follower, halfway joiner and resumed subscriber end with the same text, gapless', async () => {
    await run([gw.wsUrl, gw.wsUrl, gw.wsUrl]);
  });
});

describe(
  'a raw client from docs/protocol.md: 2,000 appends (3 Redis nodes)',
  { skip: skipWithoutRedis() },
  () => {
    let redis: FoundRedis;
    let prefix: string;
    const nodes: ApiXNode[] = [];
    before(async () => {
      redis = await findRedis();
      prefix = uniquePrefix();
      for (let i = 0; i < 3; i++) {
        const cfg = withRates(
          config({ ...fast, nodeId: `raw${i}`, redisUrl: redis.url, redisPrefix: prefix }),
        );
        const node = createNode({
          config: cfg,
          logger: createLogger('silent', `raw${i}`),
          engines: await createEngines(cfg, { nodeId: cfg.nodeId! }),
        });
        await node.listen();
        nodes.push(node);
      }
    });
    after(async () => {
      await Promise.all(nodes.map((n) => n.close()));
      await deletePrefix(redis.url, prefix);
      await redis.release();
    });
    test('publisher, joiner and resumer on different nodes end with the same text, gapless', async () => {
      await run([nodes[0]!.wsUrl, nodes[1]!.wsUrl, nodes[2]!.wsUrl]);
    });
  },
);
