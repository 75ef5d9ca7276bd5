/**
 * TLS served by the node (APIX_TLS_CERT, APIX_TLS_KEY): HTTPS and WSS on one port with a self-signed
 * certificate made here by openssl; a missing, non-PEM or mismatched file stops the start with one line
 * naming the variable.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import { run as serve } from '../../../src/cli/commands/serve.ts';
import { ConfigError, loadConfig } from '../../../src/config.ts';
import { loadTlsFiles } from '../../../src/tls.ts';

let dir: string;
const path = (name: string) => join(dir, name);

function selfSigned(key: string, cert: string): void {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-keyout',
      path(key),
      '-out',
      path(cert),
    ],
    { stdio: 'ignore' },
  );
}

function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('TLS served directly', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'apix-tls-'));
    selfSigned('k.pem', 'c.pem');
    selfSigned('k2.pem', 'c2.pem');
    writeFileSync(path('junk.pem'), 'not a certificate\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves HTTPS and WSS on the same port', async () => {
    const node = await startNode({ tls: { certFile: path('c.pem'), keyFile: path('k.pem') } });
    try {
      assert.match(node.wsUrl, /^wss:\/\//);
      assert.match(node.httpUrl, /^https:\/\//);
      const health = await httpsGet(`${node.httpUrl}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.body), { status: 'ok' });
      const c = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'agent-svc', roles: ['service'] }), // agent events come from services
        subscriptions: ['agent:tls'],
        ws: { rejectUnauthorized: false },
      });
      const r = await c.publish('agent:tls', 'note', { secure: true });
      assert.equal(r.type, 'message.sent');
      const [ev] = await c.waitForEvents(1, 'agent:tls');
      assert.deepEqual(ev!.payload, { secure: true });
      // Plain ws:// to the TLS port does not get a WebSocket.
      await assert.rejects(RawClient.open(node.wsUrl.replace('wss:', 'ws:')));
      c.close();
    } finally {
      await node.close();
    }
  });

  it('a missing, non-PEM or mismatched file is a ConfigError naming the variable', () => {
    const check = (certFile: string, keyFile: string, re: RegExp) =>
      assert.throws(
        () => loadTlsFiles({ tls: { certFile: path(certFile), keyFile: path(keyFile) } }),
        (err: unknown) => err instanceof ConfigError && re.test(err.message) && !err.message.includes('\n'),
      );
    check('nope.pem', 'k.pem', /^invalid APIX_TLS_CERT: cannot read .*nope\.pem \(ENOENT\)/);
    check('c.pem', 'nope.pem', /^invalid APIX_TLS_KEY: cannot read/);
    check('junk.pem', 'k.pem', /^invalid APIX_TLS_CERT: .* is not a PEM certificate/);
    check('c.pem', 'junk.pem', /^invalid APIX_TLS_KEY: .* is not a PEM private key/);
    check('c.pem', 'k2.pem', /^invalid APIX_TLS_KEY: .*not a usable private key for APIX_TLS_CERT/);
    // Only one of the two set.
    assert.throws(() => loadConfig({ APIX_TLS_CERT: path('c.pem') }), /invalid APIX_TLS_KEY/);
    assert.throws(() => loadConfig({ APIX_TLS_KEY: path('k.pem') }), /invalid APIX_TLS_CERT/);
    assert.deepEqual(loadConfig({ APIX_TLS_CERT: 'a', APIX_TLS_KEY: 'b' }).tls, {
      certFile: 'a',
      keyFile: 'b',
    });
  });

  it('apix serve stops with one line naming the variable, before opening anything', async () => {
    // In process (the check comes before the engines and the database): stderr captured.
    let stderr = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
    let status: number;
    try {
      status = await serve([], {
        APIX_DATA_DIR: path('data'),
        APIX_JWT_SECRET: 'test-secret-0123456789-abcdefghij',
        APIX_TLS_CERT: path('missing.pem'),
        APIX_TLS_KEY: path('k.pem'),
      });
    } finally {
      process.stderr.write = write;
    }
    assert.equal(status, 1);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(stderr, /^apix: invalid APIX_TLS_CERT: cannot read/);
  });
});
