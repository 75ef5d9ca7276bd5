/**
 * Security headers on every refusal (issue 13 item 9, docs/security.md "every HTTP response"): the answers
 * written on a raw socket, outside the HTTP router — a refused Origin, an unsupported subprotocol, an
 * upgrade ws itself refuses, an upgrade on another path, and Node's own 400/431/408 for malformed
 * requests (the server's `clientError`) — carry the same set as the API's answers (src/security-headers.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startNode } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { SECURITY_HEADERS } from '../../../src/security-headers.ts';
import { portOf, rawHttp, upgradeRequest } from './helpers.ts';
import type { HttpReply } from './helpers.ts';

function headersOf(r: HttpReply): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of r.head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) map.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return map;
}

function assertSecurityHeaders(r: HttpReply, what: string): void {
  const headers = headersOf(r);
  for (const [name, value] of Object.entries(SECURITY_HEADERS))
    assert.equal(headers.get(name.toLowerCase()), value, `${what}: ${name} in\n${r.head}`);
}

describe('attack: security headers on refusals', { concurrency: true }, () => {
  let node: ApiXNode;
  let port: number;
  before(async () => {
    node = await startNode(
      { allowedOrigins: ['https://app.example'] },
      { httpTimeouts: { headersTimeoutMs: 500, requestTimeoutMs: 1000, checkIntervalMs: 100 } },
    );
    port = portOf(node);
  });
  after(() => node.close());

  it('the set has the four headers of docs/security.md', () => {
    assert.deepEqual(Object.keys(SECURITY_HEADERS).sort(), [
      'Cross-Origin-Resource-Policy',
      'Referrer-Policy',
      'X-Content-Type-Options',
      'X-Frame-Options',
    ]);
  });

  it('403 for a refused Origin', async () => {
    const r = await rawHttp(port, upgradeRequest(port, { headers: { Origin: 'https://evil.example' } }));
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).code, 'FORBIDDEN');
    assertSecurityHeaders(r, 'origin');
  });

  it('400 for an unsupported subprotocol', async () => {
    const r = await rawHttp(port, upgradeRequest(port, { headers: { 'Sec-WebSocket-Protocol': 'chat' } }));
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).code, 'BAD_REQUEST');
    assertSecurityHeaders(r, 'subprotocol');
  });

  it('400/405 for an upgrade ws refuses (bad key, bad version, POST), with the registry code', async () => {
    const cases: [string, number][] = [
      [upgradeRequest(port, { headers: { 'Sec-WebSocket-Key': 'short' } }), 400],
      [upgradeRequest(port, { headers: { 'Sec-WebSocket-Version': '12' } }), 400],
      [upgradeRequest(port, { method: 'POST' }), 405],
    ];
    for (const [request, status] of cases) {
      const r = await rawHttp(port, request);
      assert.equal(r.status, status, r.head);
      assert.equal(JSON.parse(r.body).code, 'BAD_REQUEST');
      assertSecurityHeaders(r, `ws refusal ${status}`);
    }
  });

  it('404 for an upgrade on another path', async () => {
    const r = await rawHttp(port, upgradeRequest(port, { path: '/elsewhere' }));
    assert.equal(r.status, 404);
    assertSecurityHeaders(r, 'other path');
  });

  it("Node's 400 for a malformed request", async () => {
    const r = await rawHttp(port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal(r.status, 400);
    assertSecurityHeaders(r, 'malformed');
  });

  it("Node's 431 for headers over the limit", async () => {
    const r = await rawHttp(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.equal(r.status, 431);
    assertSecurityHeaders(r, 'header overflow');
  });

  it("Node's 408 for a request head that never ends", async () => {
    const r = await rawHttp(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 15_000);
    assert.equal(r.status, 408);
    assertSecurityHeaders(r, 'timeout');
  });

  it('the API answers too (a 404 of the router)', async () => {
    const r = await rawHttp(port, 'GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 404);
    assertSecurityHeaders(r, 'router 404');
  });
});
