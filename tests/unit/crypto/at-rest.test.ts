/** src/crypto/at-rest.ts: AES-256-GCM envelopes under per-organization keys, with rotation. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  AtRestCipher,
  isSealedFrame,
  openRecordPayload,
  openStoredFrame,
  sealedFrameText,
  sealedRecordPayload,
} from '../../../src/crypto/at-rest.ts';
import { ApiXError } from '@apix/protocol';
import { loadConfig } from '../../../src/config.ts';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const v1 = new AtRestCipher({ keys: [{ version: 1, key: k1 }], active: 1 });
const v2 = new AtRestCipher({
  keys: [
    { version: 1, key: k1 },
    { version: 2, key: k2 },
  ],
  active: 2,
});

function assertFails(fn: () => unknown, re: RegExp): void {
  assert.throws(
    fn,
    (err: unknown) => err instanceof ApiXError && err.code === 'INTERNAL' && re.test(err.message),
  );
}

describe('AtRestCipher', () => {
  it('round-trips, with a random IV each time and no plaintext in the box', () => {
    const a = v1.seal('acme/agent:a1', 'secret payload');
    const b = v1.seal('acme/agent:a1', 'secret payload');
    assert.notEqual(a.iv, b.iv);
    assert.notEqual(a.ct, b.ct);
    assert.ok(!JSON.stringify(a).includes('secret'));
    assert.equal(v1.open('acme/agent:a1', a), 'secret payload');
  });

  it('fails on a tampered ciphertext, IV or offset', () => {
    const box = v1.sealFrame('acme/agent:a1', '{"type":"x","id":"', '","payload":{"a":1}}');
    const ct = Buffer.from(box.ct, 'base64');
    ct[0]! ^= 1;
    assertFails(
      () => v1.open('acme/agent:a1', { ...box, ct: ct.toString('base64') }),
      /failed authentication/,
    );
    const iv = Buffer.from(box.iv, 'base64');
    iv[0]! ^= 1;
    assertFails(
      () => v1.open('acme/agent:a1', { ...box, iv: iv.toString('base64') }),
      /failed authentication/,
    );
    assertFails(() => v1.open('acme/agent:a1', { ...box, at: box.at + 1 }), /failed authentication/);
  });

  it("fails when moved to another organization's or channel's storage", () => {
    const box = v1.seal('acme/agent:a1', 'x');
    assertFails(() => v1.open('globex/agent:a1', box), /failed authentication/);
    assertFails(() => v1.open('acme/agent:a2', box), /failed authentication/);
  });

  it('derives a different data key per organization (HKDF)', () => {
    // Same IV and plaintext under two organizations give different ciphertexts: different keys.
    const a = v1.seal('acme/x:1', 'same');
    const b = v1.seal('globex/x:1', 'same');
    assert.notEqual(a.ct, b.ct);
  });

  it('rotation: entries written with v1 still open once v2 is active; new writes use v2', () => {
    const old = v1.seal('acme/agent:a1', 'written under v1');
    assert.equal(old.k, 1);
    const fresh = v2.seal('acme/agent:a1', 'written under v2');
    assert.equal(fresh.k, 2);
    assert.equal(v2.open('acme/agent:a1', old), 'written under v1');
    assert.equal(v2.open('acme/agent:a1', fresh), 'written under v2');
  });

  it('an unknown key version is a clear error', () => {
    const fresh = v2.seal('acme/agent:a1', 'x');
    assertFails(() => v1.open('acme/agent:a1', fresh), /key version 2, which is not in APIX_ENCRYPTION_KEYS/);
  });

  it('a wrong master key under the same version fails', () => {
    const other = new AtRestCipher({ keys: [{ version: 1, key: randomBytes(32) }], active: 1 });
    assertFails(() => other.open('acme/agent:a1', v1.seal('acme/agent:a1', 'x')), /failed authentication/);
  });

  it('rejects a bad keyring', () => {
    assert.throws(
      () => new AtRestCipher({ keys: [{ version: 1, key: randomBytes(16) }], active: 1 }),
      /32 bytes/,
    );
    assert.throws(
      () => new AtRestCipher({ keys: [{ version: 1, key: k1 }], active: 2 }),
      /not in the keyring/,
    );
  });
});

describe('sealed frames and records', () => {
  const frame =
    '{"type":"t","channel":"agent:a1","id":"1700000000000-3","payload":{"secret":"plaintext-marker"},"metadata":{}}';
  const at = frame.indexOf('1700000000000-3');
  const box = v1.sealFrame('acme/agent:a1', frame.slice(0, at), frame.slice(at + '1700000000000-3'.length));
  const stored = sealedFrameText(box, '1700000000000-3');

  it('a stored frame holds no plaintext and opens back to the frame, id included', () => {
    assert.ok(isSealedFrame(stored));
    // A marker long enough that base64 ciphertext cannot contain it by chance ("s3" did, once in a while).
    assert.ok(!stored.includes('plaintext-marker'));
    assert.equal(openStoredFrame(v1, 'acme/agent:a1', stored), frame);
    assert.equal(openStoredFrame(v1, 'acme/agent:a1', frame), frame, 'plain frames pass');
    assertFails(() => openStoredFrame(undefined, 'acme/agent:a1', stored), /no encryption keys/);
  });

  it('a record payload keeps the box and opens to the payload', () => {
    const payload = sealedRecordPayload(stored)!;
    // As stored in jsonb (keys may come back reordered).
    const fromDb = JSON.parse(
      JSON.stringify({
        sealed: { ct: payload.sealed.ct, at: payload.sealed.at, iv: payload.sealed.iv, k: 1 },
      }),
    );
    assert.deepEqual(openRecordPayload(v1, 'acme/agent:a1', '1700000000000-3', fromDb), {
      secret: 'plaintext-marker',
    });
    assert.deepEqual(openRecordPayload(v1, 'acme/agent:a1', '1', { plain: true }), { plain: true });
  });
});

describe('APIX_ENCRYPTION_KEYS', () => {
  const b64 = (b: Buffer) => b.toString('base64');
  it('parses versions, the newest is active by default, an explicit one wins', () => {
    const c = loadConfig({ APIX_ENCRYPTION_KEYS: `1:${b64(k1)}, 2:${b64(k2)}` });
    assert.equal(c.encryption?.active, 2);
    assert.equal(c.encryption?.keys.length, 2);
    const d = loadConfig({
      APIX_ENCRYPTION_KEYS: `1:${b64(k1)},2:${b64(k2)}`,
      APIX_ENCRYPTION_ACTIVE_KEY: '1',
    });
    assert.equal(d.encryption?.active, 1);
    assert.equal(loadConfig({}).encryption, undefined);
  });
  it('refuses bad entries without echoing them', () => {
    for (const env of [
      { APIX_ENCRYPTION_KEYS: `1:${b64(randomBytes(16))}` },
      { APIX_ENCRYPTION_KEYS: `x:${b64(k1)}` },
      { APIX_ENCRYPTION_KEYS: `1:${b64(k1)},1:${b64(k2)}` },
      { APIX_ENCRYPTION_KEYS: `1:${b64(k1)}`, APIX_ENCRYPTION_ACTIVE_KEY: '3' },
    ])
      assert.throws(
        () => loadConfig(env),
        (err: Error) =>
          /APIX_ENCRYPTION_(KEYS|ACTIVE_KEY)/.test(err.message) && !err.message.includes(b64(k1)),
      );
  });
});
