/**
 * Prints the figures of a soak result (bench/results/soak-<nodes>.json, written by bench/soak.ts) as a
 * Markdown table: each metric before the first client, at the first sample after warm-up, the middle, the
 * end of the load and after the drain; with several nodes, one value per node ("n0 / n1 / n2").
 *
 *   node --import tsx bench/tools/soak-table.ts bench/results/soak-3.json
 */
import { readFileSync } from 'node:fs';

interface NodeSample {
  heapUsed: number;
  rss: number;
  handles: number;
  counters: Record<string, number>;
  sizes: Record<string, number>;
}
interface Sample {
  t: number;
  phase: string;
  nodes: NodeSample[];
  redis?: { usedMemory: number; keys: number };
}

const file = process.argv[2];
if (!file) throw new Error('usage: soak-table.ts <bench/results/soak-N.json>');
const r = JSON.parse(readFileSync(file, 'utf8')) as {
  options: { minutes: number; nodes: number };
  samples: Sample[];
  verdict: { flat: boolean; drained: boolean };
};
const load = r.samples.filter((s) => s.phase === 'load');
const drain = r.samples.filter((s) => s.phase === 'drain');
const cols: Array<[string, Sample]> = [
  ['before load', r.samples.find((s) => s.phase === 'idle')!],
  ['warm-up', load[0]!],
  ['middle', load[Math.floor(load.length / 2)]!],
  ['end', load.at(-1)!],
  ['after drain', drain.at(-1)!],
];
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const rows: Array<[string, (n: NodeSample) => string]> = [
  ['heap used after GC (MB)', (n) => mb(n.heapUsed)],
  ['RSS (MB)', (n) => mb(n.rss)],
  ['open handles', (n) => String(n.handles)],
  ['connections', (n) => String(n.counters.connections ?? 0)],
  ['sessions (away)', (n) => `${n.counters.sessions ?? 0} (${n.counters.awaySessions ?? 0})`],
  ['subscriptions', (n) => String(n.counters.subscriptions ?? 0)],
  ['channels with subscribers', (n) => String(n.counters.channels ?? 0)],
  ['in flight (unacked)', (n) => String(n.counters.inflight ?? 0)],
  ['offline-queued events', (n) => String(n.counters.offlineQueued ?? 0)],
];
const sized = (label: string, path: string) =>
  rows.push([label, (n) => (n.sizes[path] === undefined ? '-' : String(n.sizes[path]))]);
sized('connection caps: addresses / users', 'gateway.perAddress');
rows.push(['connection caps: users', (n) => String(n.sizes['gateway.perUser'] ?? '-')]);
sized('rate-limit buckets (memory store)', 'engines.rateLimits.buckets');
sized('rate-limit leases (Redis store)', 'engines.rateLimits.leases');
sized('presence: rooms with local members', 'engines.presence.local');
sized('session store (memory)', 'engines.sessionStore.sessions');
sized('history channels (memory)', 'engines.broker.bus.history.channels');
sized('idempotency keys (memory)', 'engines.broker.bus.idempotency.seen');
sized('latency tracker: connections', 'operator.tracker.connections');
rows.splice(
  rows.findIndex(([l]) => l === 'connection caps: addresses / users'),
  1,
  ['connection caps: addresses', (n) => String(n.sizes['gateway.perAddress'] ?? '-')],
);

const out: string[] = [];
out.push(
  `| ${r.options.nodes === 1 ? '1 node' : `${r.options.nodes} nodes (n0 / n1 / n2)`} | ${cols.map(([n, s]) => `${n} (${Math.round(s.t / 60)} min)`).join(' | ')} |`,
);
out.push(`|---|${cols.map(() => '---|').join('')}`);
for (const [label, f] of rows) {
  const cells = cols.map(([, s]) => s.nodes.map(f).join(' / '));
  if (cells.every((c) => /^[-/ ]+$/.test(c))) continue;
  out.push(`| ${label} | ${cells.join(' | ')} |`);
}
if (cols.every(([, s]) => s.redis))
  out.push(
    `| Redis used_memory (MB) / keys | ${cols.map(([, s]) => `${mb(s.redis!.usedMemory)} / ${s.redis!.keys}`).join(' | ')} |`,
  );
process.stdout.write(`${out.join('\n')}\n`);
