/**
 * A platform backend for APIX, written from docs/backend.md: it
 * - receives the gateway's webhooks and verifies their signature (X-Apix-Signature, the endpoint's secret),
 *   deduplicating by event id;
 * - answers the proxy calls (connect, subscribe, publish) by its own rules;
 * - serves RPC methods: `tool.approve` as a service connection (the SDK), `billing.total` over HTTP
 *   (APIX_RPC_PROXY_URL).
 * Node's standard library for all of the HTTP side; the SDK (and `ws`, Node 20 has no WebSocket client)
 * for the service connection. What it sees goes to stdout, one JSON object a line.
 *
 *   npm start   (with the APIX_PROXY_* and APIX_RPC_PROXY_URL settings of examples/backend/README.md)
 *   APIX_TOKEN=$(npx apix token --sub backend --org acme --roles service) \
 *     APIX_PROXY_SECRET=… node --import tsx examples/backend/backend.mjs
 *
 * Env: PORT (9000), APIX_URL (http://127.0.0.1:8080), APIX_TOKEN (service credentials: a JWT with the
 * `service` role, or an API key), APIX_PROXY_SECRET (the gateway's), BACKEND_URL (how the gateway reaches
 * this server; http://127.0.0.1:PORT).
 */
/* global fetch */
import { Buffer } from 'node:buffer';
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebSocket } from 'ws';
// Outside this repository: import { ApiXClient, ApiXError } from '@apix/sdk';
import { ApiXClient, ApiXError } from '../../packages/sdk/src/index.ts';

const port = Number(process.env.PORT ?? 9000);
const gateway = process.env.APIX_URL ?? 'http://127.0.0.1:8080';
const token = process.env.APIX_TOKEN;
const proxySecret = process.env.APIX_PROXY_SECRET;
const self = process.env.BACKEND_URL ?? `http://127.0.0.1:${port}`;
if (!token || !proxySecret) {
  console.error('set APIX_TOKEN (service credentials) and APIX_PROXY_SECRET');
  process.exit(2);
}

const say = (what) => console.log(JSON.stringify(what));

/** docs/backend.md: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, within 5 minutes. */
function verified(secret, header, body) {
  const parts = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=', 2)));
  const t = Number(parts.t);
  if (!secret || !Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(parts.v1 ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ---- Webhooks ------------------------------------------------------------------------------------------
let webhookSecret; // shown once, when the endpoint is added (below)
const seen = new Set(); // event ids handled (a retried batch carries the same ids); a database in production

function onWebhooks(body) {
  for (const event of JSON.parse(body).events) {
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    say({
      webhook: { id: event.id, type: event.type, organizationId: event.organizationId, data: event.data },
    });
  }
}

// ---- Proxy calls ---------------------------------------------------------------------------------------
const allow = (changes = {}) => ({ result: changes });
const refuse = (code, message) => ({ error: { code, message } });

function decide(call) {
  // connect, subscribe and publish name the user in `principal`; an RPC call in `caller`.
  const user = (call.principal ?? call.caller).userId;
  switch (call.kind) {
    case 'connect':
      // A closed account may not connect; the others get their plan as connection.established.data.
      return user === 'closed-account'
        ? refuse('FORBIDDEN', 'account closed')
        : allow({ data: { plan: 'pro' } });
    case 'subscribe':
      // A user follows only the agent named after them (agent:<userId>); services follow any.
      if (
        call.channel.startsWith('agent:') &&
        !call.principal.roles.includes('service') &&
        call.channel !== `agent:${user}`
      )
        return refuse('FORBIDDEN', 'not your agent');
      return allow();
    case 'publish':
      if (JSON.stringify(call.payload ?? null).includes('spam')) return refuse('BAD_REQUEST', 'no spam here');
      // Allowed, with the payload marked as checked (result.data replaces it).
      return allow(
        call.payload && typeof call.payload === 'object' ? { data: { ...call.payload, checked: true } } : {},
      );
    case 'rpc':
      // Methods no connected service registered come here (APIX_RPC_PROXY_URL).
      if (call.method === 'billing.total') return allow({ total: 42, for: user });
      return refuse('NOT_FOUND', `no method ${call.method}`);
    default:
      return refuse('BAD_REQUEST', `unknown kind ${call.kind}`);
  }
}

function onProxy(body) {
  const call = JSON.parse(body);
  let answer = decide(call);
  // The RPC fallback's allowed answer is `{result: <any JSON>}`: the method's result itself.
  if (call.kind === 'rpc' && answer.result) answer = { result: answer.result };
  say({
    proxy: {
      kind: call.kind,
      userId: (call.principal ?? call.caller).userId,
      target: call.channel ?? call.method,
      answer,
    },
  });
  return answer;
}

createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const send = (status, json) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(json === undefined ? undefined : JSON.stringify(json));
    };
    const header = req.headers['x-apix-signature'];
    if (req.method !== 'POST') return send(405, { error: { code: 'BAD_REQUEST', message: 'POST only' } });
    if (req.url === '/webhooks') {
      if (!verified(webhookSecret, header, body)) {
        say({ rejected: 'webhook signature' });
        return send(401);
      }
      onWebhooks(body);
      return send(204); // quickly: slow work goes to a queue of your own
    }
    if (!verified(proxySecret, header, body)) {
      say({ rejected: 'proxy signature' });
      return send(401, { error: { code: 'UNAUTHORIZED', message: 'bad signature' } });
    }
    send(200, onProxy(body));
  });
}).listen(port, '127.0.0.1', () => say({ listening: port }));

// ---- The webhook endpoint: added once at start (docs: POST /v1/admin/webhooks; the secret is shown once) --
async function addEndpoint() {
  const res = await fetch(`${gateway}/v1/admin/webhooks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      url: `${self}/webhooks`,
      events: [
        'connection.opened',
        'connection.closed',
        'subscription.added',
        'channel.occupied',
        'channel.vacated',
      ],
    }),
  });
  const made = await res.json();
  if (res.status !== 201)
    throw new Error(`adding the webhook endpoint: ${res.status} ${JSON.stringify(made)}`);
  webhookSecret = made.secret;
  say({ webhookEndpoint: made.id });
}

// ---- RPC: a service connection ---------------------------------------------------------------------------
const decided = new Set();
const service = new ApiXClient({ url: gateway, token, clientType: 'INTERNAL_SERVICE', WebSocket });
service.on('error', (err) => say({ serviceError: `${err.code} ${err.message}` }));
service.handle('tool.approve', async (payload, caller) => {
  const { toolCallId } = payload ?? {};
  if (typeof toolCallId !== 'string') throw new ApiXError('BAD_REQUEST', 'toolCallId is required');
  if (decided.has(toolCallId)) throw new ApiXError('CONFLICT', 'already decided');
  decided.add(toolCallId);
  say({ rpc: { method: 'tool.approve', toolCallId, by: caller.userId } });
  return { approved: true, toolCallId, by: caller.userId };
});

await addEndpoint();
await service.connect();
say({ ready: true });

const stop = () => void service.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
