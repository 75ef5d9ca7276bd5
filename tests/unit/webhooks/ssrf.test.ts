/** The SSRF guard: ranges, the check at creation, and the check at connection time (DNS rebinding). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkDestination, isPrivateAddress } from '../../../src/webhooks/ssrf.ts';
import { httpSender } from '../../../src/webhooks/sender.ts';

describe('SSRF guard', () => {
  it('classifies addresses', () => {
    for (const a of [
      '127.0.0.1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '0.0.0.0',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      '::ffff:127.0.0.1',
      '100.64.0.1',
    ])
      assert.equal(isPrivateAddress(a), true, a);
    for (const a of ['8.8.8.8', '203.0.113.10', '2001:4860:4860::8888', '::ffff:8.8.8.8'])
      assert.equal(isPrivateAddress(a), false, a);
  });

  it('refuses at creation unless private addresses are allowed', async () => {
    await assert.rejects(checkDestination('http://localhost:1/x', false), /private or loopback/);
    await assert.rejects(checkDestination('ftp://example.com/', false), /http or https/);
    await assert.rejects(checkDestination('http://u:p@203.0.113.1/', false), /credentials/);
    assert.equal((await checkDestination('http://localhost:1/x', true)).hostname, 'localhost');
  });

  it('refuses at connection time: a name that resolves to loopback is never connected to', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const guarded = httpSender({ timeoutMs: 2000, allowPrivate: false, now: Date.now });
      assert.match((await guarded(`http://localhost:${port}/`, 's', '{}'))!, /resolves to/);
      assert.match((await guarded(`http://127.0.0.1:${port}/`, 's', '{}'))!, /private or loopback/);
      assert.equal(hits, 0);
      const open = httpSender({ timeoutMs: 2000, allowPrivate: true, now: Date.now });
      assert.equal(await open(`http://localhost:${port}/`, 's', '{}'), undefined);
      assert.equal(hits, 1);
    } finally {
      server.close();
    }
  });
});
