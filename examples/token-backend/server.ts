/**
 * A token backend: the part of YOUR app's server that knows who is logged in and mints the short-lived
 * JWT a browser connects to APIX with (docs/quickstart.md, docs/security.md). The browser never sees the
 * secret; the gateway checks the token with the same one (`APIX_JWT_SECRET`).
 *
 *   APIX_JWT_SECRET=... [PORT=3000] [APIX_ORG=acme] [PAGE=index.html] node --import tsx examples/token-backend/server.ts
 *
 * - `GET /login?user=alice`: a stand-in for your app's login: sets a session cookie, then redirects to `/`.
 * - `GET /apix-token`: the logged-in user's APIX token (text/plain), 15 minutes long; 401 when nobody is
 *   logged in. Give it to the SDK as `tokenProvider`: it is called again before the token expires.
 * - `GET /`: the page `PAGE` (for the quick start's browser page).
 *
 * The claims: `sub` (the user), `org` (the organization), `exp`, and `roles`: optional, but give users
 * `member` (or `viewer` for read-only seats) so that channel rules naming roles match them.
 */
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';

const secret = process.env.APIX_JWT_SECRET;
if (!secret) throw new Error("set APIX_JWT_SECRET to the gateway's secret");
const key = new TextEncoder().encode(secret);
const port = Number(process.env.PORT ?? 3000);
const org = process.env.APIX_ORG ?? 'acme';
const page = process.env.PAGE ?? 'index.html';

/** Session id -> user. Your app has its own sessions; this map is the demo's (bounded). */
const sessions = new Map<string, string>();

function mintApixToken(user: string): Promise<string> {
  return new SignJWT({ org, roles: ['member'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime('15m')
    .sign(key);
}

function userOf(cookie: string | undefined): string | undefined {
  const id = /(?:^|;\s*)session=([\w-]+)/.exec(cookie ?? '')?.[1];
  return id === undefined ? undefined : sessions.get(id);
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/login') {
    const user = url.searchParams.get('user') ?? '';
    if (!/^[\w.-]{1,64}$/.test(user)) return void res.writeHead(400).end('user: 1-64 of [A-Za-z0-9_.-]\n');
    const id = randomBytes(16).toString('base64url');
    if (sessions.size >= 10_000) sessions.delete(sessions.keys().next().value!);
    sessions.set(id, user);
    res.writeHead(302, { location: '/', 'set-cookie': `session=${id}; HttpOnly; SameSite=Lax; Path=/` });
    return void res.end();
  }
  if (url.pathname === '/apix-token') {
    const user = userOf(req.headers.cookie);
    if (user === undefined) return void res.writeHead(401).end('log in first: /login?user=<name>\n');
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    return void res.end(await mintApixToken(user));
  }
  if (url.pathname === '/') {
    const html = await readFile(page).catch(() => undefined);
    if (html === undefined) return void res.writeHead(404).end(`no page at ${page}\n`);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return void res.end(html);
  }
  res.writeHead(404).end();
});
server.listen(port, () =>
  console.log(`token backend on http://localhost:${port} (org ${org}, page ${page})`),
);
