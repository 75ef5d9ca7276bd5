import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeJwtExpiryMs, tokenRefreshDelayMs } from '../src/token.ts';
import { fakeJwt } from './support/helpers.ts';

describe('token', () => {
  it('reads exp (seconds) from a JWT without verifying it, as ms', () => {
    assert.equal(decodeJwtExpiryMs(fakeJwt({ sub: 'u1', exp: 1_700_000_000 })), 1_700_000_000_000);
  });

  it('handles base64url and non-ASCII claims', () => {
    assert.equal(decodeJwtExpiryMs(fakeJwt({ name: 'Zoë ✓ ~~~???', exp: 42 })), 42_000);
  });

  it('is undefined for API keys, malformed tokens and tokens without a numeric exp', () => {
    assert.equal(decodeJwtExpiryMs('apix_live_abcdef'), undefined);
    assert.equal(decodeJwtExpiryMs('a.b.c'), undefined);
    assert.equal(decodeJwtExpiryMs(fakeJwt({ sub: 'u1' })), undefined);
    assert.equal(decodeJwtExpiryMs(fakeJwt({ exp: '123' })), undefined);
  });

  it('refreshes a margin before expiry, or half-way for short-lived tokens', () => {
    assert.equal(tokenRefreshDelayMs(1_000_000 + 3_600_000, 1_000_000, 30_000), 3_570_000);
    assert.equal(tokenRefreshDelayMs(1_000_000 + 20_000, 1_000_000, 30_000), 10_000);
    assert.equal(tokenRefreshDelayMs(1_000_000, 2_000_000, 30_000), 0);
  });
});
