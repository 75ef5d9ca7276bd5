/**
 * µs per HS256 verification: jose's jwtVerify (the CryptoKey imported once, as the Authenticator does)
 * against the node:crypto fast path (src/auth/hmac-jwt.ts), and Authenticator.authenticate with and
 * without it. Sequential, one at a time, like connects.
 * Usage: node --import tsx bench/tools/jwt-verify.ts [iterations=20000]
 */
import { createHmac } from 'node:crypto';
import { jwtVerify } from 'jose';
import { HmacJwtVerifier } from '../../src/auth/hmac-jwt.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import type { ApiKeyStore } from '../../src/auth/api-keys.ts';

const N = Number(process.argv[2] ?? 20_000);
const SECRET = 'bench-secret-0123456789abcdef0123';
const secret = new TextEncoder().encode(SECRET);
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
  sub: 'user-1',
  org: 'acme',
  roles: ['agent'],
  iat: Math.floor(Date.now() / 1000),
  exp: Math.floor(Date.now() / 1000) + 3600,
})}`;
const token = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
const options = { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'], clockTolerance: 2 };

const key = await crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, [
  'verify',
]);
const fast = new HmacJwtVerifier({
  secret,
  algorithms: ['HS256'],
  issuer: undefined,
  audience: undefined,
  clockTolerance: 2,
});
const auth = () =>
  new Authenticator({
    jwtSecret: SECRET,
    jwksUrl: undefined,
    publicKeyPem: undefined,
    issuer: undefined,
    audience: undefined,
    algorithms: ['HS256'],
    apiKeys: {} as ApiKeyStore,
  });
const withFast = auth();
const joseOnly = auth();
Reflect.set(joseOnly, 'hmacFast', undefined);

async function time(name: string, fn: () => unknown): Promise<number> {
  for (let i = 0; i < 2000; i++) await fn(); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
  console.log(`${name.padEnd(44)} ${us.toFixed(2).padStart(7)} µs/verification`);
  return us;
}

console.log(`${N} sequential HS256 verifications each (node ${process.version})`);
const j = await time('jose jwtVerify (CryptoKey imported once)', () => jwtVerify(token, () => key, options));
const f = await time('fast path HmacJwtVerifier.verify', () => fast.verify(token));
const aj = await time('Authenticator.authenticate, jose only', () => joseOnly.authenticate(token));
const af = await time('Authenticator.authenticate, fast path', () => withFast.authenticate(token));
console.log(`speed-up: verify ${(j / f).toFixed(1)}x, authenticate ${(aj / af).toFixed(1)}x`);
