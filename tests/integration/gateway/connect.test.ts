import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair, exportSPKI, SignJWT, exportJWK } from 'jose';
import { RawClient, startNode, token, sleep, TEST_SECRET } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';

async function connectFrame(c: RawClient, tok: string, extra: Record<string, unknown> = {}) {
  c.send({
    type: 'connect',
    payload: {
      sessionId: 's1',
      clientType: 'WEB_APP',
      authentication: { token: tok },
      subscriptions: [],
      ...extra,
    },
  });
  return c.next((f) => f.type === 'connection.established' || f.type === 'connection.error');
}

describe('connect handshake', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode({ connectTimeoutMs: 300, allowedOrigins: ['https://app.example'] });
  });
  after(() => node.close());

  it('establishes a connection with a valid token and grants subscriptions', async () => {
    const c = await RawClient.open(node.wsUrl);
    const f = await connectFrame(c, await token(), { subscriptions: ['agent:a1', 'user:alice', 'user:bob'] });
    assert.equal(f.type, 'connection.established');
    assert.equal(f.payload.resumed, false);
    assert.equal(f.payload.sessionId, 's1');
    assert.equal(typeof f.payload.heartbeatIntervalMs, 'number');
    assert.deepEqual(f.payload.subscriptions.sort(), ['agent:a1', 'user:alice']);
    assert.equal(f.payload.denied.length, 1);
    assert.equal(f.payload.denied[0].channel, 'user:bob');
    assert.equal(f.payload.denied[0].code, 'FORBIDDEN');
    assert.equal(f.metadata.version, '1');
    c.close();
  });

  it('selects the apix.v1.json subprotocol and refuses unknown ones at the handshake', async () => {
    const ok = await RawClient.open(node.wsUrl, { protocols: ['apix.v1.json'] });
    assert.equal(ok.ws.protocol, 'apix.v1.json');
    ok.close();
    await assert.rejects(RawClient.open(node.wsUrl, { protocols: ['mqtt'] }), /HTTP 400/);
  });

  it('checks Origin against the allow-list when present', async () => {
    await assert.rejects(RawClient.open(node.wsUrl, { origin: 'https://evil.example' }), /HTTP 403/);
    const ok = await RawClient.open(node.wsUrl, { origin: 'https://app.example' });
    ok.close();
  });

  it('closes 4004 when no connect arrives in time', async () => {
    const c = await RawClient.open(node.wsUrl);
    const closed = await c.waitClosed(3000);
    assert.equal(closed.code, 4004);
  });

  it('requires connect first: anything else closes 4000', async () => {
    const c = await RawClient.open(node.wsUrl);
    c.send({ type: 'subscribe', payload: { channels: ['agent:a'] } });
    const err = await c.nextOfType('connection.error');
    assert.equal(err.payload.code, 'BAD_REQUEST');
    assert.equal(err.payload.fatal, true);
    assert.equal((await c.waitClosed()).code, 4000);
  });

  it('answers an invalid connect payload with BAD_REQUEST naming the field', async () => {
    const c = await RawClient.open(node.wsUrl);
    c.send({
      type: 'connect',
      payload: { sessionId: 's', clientType: 'TOASTER', authentication: { token: 'x' }, subscriptions: [] },
    });
    const err = await c.nextOfType('connection.error');
    assert.match(err.payload.message, /clientType/);
    assert.equal((await c.waitClosed()).code, 4000);
  });

  it('refuses a second connect without closing', async () => {
    const c = await RawClient.connect(node.wsUrl);
    c.send({
      type: 'connect',
      payload: {
        sessionId: 's',
        clientType: 'WEB_APP',
        authentication: { token: await token() },
        subscriptions: [],
      },
    });
    const err = await c.nextOfType('connection.error');
    assert.equal(err.payload.fatal, false);
    const pong = await (async () => {
      c.send({ type: 'heartbeat.ping', payload: { ts: 1 } });
      return c.nextOfType('heartbeat.pong');
    })();
    assert.equal(pong.payload.ts, 1);
    c.close();
  });

  const refusals: Array<[string, () => Promise<string>, number, string]> = [
    [
      'an expired token',
      () => token({ expiresIn: Math.floor(Date.now() / 1000) - 60 }),
      4002,
      'TOKEN_EXPIRED',
    ],
    [
      'a token signed with another secret',
      () => token({ secret: 'another-secret-0123456789-abcdef' }),
      4001,
      'UNAUTHORIZED',
    ],
    [
      'an altered token (payload changed, signature kept)',
      async () => {
        const [h, p, s] = (await token()).split('.');
        const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
        claims.org = 'globex';
        return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
      },
      4001,
      'UNAUTHORIZED',
    ],
    [
      'alg: none',
      async () => {
        const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
        return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ sub: 'alice', org: 'acme', roles: ['admin'], exp: Math.floor(Date.now() / 1000) + 600 })}.`;
      },
      4001,
      'UNAUTHORIZED',
    ],
    ['a token without exp', () => token({ expiresIn: 0 }), 4001, 'UNAUTHORIZED'],
    ['a token without org', () => token({ org: null as unknown as string }), 4001, 'UNAUTHORIZED'],
    ['an org with a separator in it', () => token({ org: 'acme/evil' }), 4001, 'UNAUTHORIZED'],
    ['garbage', async () => 'not-a-jwt', 4001, 'UNAUTHORIZED'],
    ['an unknown API key', async () => 'apix_nope_nope', 4001, 'UNAUTHORIZED'],
  ];
  for (const [what, make, close, code] of refusals) {
    it(`refuses ${what} (${code}, close ${close})`, async () => {
      const c = await RawClient.open(node.wsUrl);
      const f = await connectFrame(c, await make());
      assert.equal(f.type, 'connection.error');
      assert.equal(f.payload.code, code);
      assert.equal(f.payload.fatal, true);
      assert.equal((await c.waitClosed()).code, close);
    });
  }

  it('refuses an organizationId that disagrees with the token', async () => {
    const c = await RawClient.open(node.wsUrl);
    const f = await connectFrame(c, await token(), {
      authentication: { token: await token(), organizationId: 'globex' },
    });
    assert.equal(f.payload.code, 'UNAUTHORIZED');
    assert.equal((await c.waitClosed()).code, 4001);
  });

  it('accepts a configured API key as an internal service', async () => {
    const c = await RawClient.open(node.wsUrl);
    const f = await connectFrame(c, 'apix_static_acmekey', { clientType: 'INTERNAL_SERVICE' });
    assert.equal(f.type, 'connection.established');
    assert.equal(f.payload.organizationId, 'acme');
    // A service publishes to its organization's agent channels (members may not)...
    const sent = await c.publish('agent:maintenance', 'note', { message: 'hello' });
    assert.equal(sent.type, 'message.sent');
    // ...but a tenant's key is not the platform's: system channels are refused.
    const system = await c.publish('system:maintenance', 'system_notification', {
      level: 'info',
      message: 'hello',
    });
    assert.equal(system.payload.code, 'FORBIDDEN');
    c.close();
  });
});

describe('JWT with asymmetric keys', () => {
  it('verifies RS256 from a PEM key and rejects HS256 signed with that public key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const pem = await exportSPKI(publicKey);
    const rsNode = await startNode({
      auth: {
        jwtSecret: undefined,
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
        .setSubject('alice')
        .setExpirationTime('1h')
        .sign(privateKey);
      const c = await RawClient.open(rsNode.wsUrl);
      assert.equal((await connectFrame(c, good)).type, 'connection.established');
      c.close();
      // HS/RS confusion: an HS256 token whose "secret" is the public key's PEM.
      const forged = await new SignJWT({ org: 'acme', roles: ['admin'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('mallory')
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(pem));
      const c2 = await RawClient.open(rsNode.wsUrl);
      const f = await connectFrame(c2, forged);
      assert.equal(f.payload.code, 'UNAUTHORIZED');
      assert.equal((await c2.waitClosed()).code, 4001);
    } finally {
      await rsNode.close();
    }
  });

  it('verifies ES256 from a JWKS URL and checks iss/aud', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const { createServer } = await import('node:http');
    const jwks = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const port = (jwks.address() as { port: number }).port;
    const node = await startNode({
      auth: {
        jwtSecret: undefined,
        jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
        publicKeyPem: undefined,
        issuer: 'https://issuer.example',
        audience: 'apix',
        algorithms: ['ES256'],
        apiKeys: [],
      },
    });
    try {
      const sign = (iss: string, aud: string) =>
        new SignJWT({ org: 'acme', roles: ['member'] })
          .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
          .setSubject('alice')
          .setIssuer(iss)
          .setAudience(aud)
          .setExpirationTime('1h')
          .sign(privateKey);
      const c = await RawClient.open(node.wsUrl);
      assert.equal(
        (await connectFrame(c, await sign('https://issuer.example', 'apix'))).type,
        'connection.established',
      );
      c.close();
      for (const [iss, aud] of [
        ['https://evil.example', 'apix'],
        ['https://issuer.example', 'other'],
      ] as const) {
        const bad = await RawClient.open(node.wsUrl);
        const f = await connectFrame(bad, await sign(iss, aud));
        assert.equal(f.payload.code, 'UNAUTHORIZED');
      }
      // An HS256 token is refused outright: HS256 is not in this node's allow-list.
      const hs = await RawClient.open(node.wsUrl);
      assert.equal(
        (await connectFrame(hs, await token({ secret: TEST_SECRET }))).payload.code,
        'UNAUTHORIZED',
      );
    } finally {
      await node.close();
      jwks.close();
    }
  });
});

describe('token expiry and refresh', () => {
  it('disconnects with TOKEN_EXPIRED and 4002 when the token expires mid-session', async () => {
    const node = await startNode({ heartbeatIntervalMs: 200 });
    try {
      const exp = Math.floor(Date.now() / 1000) + 2;
      const c = await RawClient.connect(node.wsUrl, { token: await token({ expiresIn: exp }) });
      const d = await c.nextOfType('connection.disconnected', 5000);
      assert.equal(d.payload.code, 'TOKEN_EXPIRED');
      assert.equal((await c.waitClosed()).code, 4002);
    } finally {
      await node.close();
    }
  });

  it('auth.refresh extends the session; a token for another user is refused without closing', async () => {
    const node = await startNode({ heartbeatIntervalMs: 200 });
    try {
      const c = await RawClient.connect(node.wsUrl, {
        token: await token({ expiresIn: Math.floor(Date.now() / 1000) + 2 }),
      });
      c.send({ type: 'auth.refresh', payload: { token: await token({ sub: 'bob' }) } });
      const err = await c.nextOfType('connection.error');
      assert.equal(err.payload.code, 'UNAUTHORIZED');
      assert.equal(err.payload.fatal, false);
      c.send({ type: 'auth.refresh', payload: { token: await token({ expiresIn: '1h' }) } });
      const ok = await c.nextOfType('auth.refreshed');
      assert.ok(ok.payload.expiresAt > Date.now() + 3_000_000);
      await sleep(2600);
      assert.equal(c.closed, undefined);
      c.close();
    } finally {
      await node.close();
    }
  });
});
