/**
 * Browser assets served by the gateway itself, so that a clean clone shows something live with
 * `npm ci && npm start` and no build step:
 *
 * - `GET /sdk/apix.js`: the client SDK (`packages/sdk`) as one ESM file, bundled by esbuild on the first
 *   request and cached for the life of the process (the same options as `npm run build -w @apix/sdk`).
 * - `GET /examples/feed/`: the live activity feed example (`examples/feed/`): its page, stylesheet, and
 *   script (`feed.ts`, transpiled on first request; its SDK import is left to `/sdk/apix.js`).
 *
 * Every response is static (nothing depends on the request), carries an ETag, and the page ships a
 * Content-Security-Policy without inline scripts or styles. esbuild comes with `tsx`, a dependency.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import type * as Esbuild from 'esbuild';
import { ApixError } from '../protocol/index.ts';
import type { HttpContext, HttpRouter } from './router.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SDK_ENTRY = `${ROOT}packages/sdk/src/index.ts`;
const FEED_DIR = `${ROOT}examples/feed/`;

/** The page's CSP: scripts and styles from this origin only; WebSockets to any gateway the user names. */
export const FEED_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self' ws: wss:",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

function asset(text: string, contentType: string): Asset {
  const body = Buffer.from(text, 'utf8');
  return {
    body,
    contentType,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
  };
}

/** Runs `build` once; a failure is not cached, so the next request tries again. */
function once(build: () => Promise<Asset>): () => Promise<Asset> {
  let pending: Promise<Asset> | undefined;
  return () => {
    pending ??= build().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

async function esbuild(): Promise<typeof Esbuild> {
  try {
    return await import('esbuild');
  } catch {
    throw new ApixError('UNAVAILABLE', 'esbuild is not installed; run npm ci');
  }
}

/** The SDK bundle: plain ESM, no imports, for browsers (see packages/sdk/tests/bundle.test.ts). */
async function buildSdkBundle(): Promise<Asset> {
  const { build } = await esbuild();
  const result = await build({
    entryPoints: [SDK_ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    legalComments: 'none',
  });
  return asset(result.outputFiles[0]?.text ?? '', 'text/javascript; charset=utf-8');
}

/** The feed's script: feed.ts transpiled; its import of the SDK source becomes `../../sdk/apix.js`. */
async function buildFeedScript(): Promise<Asset> {
  const { build } = await esbuild();
  const result = await build({
    entryPoints: [`${FEED_DIR}feed.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
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
  });
  return asset(result.outputFiles[0]?.text ?? '', 'text/javascript; charset=utf-8');
}

async function readAsset(path: string, contentType: string): Promise<Asset> {
  return asset(await readFile(path, 'utf8'), contentType);
}

function send(ctx: HttpContext, a: Asset, headers: Record<string, string> = {}): void {
  const { req, res } = ctx;
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('ETag', a.etag);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': a.contentType, 'Content-Length': a.body.length });
  res.end(req.method === 'HEAD' ? undefined : a.body);
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(308, { Location: location }).end();
}

/** `GET /sdk/apix.js`: the browser SDK bundle. */
export function registerSdkBundle(http: HttpRouter): void {
  const sdk = once(buildSdkBundle);
  http.add('GET', /^\/sdk\/apix\.js$/, async (ctx) => send(ctx, await sdk()));
}

/** `GET /examples/feed/` and its assets (the page reads its files on first request, then caches them). */
export function registerFeedExample(http: HttpRouter): void {
  const page = once(() => readAsset(`${FEED_DIR}index.html`, 'text/html; charset=utf-8'));
  const style = once(() => readAsset(`${FEED_DIR}feed.css`, 'text/css; charset=utf-8'));
  const script = once(buildFeedScript);
  http.add('GET', /^\/examples\/feed$/, ({ res }) => redirect(res, 'feed/'));
  http.add('GET', /^\/examples\/feed\/(?:index\.html)?$/, async (ctx) =>
    send(ctx, await page(), { 'Content-Security-Policy': FEED_CSP }),
  );
  http.add('GET', /^\/examples\/feed\/feed\.css$/, async (ctx) => send(ctx, await style()));
  http.add('GET', /^\/examples\/feed\/feed\.js$/, async (ctx) => send(ctx, await script()));
}
