/**
 * How the browser assets the gateway serves are bundled: the SDK as one ESM file (`GET /sdk/apix.js`)
 * and the feed example's script. `npm run build` (scripts/build.mjs) writes them to dist/public/ with
 * these options; a gateway running from src/ (tests, `npm run dev`) bundles them on first request with
 * the same ones (src/http/examples.ts).
 */
import type { BuildOptions } from 'esbuild';

/** The SDK bundle: plain ESM, no imports, for browsers (see packages/sdk/tests/bundle.test.ts). */
export function sdkBundleOptions(root: string): BuildOptions {
  return {
    entryPoints: [`${root}/packages/sdk/src/index.ts`],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    // @msgpack/msgpack has no `exports` map: a neutral build needs its `module` field.
    mainFields: ['module', 'main'],
    target: 'es2022',
    logLevel: 'silent',
    legalComments: 'none',
    plugins: [
      {
        // The MessagePack codec (the SDK imports it dynamically, for `encoding: 'msgpack'` only) stays a
        // file of its own beside the SDK (sdkMsgpackOptions): a JSON client never downloads it.
        name: 'msgpack-beside-sdk',
        setup(b) {
          b.onResolve({ filter: /^@apix\/protocol\/msgpack$/ }, (args) =>
            args.kind === 'dynamic-import' ? { path: './apix-msgpack.js', external: true } : undefined,
          );
        },
      },
    ],
  };
}

/** `sdk/apix-msgpack.js`: the MessagePack codec the SDK bundle loads when a client asks for it. */
export function sdkMsgpackOptions(root: string): BuildOptions {
  return {
    entryPoints: [`${root}/packages/protocol/src/msgpack.ts`],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    logLevel: 'silent',
    legalComments: 'none',
  };
}

/** The feed's script: feed.ts transpiled; its import of the SDK source becomes `../../sdk/apix.js`. */
export function feedScriptOptions(root: string): BuildOptions {
  return {
    entryPoints: [`${root}/examples/feed/feed.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
    plugins: [
      {
        name: 'sdk-from-gateway',
        setup(b) {
          b.onResolve({ filter: /packages\/sdk\/src\/index\.ts$/ }, () => ({
            path: '../../sdk/apix.js',
            external: true,
          }));
        },
      },
    ],
  };
}
