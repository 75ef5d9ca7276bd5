#!/usr/bin/env node
// Entry for the `apix` command: runs the compiled CLI (dist/, built by `npm run build`, which `npm ci`
// runs through `prepare`). A checkout that was never built is built once first.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('apix: dist/ is missing; building it first (npm run build)\n');
  const build = spawnSync(process.execPath, [new URL('../scripts/build.mjs', import.meta.url).pathname], {
    stdio: 'inherit',
  });
  if (build.status !== 0) process.exit(build.status ?? 1);
}
await import(main.href);
