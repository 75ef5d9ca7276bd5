#!/usr/bin/env node
// Builds the publishable @apix/sdk (run by `npm run build -w @apix/sdk` and by `npm pack`'s prepack):
//   dist/index.js, dist/ag-ui.js,  esbuild, ESM, @apix/protocol bundled in (it is a private workspace
//   dist/react.js                  package); their shared code in one chunk, so that `@apix/sdk/react`
//                                  and `@apix/sdk` share one ApiXClient class. `react` stays an import.
//   dist/types/                    tsc declarations of the SDK and of the protocol modules it uses;
//                                  `@apix/protocol/x` rewritten to the copy beside them, so that the
//                                  installed package needs nothing from this repository (only zod, for
//                                  the wire types inferred from the protocol's schemas).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const PKG = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(PKG, 'dist');
const require = createRequire(import.meta.url);

rmSync(DIST, { recursive: true, force: true });

const { build } = await import('esbuild');
await build({
  absWorkingDir: PKG,
  entryPoints: ['src/index.ts', 'src/ag-ui.ts', 'src/react.ts'],
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'neutral',
  // @msgpack/msgpack has no `exports` map: a neutral build needs its `module` field.
  mainFields: ['module', 'main'],
  target: 'es2022',
  sourcemap: true,
  legalComments: 'none',
  external: ['react'],
  chunkNames: 'chunks/[name]-[hash]',
  outdir: DIST,
  logLevel: 'warning',
});

const tsc = require.resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(PKG, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

/** Every .d.ts under `dir`. */
function declarations(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return declarations(path);
    return name.endsWith('.d.ts') ? [path] : [];
  });
}

const TYPES = join(DIST, 'types');
const PROTOCOL_TYPES = join(TYPES, 'protocol', 'src');
for (const file of declarations(TYPES)) {
  const toProtocol = relative(dirname(file), PROTOCOL_TYPES).split('\\').join('/');
  const text = readFileSync(file, 'utf8')
    // The protocol by name -> its declarations in this package.
    .replace(/(from |import\()'@apix\/protocol(?:\/([\w-]+))?'/g, (_m, head, mod) => {
      return `${head}'${toProtocol.startsWith('.') ? '' : './'}${toProtocol}/${mod ?? 'index'}.js'`;
    })
    // Sources import `./x.ts` (allowImportingTsExtensions); published declarations name `./x.js`.
    .replace(/(from |import\()'(\.{1,2}\/[^']+)\.ts'/g, "$1'$2.js'");
  if (/@apix\/protocol/.test(text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '')))
    throw new Error(`${file} still imports @apix/protocol`);
  writeFileSync(file, text);
}
process.stderr.write(`@apix/sdk: built ${relative(process.cwd(), DIST) || 'dist'}\n`);
