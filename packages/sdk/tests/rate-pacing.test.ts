/**
 * Issue 16, first part, against a real gateway node with its default rate limits (100 publishes/s per
 * connection, burst 200, 100 refusals in 10 s close with 4008): an agent service that publishes one event
 * per token must not lose tokens nor its client. The SDK paces its publishes by the `retryAfterMs` of
 * `RATE_LIMITED`, and a close for rate-limit abuse reconnects with backoff instead of ending the client.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import type { Config } from '../../../src/config.ts';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { ApiXClient, type ApiXEvent } from '../src/index.ts';
import { eventually } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function nodeUrl(overrides: Partial<Config> = {}): Promise<string> {
  const n = await startNode(overrides);
  cleanup.push(() => n.close());
  return `ws://127.0.0.1:${(n.server.address() as AddressInfo).port}`;
}

function client(url: string, sub: string, roles: string[]): ApiXClient {
  const c = new ApiXClient({
    url,
    tokenProvider: () => token({ sub, roles }),
    clientType: sub === 'agent' ? 'INTERNAL_SERVICE' : 'WEB_APP',
    WebSocket,
    reconnect: { baseMs: 50, maxMs: 200, factor: 2 },
    heartbeat: false,
  });
  cleanup.push(() => c.close());
  return c;
}

/** `answers` answers of `tokens` tokens each, published one event per token at `perSec` tokens/s each. */
async function streamTokensAsEvents(
  agent: ApiXClient,
  answers: number,
  tokens: number,
  perSec: number,
): Promise<PromiseSettledResult<unknown>[]> {
  const publishes: Array<Promise<unknown>> = [];
  for (let t = 0; t < tokens; t++) {
    for (let a = 0; a < answers; a++)
      publishes.push(
        agent.publish(`agent:a${a}`, 'agent_message', {
          agentId: `a${a}`,
          role: 'assistant',
          content: `t${t} `,
        }),
      );
    await new Promise((r) => setTimeout(r, 1000 / perSec));
  }
  return Promise.allSettled(publishes);
}

describe('SDK publish pacing under the gateway rate limits', () => {
  it('3 answers at once at 100 tokens/s, one publish per token: every token delivered, the client stays up', async () => {
    const url = await nodeUrl();
    const agent = client(url, 'agent', ['service']);
    const reader = client(url, 'reader', ['member']);
    await Promise.all([agent.connect(), reader.connect()]);
    const seen = new Map<string, string[]>();
    for (let a = 0; a < 3; a++) {
      const sub = reader.subscribe(`agent:a${a}`);
      sub.on('agent_message', (e: ApiXEvent) => {
        const list = seen.get(e.channel) ?? [];
        list.push((e.payload as { content: string }).content);
        seen.set(e.channel, list);
      });
      await sub.ready;
    }
    // Only the abuse close counts: on a busy CI machine a heartbeat can be missed and the link dropped
    // (1006/4000s other than 4008), which the client survives by resuming; that is not what this checks.
    let closes = 0;
    const closeCodes: Array<string | number> = [];
    agent.on('connection.disconnected', (e) => {
      closeCodes.push(e.serverCode ?? e.code);
      if (e.code === 4008 || e.serverCode === 'RATE_LIMITED') closes++;
    });
    const results = await streamTokensAsEvents(agent, 3, 200, 100);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 0, `refused: ${String((refused[0] as PromiseRejectedResult)?.reason)}`);
    assert.equal(agent.state, 'connected');
    // On an idle machine the pacing keeps it under the abuse close; on a busy one the refusals of the
    // publishes already in flight can reach it (the longer the round trip, the more in flight). Either
    // way nothing is lost and the client ends connected, which is what is asserted; the closes are noted.
    if (closes > 0) process.stdout.write(`# note: ${closes} abuse close(s): ${closeCodes.join(',')}\n`);
    await eventually(() => [...seen.values()].every((l) => l.length === 200) && seen.size === 3, 30_000);
    // Every token once. Not strictly in order: a publish refused and sent again may land after one that
    // was already on the wire when the refusal came back (docs/sdk.md, "Rate limits"); token output that
    // must keep its order is what streams are for (docs/streams.md).
    for (const list of seen.values())
      assert.deepEqual(
        [...list].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))),
        Array.from({ length: 200 }, (_, t) => `t${t} `),
        'each answer complete, each token once',
      );
  });

  it('a close for too many refusals (4008) reconnects with backoff, and the publishes go through', async () => {
    const base = (await import('../../../tests/support/gateway.ts')).config();
    const url = await nodeUrl({
      rateLimits: {
        ...base.rateLimits,
        publish: { perSec: 5, burst: 5 },
        abuse: { ...base.rateLimits.abuse, refusals: 2 },
      },
    });
    const agent = client(url, 'agent', ['service']);
    await agent.connect();
    const closes: number[] = [];
    agent.on('connection.disconnected', (e) => void closes.push(e.code));
    // 20 at once: 5 pass, the next refusals close the connection with 4008.
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        agent.publish('agent:a1', 'agent_message', { agentId: 'a1', role: 'assistant', content: `t${i}` }),
      ),
    );
    assert.ok(closes.includes(4008), `closes: ${closes.join(',')}`);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 0, `refused: ${String((refused[0] as PromiseRejectedResult)?.reason)}`);
    assert.notEqual(agent.state, 'closed');
    await eventually(() => agent.state === 'connected', 10_000);
  });
});
