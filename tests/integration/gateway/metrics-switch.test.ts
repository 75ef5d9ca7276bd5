/**
 * APIX_METRICS: with `false` the per-event instrumentation (publish, deliver and ack hooks of the
 * Prometheus metrics and the latency tracker) is left out; /metrics still answers with process metrics
 * and gauges. With `true` (the default) a delivery shows in the publish-to-deliver histogram.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startNode, token } from '../../support/gateway.ts';

/** The sample count of `apix_publish_to_deliver_seconds` (all labels), or undefined when not exported. */
function deliverSamples(text: string): number | undefined {
  const lines = text.split('\n').filter((l) => l.startsWith('apix_publish_to_deliver_seconds_count'));
  if (lines.length === 0) return undefined;
  return lines.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function deliverOnceAndScrape(metrics: boolean): Promise<string> {
  const node = await startNode({ metrics });
  try {
    const sub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'sub' }),
      subscriptions: ['agent:a1'],
    });
    const pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'pub', roles: ['service'] }),
    });
    const sent = await pub.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'running' });
    await sub.next((f) => f.id === sent.payload.id);
    const res = await fetch(`${node.httpUrl}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    sub.close();
    pub.close();
    return text;
  } finally {
    await node.close();
  }
}

describe('APIX_METRICS', () => {
  it('true (default): a delivery is a sample of the publish-to-deliver histogram', async () => {
    const text = await deliverOnceAndScrape(true);
    assert.ok((deliverSamples(text) ?? 0) >= 1, 'publish-to-deliver has a sample');
    assert.match(text, /^apix_deliveries_total\{[^}]*\} 1$/m);
    assert.match(text, /^apix_throughput_per_second\{/m);
  });

  it('false: no per-event samples, /metrics keeps process metrics and gauges', async () => {
    const text = await deliverOnceAndScrape(false);
    assert.equal(deliverSamples(text) ?? 0, 0, 'publish-to-deliver has no sample');
    assert.doesNotMatch(text, /^apix_deliveries_total/m);
    assert.doesNotMatch(text, /^apix_events_published_total/m);
    assert.doesNotMatch(text, /^apix_throughput_per_second/m);
    assert.match(text, /^process_cpu_user_seconds_total\{/m);
    assert.match(text, /^apix_connections\{[^}]*\} 2$/m);
  });
});
