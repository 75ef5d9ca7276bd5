#!/usr/bin/env node
// `npm run dev`: the gateway from compiled JavaScript, rebuilt and restarted on every change, with no
// TypeScript loader in the serving process (the same code `npm start` runs):
//   tsc --watch (src/ -> dist/)  beside  node --watch dist/cli/main.js serve (restarts when dist/ changes).
// Arguments after `--` go to `apix serve` (e.g. npm run dev -- --port 9000).
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

// One full build first: assets, the protocol package and the browser bundles are not watched.
const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);

const children = [
  spawn(
    process.execPath,
    [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--watch', '--preserveWatchOutput'],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  ),
  spawn(
    process.execPath,
    [
      '--watch-path',
      join(ROOT, 'dist'),
      join(ROOT, 'dist', 'cli', 'main.js'),
      'serve',
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit' },
  ),
];
const stop = () => {
  for (const child of children) child.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
for (const child of children)
  child.on('exit', (code) => {
    stop();
    process.exitCode = code ?? 0;
  });
