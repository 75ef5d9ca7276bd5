/**
 * Browser assets served by the gateway itself, so that a clean clone shows something live with
 * `npm ci && npm start`:
 *
 * - `GET /sdk/apix.js`: the client SDK (`packages/sdk`) as one ESM file, and `GET /sdk/apix-msgpack.js`,
 *   the MessagePack codec it imports (dynamically, beside itself) for `encoding: 'msgpack'` only.
 * - `GET /examples/feed/`: the live activity feed example (`examples/feed/`): its page, stylesheet and
 *   script (its SDK import is left to `/sdk/apix.js`).
 *
 * The compiled gateway (dist/) serves what `npm run build` bundled into dist/public/. Run from its
 * TypeScript sources (tests, `npm run dev`), it bundles them on first request with esbuild, a dev
 * dependency, and the same options (src/http/browser-assets.ts). Every response is static, carries an
 * ETag, and the page ships a Content-Security-Policy without inline scripts or styles.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import type * as Esbuild from 'esbuild';
import type { BuildOptions } from 'esbuild';
import { ApiXError } from '@apix/protocol';
import type { HttpContext, HttpRouter } from './router.ts';
import { feedScriptOptions, sdkBundleOptions, sdkMsgpackOptions } from './browser-assets.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Whether this module runs compiled (dist/http/examples.js): the assets were built beside it. */
const COMPILED = import.meta.url.endsWith('.js');
/** What `npm run build` wrote: dist/public/. */
const BUILT = fileURLToPath(new URL('../public/', import.meta.url));
/** The feed's page and stylesheet: copied into dist/public/ by the build (the Docker image holds only dist/). */
const FEED_DIR = COMPILED ? `${BUILT}examples/feed/` : `${ROOT}examples/feed/`;

/**
 * The page's CSP: scripts and styles from this origin only; WebSockets (and HTTP streaming or SSE, the
 * fallbacks) to any gateway the user names.
 */
export const FEED_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self' ws: wss: http: https:",
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

const JS = 'text/javascript; charset=utf-8';

/** A script: the built file when compiled, else bundled now from the sources. */
async function script(builtPath: string, options: BuildOptions): Promise<Asset> {
  if (COMPILED) return readAsset(`${BUILT}${builtPath}`, JS);
  let esbuild: typeof Esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new ApiXError('UNAVAILABLE', 'esbuild is not installed; run npm ci (or serve the built dist/)');
  }
  const result = await esbuild.build({ ...options, write: false });
  return asset(result.outputFiles?.[0]?.text ?? '', JS);
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

/** `GET /sdk/apix.js`: the browser SDK bundle; `GET /sdk/apix-msgpack.js`: its MessagePack codec. */
export function registerSdkBundle(http: HttpRouter): void {
  const sdk = once(() => script('sdk/apix.js', sdkBundleOptions(ROOT.slice(0, -1))));
  const msgpack = once(() => script('sdk/apix-msgpack.js', sdkMsgpackOptions(ROOT.slice(0, -1))));
  http.add('GET', /^\/sdk\/apix\.js$/, async (ctx) => send(ctx, await sdk()));
  http.add('GET', /^\/sdk\/apix-msgpack\.js$/, async (ctx) => send(ctx, await msgpack()));
}

/** `GET /examples/feed/` and its assets (the page reads its files on first request, then caches them). */
export function registerFeedExample(http: HttpRouter): void {
  const page = once(() => readAsset(`${FEED_DIR}index.html`, 'text/html; charset=utf-8'));
  const style = once(() => readAsset(`${FEED_DIR}feed.css`, 'text/css; charset=utf-8'));
  const feed = once(() => script('examples/feed/feed.js', feedScriptOptions(ROOT.slice(0, -1))));
  http.add('GET', /^\/examples\/feed$/, ({ res }) => redirect(res, 'feed/'));
  http.add('GET', /^\/examples\/feed\/(?:index\.html)?$/, async (ctx) =>
    send(ctx, await page(), { 'Content-Security-Policy': FEED_CSP }),
  );
  http.add('GET', /^\/examples\/feed\/feed\.css$/, async (ctx) => send(ctx, await style()));
  http.add('GET', /^\/examples\/feed\/feed\.js$/, async (ctx) => send(ctx, await feed()));
}
