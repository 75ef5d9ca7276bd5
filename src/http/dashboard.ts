/**
 * Serves the admin dashboard (src/http/dashboard/: plain HTML, JS and CSS, no build step, no CDN) at
 * `/dashboard`, under a strict Content-Security-Policy: everything from this origin only, no inline
 * script or style, WebSocket connections to the gateway itself. The page holds no secret: it asks for an
 * admin token and sends it to the admin API and the WebSocket like any other client.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ApiXError } from '@apix/protocol';
import type { HttpRouter } from './router.ts';

export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'charts.js': 'text/javascript; charset=utf-8',
  'dead-letters.js': 'text/javascript; charset=utf-8',
  'webhooks.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

export const DASHBOARD_DIR = fileURLToPath(new URL('./dashboard/', import.meta.url));

export function registerDashboard(http: HttpRouter, dir = DASHBOARD_DIR): void {
  // Read once, on first request; the files are small and ship with the code.
  const cache = new Map<string, Promise<Buffer>>();
  const load = (name: string) => {
    let p = cache.get(name);
    if (p === undefined) {
      p = readFile(join(dir, name));
      p.catch(() => cache.delete(name));
      cache.set(name, p);
    }
    return p;
  };
  http.add('GET', /^\/dashboard\/?([A-Za-z0-9_.-]*)$/, async ({ req, res, params }) => {
    const name = params[0] || 'index.html';
    const type = Object.prototype.hasOwnProperty.call(FILES, name) ? FILES[name] : undefined;
    if (type === undefined) throw new ApiXError('NOT_FOUND', `no dashboard file ${name}`);
    const body = await load(name);
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Length': body.length,
      'Content-Security-Policy': DASHBOARD_CSP,
      'Cache-Control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}
