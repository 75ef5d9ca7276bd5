/** packages/sdk/src/e2e.ts: AES-256-GCM envelopes through WebCrypto. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E2eCipher } from '../src/index.ts';
import { isE2ePayload } from '@apix/protocol/e2e';

const raw = () => globalThis.crypto.getRandomValues(new Uint8Array(32));
const k1 = raw();

describe('E2eCipher', () => {
  const c = new E2eCipher({
    'agent:a': { active: 'k1', keys: { k1 } },
    'agent:b': { active: 'k1', keys: { k1 } },
  });

  it('round-trips; the envelope is what the gateway recognizes and holds no plaintext', async () => {
    const env = await c.encrypt('agent:a', 'note', { secret: 'xyzzy', n: [1, 2] });
    assert.ok(isE2ePayload(env));
    assert.ok(!JSON.stringify(env).includes('xyzzy'));
    assert.deepEqual(await c.decrypt('agent:a', 'note', env), { secret: 'xyzzy', n: [1, 2] });
    const again = await c.encrypt('agent:a', 'note', { secret: 'xyzzy', n: [1, 2] });
    assert.notEqual(again.e2e.iv, env.e2e.iv);
  });

  it('fails on tampering, on another channel or type, and without the key id', async () => {
    const env = await c.encrypt('agent:a', 'note', { x: 1 });
    const ct = env.e2e.ct;
    const flipped = (ct[0] === 'A' ? 'B' : 'A') + ct.slice(1);
    await assert.rejects(
      c.decrypt('agent:a', 'note', { e2e: { ...env.e2e, ct: flipped } }),
      /failed to decrypt/,
    );
    await assert.rejects(c.decrypt('agent:b', 'note', env), /failed to decrypt/);
    await assert.rejects(c.decrypt('agent:a', 'other', env), /failed to decrypt/);
    await assert.rejects(c.decrypt('agent:a', 'note', { e2e: { ...env.e2e, kid: 'k9' } }), /no key "k9"/);
    const stranger = new E2eCipher({ 'agent:a': { active: 'k1', keys: { k1: raw() } } });
    await assert.rejects(stranger.decrypt('agent:a', 'note', env), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'BAD_REQUEST');
      return /wrong key, or tampered/.test(err.message);
    });
  });

  it('accepts a CryptoKey and refuses a raw key that is not 32 bytes', async () => {
    const key = await globalThis.crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, [
      'encrypt',
      'decrypt',
    ]);
    const ck = new E2eCipher({ 'agent:a': { active: 'c', keys: { c: key } } });
    assert.deepEqual(await ck.decrypt('agent:a', 't', await ck.encrypt('agent:a', 't', 'hi')), 'hi');
    const short = new E2eCipher({ 'agent:a': { active: 's', keys: { s: new Uint8Array(16) } } });
    await assert.rejects(short.encrypt('agent:a', 't', 1), /32 bytes/);
  });
});
