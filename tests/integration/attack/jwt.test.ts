/**
 * Attack suite, authentication: forged and malformed JWTs, key confusion, header injection, expiry in a
 * session, credentials in URLs and logs, and organizations from anywhere but the verified token.
 * Expected answers in the names; after each case the control connection still publishes and receives.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { RawClient, startNode, token, TEST_SECRET } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { createLogger } from '../../../src/log.ts';
import {
  Control,
  LogCapture,
  portOf,
  rawHttp,
  sleep,
  until,
  upgradeRequest,
  watchProcess,
  WireClient,
} from './helpers.ts';

const watch = watchProcess();
after(() => watch.assertNone());

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const nowSec = () => Math.floor(Date.now() / 1000);
/** A JWT built by hand: any header, any claims, HMAC-SHA256 with any key (or a given signature). */
function handJwt(header: object, claims: object, key: string | Buffer = TEST_SECRET, sig?: string): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${sig ?? createHmac('sha256', key).update(input).digest('base64url')}`;
}
const claims = (extra: object = {}) => ({
  sub: 'mallory',
  org: 'acme',
  roles: ['service', 'admin'],
  exp: nowSec() + 600,
  ...extra,
});

/** Sends `connect` with `tok` on a raw socket; returns the answer frame and the close code. */
async function tryConnect(node: ApiXNode, tok: string, extra: Record<string, unknown> = {}, path?: string) {
  const port = portOf(node);
  const c = await WireClient.open(port, upgradeRequest(port, path ? { path } : {}));
  assert.equal(c.status, 101);
  c.sendJson({
    type: 'connect',
    payload: {
      sessionId: 'jwt',
      clientType: 'WEB_APP',
      authentication: { token: tok },
      subscriptions: [],
      ...extra,
    },
  });
  const f = await c.waitJson((x) => x.type === 'connection.established' || x.type === 'connection.error');
  const close = f.type === 'connection.error' ? await c.waitClosed() : undefined;
  return { c, f, close };
}

async function expectRefused(node: ApiXNode, tok: string, what: string, code = 'UNAUTHORIZED', close = 4001) {
  const { c, f, close: got } = await tryConnect(node, tok);
  assert.equal(f.type, 'connection.error', `${what}: ${JSON.stringify(f.payload)}`);
  assert.equal(f.payload.code, code, `${what}: ${f.payload.message}`);
  assert.equal(f.payload.fatal, true);
  assert.equal(got, close, what);
  c.destroy();
}

describe('attack: JWT (HS256 node with iss/aud)', () => {
  let node: ApiXNode;
  let control: Control;
  let logs: LogCapture;
  let fetched = 0;
  const valid = (extra: object = {}) => claims({ iss: 'https://auth.acme.example', aud: 'apix', ...extra });
  const trap = createServer((_req, res) => {
    fetched++;
    res.end('{"keys":[]}');
  });
  before(async () => {
    logs = new LogCapture();
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
    node = await startNode(
      { auth: { issuer: 'https://auth.acme.example', audience: 'apix' } as never },
      { logger: createLogger('trace', 'attack-jwt', logs) },
    );
    control = await Control.start(
      node,
      handJwt({ alg: 'HS256', typ: 'JWT' }, valid({ sub: 'control', roles: ['member'] })),
    );
  });
  after(async () => {
    await control.check();
    control.close();
    WireClient.destroyAll();
    await node.close();
    trap.close();
  });
  const ctl = () => control.check();

  it('a hand-made valid token -> connection.established (the baseline for the forgeries below)', async () => {
    const { c, f } = await tryConnect(node, handJwt({ alg: 'HS256', typ: 'JWT' }, valid()));
    assert.equal(f.type, 'connection.established');
    assert.equal(f.payload.organizationId, 'acme');
    c.destroy();
    await ctl();
  });

  it('alg "none" in every spelling, with and without a signature -> UNAUTHORIZED, close 4001', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE', '', 'HS256 ']) {
      await expectRefused(
        node,
        `${b64({ alg, typ: 'JWT' })}.${b64(valid())}.`,
        `alg ${JSON.stringify(alg)}, empty sig`,
      );
      await expectRefused(node, handJwt({ alg, typ: 'JWT' }, valid()), `alg ${JSON.stringify(alg)}, signed`);
    }
    await expectRefused(
      node,
      handJwt({ alg: 'HS256' }, valid(), TEST_SECRET, ''),
      'HS256 with an empty signature',
    );
    await expectRefused(node, handJwt({}, valid()), 'no alg at all');
    await ctl();
  });

  it('not yet valid (nbf in 60 s), expired 60 s ago, exp as a string / null / NaN, no exp -> UNAUTHORIZED 4001 (TOKEN_EXPIRED 4002 for the expired one)', async () => {
    await expectRefused(node, handJwt({ alg: 'HS256' }, valid({ nbf: nowSec() + 60 })), 'nbf in the future');
    await expectRefused(
      node,
      handJwt({ alg: 'HS256' }, valid({ exp: nowSec() - 60 })),
      'expired',
      'TOKEN_EXPIRED',
      4002,
    );
    for (const exp of [String(nowSec() + 600), null, 'NaN', [nowSec() + 600]])
      await expectRefused(node, handJwt({ alg: 'HS256' }, valid({ exp })), `exp ${JSON.stringify(exp)}`);
    const { exp: _drop, ...noExp } = valid();
    await expectRefused(node, handJwt({ alg: 'HS256' }, noExp), 'no exp');
    await ctl();
  });

  it('wrong iss, missing iss, wrong aud, aud ["other"], iss with a trailing slash -> UNAUTHORIZED 4001; aud ["other","apix"] -> accepted', async () => {
    for (const [what, patch] of [
      ['wrong iss', { iss: 'https://evil.example' }],
      ['iss with a trailing slash', { iss: 'https://auth.acme.example/' }],
      ['missing iss', { iss: undefined }],
      ['wrong aud', { aud: 'apix-admin' }],
      ['aud ["other"]', { aud: ['other'] }],
      ['missing aud', { aud: undefined }],
    ] as const)
      await expectRefused(node, handJwt({ alg: 'HS256' }, valid(patch)), what);
    const { c, f } = await tryConnect(node, handJwt({ alg: 'HS256' }, valid({ aud: ['other', 'apix'] })));
    assert.equal(f.type, 'connection.established');
    c.destroy();
    await ctl();
  });

  it('kid injection (path traversal, SQL, command, NUL) signed with empty/"null"/file-content keys -> UNAUTHORIZED 4001; the kid is never used to find a key', async () => {
    const kids = [
      '../../../../../../dev/null',
      "' OR '1'='1' --",
      'x; rm -rf / #',
      'k1\u0000',
      '/proc/self/environ',
      '{{7*7}}',
    ];
    for (const kid of kids)
      for (const key of ['', 'null', '\n', 'undefined'])
        await expectRefused(
          node,
          handJwt({ alg: 'HS256', kid }, valid(), key),
          `kid ${JSON.stringify(kid)} key ${JSON.stringify(key)}`,
        );
    // The real secret with a hostile kid verifies: kid plays no part in HS256 key selection.
    const { c, f } = await tryConnect(node, handJwt({ alg: 'HS256', kid: kids[0] }, valid()));
    assert.equal(f.type, 'connection.established');
    c.destroy();
    await ctl();
  });

  it('jku / x5u / jwk headers pointing at an attacker key -> UNAUTHORIZED 4001, and the URLs are never fetched', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const url = `http://127.0.0.1:${(trap.address() as { port: number }).port}/jwks.json`;
    const jwk = await exportJWK(publicKey);
    for (const header of [
      { alg: 'RS256', jku: url, kid: 'a' },
      { alg: 'RS256', x5u: url },
      { alg: 'RS256', jwk },
    ]) {
      const forged = await new SignJWT(valid()).setProtectedHeader(header).sign(privateKey);
      await expectRefused(node, forged, JSON.stringify(Object.keys(header)));
    }
    // HMAC keyed with the attacker's own jwk (HS256 + embedded key): refused too.
    await expectRefused(
      node,
      handJwt({ alg: 'HS256', jwk }, valid(), JSON.stringify(jwk)),
      'HS256 keyed by an embedded jwk',
    );
    await sleep(100);
    assert.equal(fetched, 0, 'no key URL from a token header was fetched');
    await ctl();
  });

  it('a token in the URL query (/v1/ws?token=...), in failed connects, in HTTP queries and Authorization headers -> never in the log (trace level)', async () => {
    const port = portOf(node);
    const secretTok = handJwt({ alg: 'HS256' }, valid({ sub: 'logged-user-should-not-appear' }));
    const sig = secretTok.split('.')[2]!;
    const badTok = handJwt({ alg: 'HS256' }, valid(), 'wrong-key-wrong-key');
    const badSig = badTok.split('.')[2]!;
    // WebSocket: token in the query, then a connect with a bad token (auth failure, close 4001).
    const r1 = await tryConnect(node, badTok, {}, `/v1/ws?token=${secretTok}&access_token=${secretTok}`);
    assert.equal(r1.close, 4001);
    r1.c.destroy();
    // A good token in the query and a good connect: works, and the query is ignored.
    const r2 = await tryConnect(node, secretTok, {}, `/v1/ws?token=${secretTok}`);
    assert.equal(r2.f.type, 'connection.established');
    r2.c.destroy();
    // Wrong path with a token, HTTP history and publish with tokens in the query and the header.
    const wrong = await rawHttp(port, upgradeRequest(port, { path: `/v2/ws?token=${secretTok}` }));
    assert.equal(wrong.status, 404);
    const h = await fetch(`${node.httpUrl}/v1/channels/agent:x/history?token=${secretTok}`, {
      headers: { Authorization: `Bearer ${badTok}` },
    });
    assert.equal(h.status, 401);
    const p = await fetch(`${node.httpUrl}/v1/publish?api_key=${secretTok}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${badTok}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'agent:x', type: 'note', payload: { token: secretTok } }),
    });
    assert.equal(p.status, 401);
    // Paths that do log the request: a failing history read over HTTP (the URL is logged) and over WS.
    const broker = node.engines.broker;
    const history = broker.history.bind(broker);
    broker.history = async () => {
      throw new Error('history store down');
    };
    try {
      const fail = await fetch(`${node.httpUrl}/v1/channels/agent:x/history?since=1-0&token=${secretTok}`, {
        headers: { Authorization: `Bearer ${secretTok}` },
      });
      assert.equal(fail.status, 500);
      const ws = await tryConnect(node, secretTok, { subscriptions: [] }, `/v1/ws?token=${secretTok}`);
      ws.c.sendJson({ type: 'subscribe', payload: { channels: ['agent:x'], since: { 'agent:x': '1-0' } } });
      await ws.c.waitJson((f) => f.type === 'subscription.added');
      ws.c.destroy();
    } finally {
      broker.history = history;
    }
    await sleep(100);
    assert.match(logs.text, /http handler failed/, 'the capture works: the failure was logged');
    assert.match(logs.text, /\/v1\/channels\/agent:x\/history/, 'with its path');
    assert.match(logs.text, /history read failed/);
    const secrets: Array<[string, string]> = [
      ['query token signature', sig],
      ['bad token signature', badSig],
      ['the whole token', secretTok],
      ['the token payload', secretTok.split('.')[1]!],
    ];
    for (const [what, s] of secrets) assert.ok(!logs.text.includes(s), `${what} reached the log`);
    await ctl();
  });

  it('the organization comes only from the verified token: organizationId, header claims, extra claims, connect.metadata, URL query -> acme (or 4001 when organizationId disagrees)', async () => {
    const port = portOf(node);
    const globexSub = await RawClient.connect(node.wsUrl, {
      token: handJwt({ alg: 'HS256' }, valid({ sub: 'gina', org: 'globex', roles: ['member'] })),
      subscriptions: ['agent:org-test'],
    });
    const acmeSub = await RawClient.connect(node.wsUrl, {
      token: handJwt({ alg: 'HS256' }, valid({ sub: 'amy', roles: ['member'] })),
      subscriptions: ['agent:org-test'],
    });
    // Claimed organizationId that disagrees: refused.
    const disagree = await tryConnect(node, handJwt({ alg: 'HS256' }, valid()), {
      authentication: { token: handJwt({ alg: 'HS256' }, valid()), organizationId: 'globex' },
    });
    assert.equal(disagree.close, 4001);
    disagree.c.destroy();
    // Everything else that names globex is ignored: the connection is acme's.
    const attempts: Array<[string, string, Record<string, unknown>, string | undefined]> = [
      ['org in the JWT header', handJwt({ alg: 'HS256', org: 'globex' }, valid()), {}, undefined],
      [
        'organizationId / org_id / tenant claims',
        handJwt({ alg: 'HS256' }, valid({ organizationId: 'globex', org_id: 'globex', tenant: 'globex' })),
        {},
        undefined,
      ],
      [
        'connect.metadata',
        handJwt({ alg: 'HS256' }, valid()),
        { metadata: { org: 'globex', organizationId: 'globex' } },
        undefined,
      ],
      ['URL query', handJwt({ alg: 'HS256' }, valid()), {}, '/v1/ws?org=globex&organizationId=globex'],
    ];
    for (const [what, tok, extra, path] of attempts) {
      const { c, f } = await tryConnect(node, tok, extra, path);
      assert.equal(f.payload.organizationId, 'acme', what);
      c.sendJson({
        type: 'note',
        channel: 'agent:org-test',
        payload: { what },
        metadata: { org: 'globex', correlation_id: what },
      });
      assert.equal((await c.waitJson((x) => x.metadata?.correlation_id === what)).type, 'message.sent');
      c.destroy();
    }
    // HTTP: the API key is acme's whatever the headers or body say.
    const r = await fetch(`${node.httpUrl}/v1/publish?org=globex`, {
      method: 'POST',
      headers: {
        Authorization: 'Bearer apix_static_acmekey',
        'X-Organization-Id': 'globex',
        'X-Apix-Org': 'globex',
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({
        channel: 'agent:org-test',
        type: 'note',
        payload: { what: 'http' },
        metadata: { org: 'globex' },
      }),
    });
    assert.equal(r.status, 200);
    // An org claim that is not a plain id: refused.
    await expectRefused(
      node,
      handJwt({ alg: 'HS256' }, valid({ org: ['acme', 'globex'] })),
      'org as an array',
    );
    await expectRefused(node, handJwt({ alg: 'HS256' }, valid({ org: 'globex/../acme' })), 'org with a path');
    await acmeSub.waitForEvents(attempts.length + 1, 'agent:org-test');
    await sleep(100);
    assert.equal(globexSub.events().length, 0, 'globex saw none of it');
    void port;
    globexSub.close();
    acmeSub.close();
    await ctl();
  });
});

describe('attack: key confusion on an RS256 node', () => {
  it('HS256 signed with the RS public key (PEM, PEM without newline, DER, JWK JSON) -> UNAUTHORIZED 4001, on a node with and without an HS secret', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const jwkJson = JSON.stringify(await exportJWK(publicKey));
    for (const jwtSecret of [undefined, TEST_SECRET]) {
      const node = await startNode({
        auth: {
          jwtSecret,
          jwksUrl: undefined,
          publicKeyPem: pem,
          issuer: undefined,
          audience: undefined,
          algorithms: ['RS256', 'HS256'],
          apiKeys: [],
        },
      });
      try {
        const good = await new SignJWT({ org: 'acme', roles: ['member'] })
          .setProtectedHeader({ alg: 'RS256' })
          .setSubject('control')
          .setExpirationTime('1h')
          .sign(privateKey);
        const control = await RawClient.connect(node.wsUrl, {
          token: good,
          subscriptions: ['room:control'],
        });
        for (const [what, key] of [
          ['PEM', pem],
          ['PEM without its last newline', pem.trimEnd()],
          ['PEM with CRLF', pem.replace(/\n/g, '\r\n')],
          ['DER', der],
          ['JWK JSON', jwkJson],
        ] as const)
          await expectRefused(
            node,
            handJwt({ alg: 'HS256', typ: 'JWT' }, claims(), key),
            `${what} (secret: ${!!jwtSecret})`,
          );
        // RS256 header but HMAC signature bytes: refused as well.
        await expectRefused(node, handJwt({ alg: 'RS256' }, claims(), pem), 'RS256 header, HMAC signature');
        const sent = await control.publish('room:control', 'note', { ok: true });
        assert.equal(sent.type, 'message.sent');
        await control.waitForEvents(1, 'room:control');
        control.close();
      } finally {
        WireClient.destroyAll();
        await node.close();
      }
    }
  });
});

describe('attack: expiry mid-session', () => {
  let node: ApiXNode;
  let control: Control;
  before(async () => {
    node = await startNode();
    control = await Control.start(node);
  });
  after(async () => {
    await control.check();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  it('a frame sent just after exp (before the sweeper runs) -> not served: TOKEN_EXPIRED, close 4002', async () => {
    const exp = nowSec() + 2;
    const c = await RawClient.connect(node.wsUrl, {
      token: await token({ expiresIn: exp }),
      subscriptions: ['agent:exp'],
    });
    await until(() => Date.now() >= exp * 1000 + 20, 4000, 'exp to pass');
    c.send({
      type: 'note',
      channel: 'agent:exp',
      payload: { late: true },
      metadata: { correlation_id: 'late' },
    });
    const f = await c.next(
      (x) => x.metadata?.correlation_id === 'late' || x.type === 'connection.disconnected',
    );
    assert.equal(f.type, 'connection.disconnected', `answered ${f.type}`);
    assert.equal(f.payload.code, 'TOKEN_EXPIRED');
    assert.equal((await c.waitClosed()).code, 4002);
    await sleep(50);
    assert.equal(c.events('agent:exp').length, 0, 'the late publish was not delivered');
    await control.check();
  });

  it('auth.refresh with an expired token or another organization’s token -> non-fatal error, identity unchanged, then 4002 at exp', async () => {
    const exp = nowSec() + 2;
    const c = await RawClient.connect(node.wsUrl, { token: await token({ expiresIn: exp }) });
    c.send({ type: 'auth.refresh', payload: { token: await token({ expiresIn: nowSec() - 30 }) } });
    const e1 = await c.nextOfType('connection.error');
    assert.equal(e1.payload.code, 'TOKEN_EXPIRED');
    assert.equal(e1.payload.fatal, false);
    c.send({ type: 'auth.refresh', payload: { token: await token({ org: 'globex', expiresIn: '1h' }) } });
    const e2 = await c.nextOfType('connection.error');
    assert.equal(e2.payload.code, 'UNAUTHORIZED');
    assert.equal(e2.payload.fatal, false);
    const d = await c.nextOfType('connection.disconnected', 5000);
    assert.equal(d.payload.code, 'TOKEN_EXPIRED');
    assert.equal((await c.waitClosed()).code, 4002);
    await control.check();
  });
});
