/**
 * deploy/grafana/apix-dashboard.json and deploy/prometheus/alerts.yml name only metrics that a running
 * node exposes on /metrics: a renamed metric would leave a panel empty and an alert silent, with nothing
 * to say so. The node serves traffic first (acknowledged delivery), so the histograms have samples.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { startNode, token } from '../../support/gateway.ts';
import { waitFor } from '../../support/wait.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { ApiXClient } from '../../../packages/sdk/src/index.ts';

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));
/** Series Prometheus makes itself (scrape health), not the node. */
const PROMETHEUS_OWN = new Set(['up']);
const PROMQL_WORDS = new Set(
  `by without on ignoring group_left group_right bool and or unless offset sum min max avg count stddev
  stdvar topk bottomk quantile count_values rate irate increase delta idelta deriv histogram_quantile abs
  absent clamp_max clamp_min label_replace label_values vector scalar time le inf nan`.split(/\s+/),
);

/** The metric names a PromQL expression reads. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/label_values\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)/g, '$1'); // Grafana's variable query
  const names = [...stripped.matchAll(/(?<![\w$.:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)].map((m) => m[1]!);
  return names.filter((n) => !PROMQL_WORDS.has(n.toLowerCase()));
}

function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(`${DEPLOY}grafana/apix-dashboard.json`, 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    templating: { list: Array<{ query?: unknown }> };
  };
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  for (const v of dashboard.templating.list)
    if (typeof v.query === 'object' && v.query) exprs.push((v.query as { query: string }).query);
  return exprs;
}

function alertExpressions(): string[] {
  const text = readFileSync(`${DEPLOY}prometheus/alerts.yml`, 'utf8');
  return [...text.matchAll(/^\s+expr:\s*(.+)$/gm)].map((m) => m[1]!.trim());
}

/** name -> type, from the `# TYPE` lines; and the names that have samples. */
function exposition(text: string): { types: Map<string, string>; sampled: Set<string> } {
  const types = new Map<string, string>();
  const sampled = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    else if (line && !line.startsWith('#')) sampled.add(/^[^{\s]+/.exec(line)![0]);
  }
  return { types, sampled };
}

describe('the Grafana dashboard and the alert rules', () => {
  let node: ApiXNode;
  let metrics = '';
  before(async () => {
    node = await startNode();
    const client = new ApiXClient({
      url: node.wsUrl,
      token: await token({ sub: 'svc', roles: ['service'] }),
      clientType: 'INTERNAL_SERVICE',
      WebSocket,
      heartbeat: false,
    });
    await client.connect();
    const seen: string[] = [];
    const sub = client.subscribe('agent:a1', { ack: 'auto' });
    sub.on('*', (e) => void seen.push(e.id));
    await sub.ready;
    await client.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'thinking' });
    await waitFor(() => seen.length === 1, 10_000, 'the delivery');
    // The ack travels after the handler: wait until the node observed it.
    await waitFor(
      async () =>
        (await (await fetch(`${node.httpUrl}/metrics`)).text()).includes(
          'apix_publish_to_ack_seconds_count{',
        ),
      10_000,
      'the ack',
    );
    await client.close();
    metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
  });
  after(() => node.close());

  it('reads metric names out of PromQL', () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.99, sum by (node, le) (rate(apix_x_bucket{node=~"$node"}[$__rate_interval]))) > 0.5',
      ),
      ['apix_x_bucket'],
    );
    assert.deepEqual(metricNames('label_values(apix_connections, node)'), ['apix_connections']);
    assert.deepEqual(metricNames('up{job="apix"} == 0 or absent(nodejs_a)'), ['up', 'nodejs_a']);
  });

  for (const [what, read] of [
    ['deploy/grafana/apix-dashboard.json', dashboardExpressions],
    ['deploy/prometheus/alerts.yml', alertExpressions],
  ] as const) {
    it(`${what}: every metric it names is on /metrics`, () => {
      const { types, sampled } = exposition(metrics);
      const exprs = read();
      assert.ok(exprs.length >= 5, `${what}: ${exprs.length} expressions`);
      const missing: string[] = [];
      for (const expr of exprs) {
        const names = metricNames(expr);
        assert.ok(names.length > 0, `${what}: no metric in ${expr}`);
        for (const name of names) {
          if (PROMETHEUS_OWN.has(name) || types.has(name)) continue;
          const base = /^(.+)_(bucket|sum|count)$/.exec(name)?.[1];
          if (base && types.get(base) === 'histogram' && sampled.has(name)) continue;
          missing.push(name);
        }
      }
      assert.deepEqual(missing, [], `${what} names metrics that /metrics does not expose`);
    });
  }
});
