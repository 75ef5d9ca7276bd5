#!/usr/bin/env node
// The whole suite: static checks, then every test file under tests/ through node's test runner.
// Usage: node scripts/test.mjs [unit|contracts|integration|e2e|<path filter>] [--no-static] [--no-build]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const args = process.argv.slice(2);
const noStatic = args.includes('--no-static') || args.length > 0;
const noBuild = args.includes('--no-build');
const filters = args.filter((a) => !a.startsWith('--'));

function run(title, cmd, cmdArgs) {
  const started = Date.now();
  process.stdout.write(`\n== ${title}\n`);
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit', env: process.env });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status !== 0) {
    process.stdout.write(`== ${title}: FAILED (${secs}s)\n`);
    process.exit(r.status ?? 1);
  }
  process.stdout.write(`== ${title}: ok (${secs}s)\n`);
}

function listTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTests(p));
    else if (/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

if (!noStatic) {
  run('typecheck', 'npx', ['tsc', '--noEmit', '-p', 'tsconfig.json']);
  run('lint', 'npx', ['eslint', '.']);
  run('format', 'npx', ['prettier', '--check', '.', '--log-level', 'warn']);
  run('import cycles', 'npx', [
    'dpdm',
    '--no-warning',
    '--no-tree',
    '--exit-code',
    'circular:1',
    // Type-only imports count (no --transform); the generated Prisma client is not ours to untangle.
    '--exclude',
    'node_modules|src/generated/',
    'src/**/*.ts',
  ]);
}

// The tests that start `apix serve` as a process run the compiled dist/ (what `npm start` runs): bring it
// up to date first (incremental: a few seconds when nothing changed).
if (!noBuild) run('build', process.execPath, ['scripts/build.mjs']);

const roots = ['tests', 'packages/sdk/tests'].filter((d) => {
  try {
    return statSync(d).isDirectory();
  } catch {
    return false;
  }
});
let files = roots.flatMap(listTests).sort();
if (filters.length) files = files.filter((f) => filters.some((flt) => relative('.', f).includes(flt)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
run(`tests (${files.length} files)`, process.execPath, [
  '--import',
  'tsx',
  '--test',
  '--test-concurrency=2',
  '--test-reporter=spec',
  ...files,
]);
