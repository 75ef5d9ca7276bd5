/** The request signature of PROTOCOL-1.1 section 13, checked against an HMAC computed here by hand. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { signatureHeader, verifySignature } from '../../../src/backend/signature.ts';

describe('X-Apix-Signature', () => {
  const now = 1_765_000_000_000;
  const body = '{"events":[]}';
  it('is t=<seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>', () => {
    const t = Math.floor(now / 1000);
    const v1 = createHmac('sha256', 'whsec_x').update(`${t}.${body}`).digest('hex');
    assert.equal(signatureHeader('whsec_x', body, now), `t=${t},v1=${v1}`);
  });
  it('verifies; refuses another body, another secret, a stale t, a missing header', () => {
    const h = signatureHeader('whsec_x', body, now);
    assert.equal(verifySignature('whsec_x', body, h, now + 299_000), undefined);
    assert.equal(verifySignature('whsec_x', `${body} `, h, now), 'signature mismatch');
    assert.equal(verifySignature('whsec_y', body, h, now), 'signature mismatch');
    assert.equal(verifySignature('whsec_x', body, h, now + 301_000), 'signature timestamp out of tolerance');
    assert.equal(verifySignature('whsec_x', body, undefined, now), 'no signature header');
  });
});
