#!/usr/bin/env node
// `npm run build` (also run by `npm ci` through `prepare`): compiles the gateway to dist/ and builds the
// browser assets it serves, so that `npm start` runs plain JavaScript with no TypeScript loader.
//   0. tsc -p packages/protocol/...        @apix/protocol -> packages/protocol/dist (JS + declarations), which
//                                          the compiled gateway imports by name at run time
//   1. tsc -p tsconfig.build.json          src/**/*.ts -> dist/**/*.js (imports rewritten to .js)
//   2. the files src/ reads at run time    Lua scripts, the PGlite worker, the dashboard's page and script
//   3. esbuild                             dist/public/sdk/apix.js (the SDK for browsers), its MessagePack codec
//                                          (apix-msgpack.js, loaded on demand) and the feed example
//   4. packages/sdk/dist                   the publishable SDK (packages/sdk/scripts/build.mjs), which
//                                          `@apix/sdk` resolves to in this workspace
//   5. the embedded database's template    dist/pglite-template/<key>/pgdata: a migrated empty PGlite database
//                                          that a node's first start copies instead of running initdb (seconds);
//                                          made again only when PGlite or the migrations change
// Usage: node scripts/build.mjs [--skip-tsc] [--skip-template]
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const skipTsc = process.argv.includes('--skip-tsc');
const started = Date.now();
const step = (text) =>
  process.stderr.write(`build: ${text} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);

function tsc(project, what) {
  step(`compiling ${what} with tsc`);
  const bin = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [bin, '-p', join(ROOT, project)], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write('build: tsc failed\n');
    process.exit(r.status ?? 1);
  }
}
if (!skipTsc) {
  tsc('packages/protocol/tsconfig.build.json', 'packages/protocol/');
  tsc('tsconfig.build.json', 'src/');
}

// Files the compiled code opens beside itself (new URL('./x', import.meta.url)).
const ASSET = /\.(lua|mjs|html|css|js)$/;
function copyAssets(dir) {
  for (const name of readdirSync(dir)) {
    const from = join(dir, name);
    if (statSync(from).isDirectory()) {
      if (name !== 'generated') copyAssets(from);
      continue;
    }
    if (!ASSET.test(name)) continue;
    const to = join(DIST, relative(join(ROOT, 'src'), from));
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to);
  }
}
step('copying run-time assets');
copyAssets(join(ROOT, 'src'));

step('bundling the browser SDK and the feed example');
let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  process.stderr.write('build: esbuild is not installed (a dev dependency): run npm ci\n');
  process.exit(1);
}
const PUBLIC = join(DIST, 'public');
rmSync(PUBLIC, { recursive: true, force: true });
// The same options the gateway uses when it runs from src/ (tests, `npm run dev`) and bundles on demand.
const { sdkBundleOptions, sdkMsgpackOptions, feedScriptOptions } = await import(
  join(DIST, 'http', 'browser-assets.js')
);
await esbuild.build({ ...sdkBundleOptions(ROOT), outfile: join(PUBLIC, 'sdk', 'apix.js') });
await esbuild.build({ ...sdkMsgpackOptions(ROOT), outfile: join(PUBLIC, 'sdk', 'apix-msgpack.js') });
await esbuild.build({ ...feedScriptOptions(ROOT), outfile: join(PUBLIC, 'examples', 'feed', 'feed.js') });
for (const file of ['index.html', 'feed.css'])
  cpSync(join(ROOT, 'examples', 'feed', file), join(PUBLIC, 'examples', 'feed', file));

// 4. The publishable SDK (packages/sdk/dist): what `import '@apix/sdk'` resolves to in this checkout's
// workspace (docs/quickstart.md's agent runs from here), the same files `npm pack` ships.
step('the SDK package (packages/sdk/dist)');
{
  const r = spawnSync(process.execPath, [join(ROOT, 'packages', 'sdk', 'scripts', 'build.mjs')], {
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!process.argv.includes('--skip-template')) {
  step('the embedded database template (made once per PGlite version and set of migrations)');
  const { buildEmbeddedTemplate, TEMPLATE_SLIMMING_SQL } = await import(
    join(DIST, 'store', 'embedded-template.js')
  );
  const { createDatabase } = await import(join(DIST, 'store', 'database.js'));
  const { migrate } = await import(join(DIST, 'store', 'migrate.js'));
  const made = await buildEmbeddedTemplate(async (dataDir) => {
    const db = await createDatabase({ dataDir, embeddedFromTemplate: false });
    try {
      await migrate(db);
      await db.withRawSession(async (session) => {
        for (const sql of TEMPLATE_SLIMMING_SQL) await session.exec(sql);
      });
    } finally {
      await db.close();
    }
  });
  step(`${made.built ? 'made' : 'kept'} ${relative(ROOT, made.path)}`);
}
step('done: dist/');
