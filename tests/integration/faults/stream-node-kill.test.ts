/**
 * Fault: SIGKILL of the publisher's node in the middle of a stream (real `apix serve` processes, one Redis).
 *
 * A publisher streams on node 0; subscribers follow on nodes 1 and 2, and one on node 0 itself. Node 0 is
 * SIGKILLed part-way. The publisher reconnects to node 1 and sends `stream.start` again: the answer's
 * `seq` says how many appends were accepted (stored in Redis), and it goes on from there. The subscriber
 * of node 0 resumes its session on node 2. Verdict: no accepted append is lost (every subscriber saw at
 * most `seq` before the kill, and the stored text is exactly the first `seq` pieces), and every subscriber
 * ends with the full text, with a seq chain with no gap and nothing twice.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipWithoutRedis, startRedis, uniquePrefix } from '../../support/redis.ts';
import type { RedisServer } from '../../support/redis.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { RawClient, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { readStreams } from '../../support/stream-reader.ts';
import { waitFor } from '../../support/wait.ts';
import { Cleanup, gatewayEnv, startGateway, tempDir } from './helpers.ts';

const CH = 'agent:kill-stream';
const PIECES = 600;
const KILL_AT = 250;

async function request(c: RawClient, type: string, payload: object): Promise<Frame> {
  const correlation_id = `c-${Math.random().toString(36).slice(2)}`;
  c.send({ type, channel: CH, payload, metadata: { correlation_id } });
  return c.next((f) => f.metadata?.correlation_id === correlation_id, 20_000);
}

describe(
  'fault: SIGKILL of the publisher node mid-stream',
  { skip: skipWithoutRedis(), timeout: 120_000 },
  () => {
    const cleanup = new Cleanup();
    let redis: RedisServer;
    let gws: GatewayProcess[];

    before(async () => {
      redis = await startRedis();
      cleanup.add(() => redis.destroy());
      const prefix = uniquePrefix();
      gws = await Promise.all(
        [0, 1, 2].map((i) =>
          startGateway(
            gatewayEnv(redis.url, prefix, tempDir(cleanup), {
              APIX_NODE_ID: `skill${i}`,
              APIX_STREAM_FLUSH_MS: '10',
              APIX_RATE_CONNECTION_PER_SEC: '100000',
              APIX_RATE_CONNECTION_BURST: '100000',
            }),
            cleanup,
          ),
        ),
      );
    });
    after(() => cleanup.run());

    it('the publisher goes on from another node; no accepted append is lost; every subscriber ends whole', async (t) => {
      const [victim, n1, n2] = gws as [GatewayProcess, GatewayProcess, GatewayProcess];
      const pubToken = await token({ sub: 'agent-svc', roles: ['service'] });
      const subs = [
        await RawClient.connect(n1.wsUrl, { subscriptions: [CH] }),
        await RawClient.connect(n2.wsUrl, { subscriptions: [CH] }),
      ];
      const sessionId = `s-victim-${Date.now()}`;
      const onVictim = await RawClient.connect(victim.wsUrl, { sessionId, subscriptions: [CH] });
      let pub = await RawClient.connect(victim.wsUrl, { token: pubToken });
      const pieces = Array.from({ length: PIECES }, (_, i) => `p${i} `);
      assert.equal(
        (await request(pub, 'stream.start', { streamId: 'k1', eventType: 'agent_message' })).type,
        'message.sent',
      );
      for (let i = 0; i < KILL_AT; i++) {
        pub.send({ type: 'stream.append', channel: CH, payload: { streamId: 'k1', text: pieces[i] } });
        if (i % 25 === 24) await new Promise((r) => setTimeout(r, 10));
      }
      await victim.kill('SIGKILL');
      const seenBeforeKill = Math.max(...subs.map((s) => readStreams(s.frames, CH).get('k1')?.seq ?? 0));
      pub = await RawClient.connect(n1.wsUrl, { token: pubToken });
      const resumed = await request(pub, 'stream.start', { streamId: 'k1', eventType: 'agent_message' });
      assert.equal(resumed.type, 'message.sent', JSON.stringify(resumed.payload));
      const accepted = resumed.payload.seq as number;
      assert.ok(accepted <= KILL_AT, `accepted ${accepted} of ${KILL_AT} sent`);
      assert.ok(accepted >= seenBeforeKill, `a subscriber saw seq ${seenBeforeKill}, only ${accepted} kept`);
      t.diagnostic(
        `sent ${KILL_AT} before the kill; accepted ${accepted}; a subscriber had seen ${seenBeforeKill}`,
      );
      const back = await RawClient.connect(n2.wsUrl, { sessionId, subscriptions: [CH] });
      // Whatever was not accepted is sent again, then the rest.
      for (let i = accepted; i < PIECES; i++) {
        pub.send({ type: 'stream.append', channel: CH, payload: { streamId: 'k1', text: pieces[i] } });
        if (i % 25 === 24) await new Promise((r) => setTimeout(r, 10));
      }
      const end = await request(pub, 'stream.end', { streamId: 'k1', status: 'complete' });
      assert.equal(end.type, 'message.sent', JSON.stringify(end.payload));
      assert.equal(end.payload.seq, accepted + (PIECES - accepted));
      const full = pieces.join('');
      for (const c of [...subs, back]) {
        await waitFor(() => readStreams(c.frames, CH).get('k1')?.status === 'complete', 30_000, 'the end');
        const v = readStreams(c.frames, CH).get('k1')!;
        assert.equal(v.text, full);
        assert.equal(v.seq, PIECES);
      }
      for (const c of [...subs, back, pub, onVictim]) c.close();
    });
  },
);
