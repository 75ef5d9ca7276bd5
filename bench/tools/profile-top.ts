/**
 * `node --import tsx bench/tools/profile-top.ts <file.cpuprofile> [--top N] [--filter TEXT] [--during FN]`: the
 * functions a V8 CPU profile (`npm run bench -- --cpu-prof DIR`) spends its time in, by self time and
 * by total time (self + callees), with the file and line each one lives at. Used for BENCHMARKS.md's
 * "where the time goes". `--during FN` keeps only the time between the first and the last sample with
 * function FN on the stack (e.g. `deliver` for the fan-out phase of a run, `handleUpgrade` for connects).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const argv = process.argv.slice(2);
const file = argv.find((a) => !a.startsWith('--'));
if (!file) {
  process.stderr.write('usage: profile-top.ts <file.cpuprofile> [--top N] [--filter TEXT]\n');
  process.exit(2);
}
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const top = Number(opt('top') ?? 25);
const filter = opt('filter');
const during = opt('during');

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const onStack = (id: number, fn: string): boolean => {
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur))
    if (byId.get(cur)!.callFrame.functionName === fn) return true;
  return false;
};
// The window of `--during`: sample indexes from the first to the last sample with FN on the stack.
let from = 0;
let to = profile.samples.length - 1;
if (during) {
  from = profile.samples.findIndex((id) => onStack(id, during));
  for (to = profile.samples.length - 1; to > from && !onStack(profile.samples[to]!, during); to--);
  if (from < 0) {
    process.stderr.write(`no sample has ${during} on its stack\n`);
    process.exit(1);
  }
}

// Time per sample: the delta that follows it (V8 records the gap before each sample).
const selfUs = new Map<number, number>();
for (let i = from; i <= to; i++) {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + dt);
}

const label = (n: ProfileNode): string => {
  const { functionName, url, lineNumber } = n.callFrame;
  const where = url ? `${relative(process.cwd(), url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
};

const self = new Map<string, number>();
const total = new Map<string, number>();
let all = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  const node = byId.get(id)!;
  all += us;
  if (node.callFrame.functionName === '(idle)') idle += us;
  const key = label(node);
  self.set(key, (self.get(key) ?? 0) + us);
  // Total time: once per distinct function on the stack (recursion counted once).
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = label(byId.get(cur)!);
    if (seen.has(k)) continue;
    seen.add(k);
    total.set(k, (total.get(k) ?? 0) + us);
  }
}

const busy = all - idle;
const pct = (us: number): string => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
const show = (title: string, m: Map<string, number>): void => {
  process.stdout.write(
    `\n${title} (of ${(busy / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle)\n`,
  );
  const rows = [...m]
    .filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(root)') && (!filter || k.includes(filter)))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
  for (const [k, us] of rows)
    process.stdout.write(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
};
process.stdout.on('error', () => process.exit(0)); // `| head`
show('self time', self);
show('total time', total);
