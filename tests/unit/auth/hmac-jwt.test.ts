/**
 * The HMAC fast path against jose: for a matrix of tokens (valid, each alg, forged, malformed, every
 * claim rule) and random one-character mutations of valid tokens, the fast path (falling back to jose
 * where it does not decide) and jose's `jwtVerify` give the same answer: the same payload, or the same
 * error class, message, `claim` and `reason`. Each matrix case also says which path must decide it.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { HmacJwtVerifier } from '../../../src/auth/hmac-jwt.ts';
import { Authenticator } from '../../../src/auth/authenticator.ts';
import type { ApiKeyStore } from '../../../src/auth/api-keys.ts';
import { ApiXError } from '@apix/protocol';

const SECRET = 'differential-test-secret-0123456789';
const SECRET_BYTES = new TextEncoder().encode(SECRET);
const NOW = 1_800_000_000;
const CURRENT = new Date(NOW * 1000 + 500);
const ISS = 'https://id.example';
const AUD = 'apix';

interface Config {
  readonly algorithms: string[];
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly clockTolerance: number;
}
const FULL: Config = {
  algorithms: ['HS256', 'HS384', 'HS512', 'RS256'],
  issuer: ISS,
  audience: AUD,
  clockTolerance: 2,
};
const PLAIN: Config = { algorithms: ['HS256'], issuer: undefined, audience: undefined, clockTolerance: 2 };

const enc = (v: unknown): string =>
  (typeof v === 'string' ? Buffer.from(v) : Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString(
    'base64url',
  );
const HASH: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
const mac = (input: string, alg = 'HS256', key: string = SECRET) =>
  createHmac(HASH[alg] ?? 'sha256', key)
    .update(input)
    .digest('base64url');
/** A token with any header and claims (objects, raw strings or bytes), signed with `alg`'s hash. */
function tok(header: unknown, claims: unknown, opts: { alg?: string; key?: string } = {}): string {
  const input = `${enc(header)}.${enc(claims)}`;
  return `${input}.${mac(input, opts.alg, opts.key)}`;
}
const hs = (alg = 'HS256', extra: object = {}) => ({ alg, typ: 'JWT', ...extra });
const claims = (extra: Record<string, unknown> = {}) => {
  const c: Record<string, unknown> = {
    sub: 'alice',
    org: 'acme',
    iss: ISS,
    aud: AUD,
    exp: NOW + 600,
    ...extra,
  };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
};
/** Signs `<header>.<payload>` as given (already encoded segments). */
const signed = (h: string, p: string, alg = 'HS256') => `${h}.${p}.${mac(`${h}.${p}`, alg)}`;
const setChar = (s: string, i: number, c: string) => s.slice(0, i) + c + s.slice(i + 1);
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const flip = (c: string) => (c === 'A' ? 'B' : 'A');

type Outcome =
  | { ok: true; payload: JWTPayload }
  | { ok: false; error: string; message: string; claim?: unknown; reason?: unknown };

function outcomeOf(err: unknown): Outcome {
  const e = err as Error & { claim?: unknown; reason?: unknown };
  return { ok: false, error: e.constructor.name, message: e.message, claim: e.claim, reason: e.reason };
}

async function viaJose(token: string, cfg: Config): Promise<Outcome> {
  try {
    const { payload } = await jwtVerify(token, SECRET_BYTES, {
      algorithms: cfg.algorithms,
      issuer: cfg.issuer,
      audience: cfg.audience,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: cfg.clockTolerance,
      currentDate: CURRENT,
    });
    return { ok: true, payload };
  } catch (err) {
    return outcomeOf(err);
  }
}

const verifiers = new Map<Config, HmacJwtVerifier>();
/** The fast path as the Authenticator uses it: its answer, or jose's when it does not decide. */
async function viaFast(token: string, cfg: Config): Promise<{ route: 'fast' | 'jose'; outcome: Outcome }> {
  let v = verifiers.get(cfg);
  if (!v) verifiers.set(cfg, (v = new HmacJwtVerifier({ secret: SECRET_BYTES, ...cfg })));
  try {
    const payload = v.verify(token, CURRENT);
    if (payload) return { route: 'fast', outcome: { ok: true, payload } };
  } catch (err) {
    return { route: 'fast', outcome: outcomeOf(err) };
  }
  return { route: 'jose', outcome: await viaJose(token, cfg) };
}

interface Case {
  readonly name: string;
  readonly token: string;
  readonly route: 'fast' | 'jose';
  /** The expected answer, by jose: 'ok' or the error class name (and claim/reason for claims). */
  readonly expect: string;
  readonly cfg?: Config;
}

const valid = tok(hs(), claims());
const [vh, vp, vs] = valid.split('.') as [string, string, string];
const BOM = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(claims()))]);

const CASES: Case[] = [
  { name: 'valid HS256', token: valid, route: 'fast', expect: 'ok' },
  { name: 'valid HS384', token: tok(hs('HS384'), claims(), { alg: 'HS384' }), route: 'fast', expect: 'ok' },
  { name: 'valid HS512', token: tok(hs('HS512'), claims(), { alg: 'HS512' }), route: 'fast', expect: 'ok' },
  {
    name: 'valid with iat, past nbf, aud array holding the audience, extra claims',
    token: tok(hs(), claims({ iat: NOW - 5, nbf: NOW - 5, aud: ['other', AUD], roles: ['x'], jti: 'j1' })),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'valid, no iss/aud configured (and none in the token)',
    token: tok(hs(), claims({ iss: undefined, aud: undefined })),
    route: 'fast',
    expect: 'ok',
    cfg: PLAIN,
  },
  {
    name: 'sub is a number: jose checks presence only',
    token: tok(hs(), claims({ sub: 7 })),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'HS384 header signed with SHA-256',
    token: tok(hs('HS384'), claims()),
    route: 'fast',
    expect: 'JWSSignatureVerificationFailed',
  },
  {
    name: 'wrong secret',
    token: tok(hs(), claims(), { key: 'another-secret-0123456789' }),
    route: 'fast',
    expect: 'JWSSignatureVerificationFailed',
  },
  {
    name: 'tampered header',
    token: `${enc(hs('HS256', { kid: 'x' }))}.${vp}.${vs}`,
    route: 'fast',
    expect: 'JWSSignatureVerificationFailed',
  },
  {
    name: 'tampered payload',
    token: `${vh}.${enc(claims({ sub: 'mallory' }))}.${vs}`,
    route: 'fast',
    expect: 'JWSSignatureVerificationFailed',
  },
  {
    name: 'tampered signature',
    token: `${vh}.${vp}.${setChar(vs, 10, flip(vs[10]!))}`,
    route: 'fast',
    expect: 'JWSSignatureVerificationFailed',
  },
  {
    name: 'signature with other trailing bits (decodes to the same bytes)',
    token: `${vh}.${vp}.${setChar(vs, 42, B64URL[B64URL.indexOf(vs[42]!) ^ 1]!)}`,
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'truncated signature (4 characters)',
    token: `${vh}.${vp}.${vs.slice(0, -4)}`,
    route: 'fast',
    expect: 'JWSSignatureVerificationFailed',
  },
  {
    name: 'truncated signature to a 4n+1 length (not base64)',
    token: `${vh}.${vp}.${vs.slice(0, -2)}`,
    route: 'jose',
    expect: 'JWSInvalid',
  },
  { name: 'empty signature', token: `${vh}.${vp}.`, route: 'fast', expect: 'JWSSignatureVerificationFailed' },
  { name: 'extra segment', token: `${valid}.${vs}`, route: 'jose', expect: 'JWSInvalid' },
  { name: 'two segments', token: `${vh}.${vp}`, route: 'jose', expect: 'JWSInvalid' },
  { name: 'empty header segment', token: signed('', vp), route: 'jose', expect: 'JWSInvalid' },
  {
    name: 'non-base64url character in the signature',
    token: `${vh}.${vp}.${setChar(vs, 5, '+')}`,
    route: 'jose',
    expect: 'JWSInvalid',
  },
  {
    name: 'non-base64url character in the payload (signed)',
    token: signed(vh, setChar(vp, 5, '/')),
    route: 'jose',
    expect: 'JWSInvalid',
  },
  {
    name: 'payload of a 4n+1 length, signed (not base64: jose refuses it after the signature)',
    token: signed(vh, vp + 'A'.repeat((5 - (vp.length % 4)) % 4)),
    route: 'jose',
    expect: 'JWSInvalid',
  },
  {
    name: 'padded header (atob accepts it)',
    token: signed(`${enc({ alg: 'HS256', kid: 'k1' })}=`, vp),
    route: 'jose',
    expect: 'ok',
  },
  {
    name: 'whitespace in the signature',
    token: `${vh}.${vp}.${vs.slice(0, 8)} ${vs.slice(8)}`,
    route: 'jose',
    expect: 'ok',
  },
  { name: 'header not JSON', token: tok('{"alg":"HS256"', claims()), route: 'jose', expect: 'JWSInvalid' },
  { name: 'header an array', token: tok(['HS256'], claims()), route: 'jose', expect: 'JWSInvalid' },
  { name: 'header null', token: tok('null', claims()), route: 'jose', expect: 'JWSInvalid' },
  { name: 'header without alg', token: tok({ typ: 'JWT' }, claims()), route: 'jose', expect: 'JWSInvalid' },
  { name: 'alg none', token: `${enc({ alg: 'none' })}.${vp}.`, route: 'jose', expect: 'JOSEAlgNotAllowed' },
  { name: 'alg RS256 (HMAC-signed)', token: tok(hs('RS256'), claims()), route: 'jose', expect: 'TypeError' },
  {
    name: 'alg HS384 when only HS256 is allowed',
    token: tok(hs('HS384'), claims(), { alg: 'HS384' }),
    route: 'jose',
    expect: 'JOSEAlgNotAllowed',
    cfg: PLAIN,
  },
  { name: 'alg hs256 (case)', token: tok(hs('hs256'), claims()), route: 'jose', expect: 'JOSEAlgNotAllowed' },
  {
    name: 'duplicate alg member: the last one counts',
    token: tok('{"alg":"none","alg":"HS256"}', claims()),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'header with a UTF-8 BOM (jose strips it)',
    token: tok(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(hs()))]), claims()),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'crit b64:false (unencoded payload, refused for JWTs) goes to jose',
    token: tok(hs('HS256', { crit: ['b64'], b64: false }), claims()),
    route: 'jose',
    expect: 'JWTInvalid',
  },
  {
    name: 'crit with an unknown extension goes to jose',
    token: tok(hs('HS256', { crit: ['exp'], exp: 1 }), claims()),
    route: 'jose',
    expect: 'JOSENotSupported',
  },
  {
    name: 'crit not an array goes to jose',
    token: tok(hs('HS256', { crit: 'b64' }), claims()),
    route: 'jose',
    expect: 'JWSInvalid',
  },
  {
    name: 'b64:true without crit goes to jose',
    token: tok(hs('HS256', { b64: true }), claims()),
    route: 'jose',
    expect: 'ok',
  },
  {
    name: 'b64:false without crit goes to jose',
    token: tok(hs('HS256', { b64: false }), claims()),
    route: 'jose',
    expect: 'ok',
  },
  { name: 'payload an array', token: tok(hs(), [claims()]), route: 'fast', expect: 'JWTInvalid' },
  { name: 'payload a number', token: tok(hs(), '42'), route: 'fast', expect: 'JWTInvalid' },
  { name: 'payload null', token: tok(hs(), 'null'), route: 'fast', expect: 'JWTInvalid' },
  { name: 'payload not JSON', token: tok(hs(), '{"sub":"alice"'), route: 'fast', expect: 'JWTInvalid' },
  { name: 'payload empty', token: tok(hs(), ''), route: 'fast', expect: 'JWTInvalid' },
  {
    name: 'payload not UTF-8',
    token: tok(hs(), Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
    route: 'fast',
    expect: 'JWTInvalid',
  },
  { name: 'payload with a UTF-8 BOM', token: tok(hs(), BOM), route: 'fast', expect: 'ok' },
  {
    name: 'payload with an own __proto__ member',
    token: tok(hs(), `{"__proto__":{"x":1},${JSON.stringify(claims()).slice(1)}`),
    route: 'fast',
    expect: 'ok',
  },
  { name: 'exp missing', token: tok(hs(), claims({ exp: undefined })), route: 'fast', expect: 'exp missing' },
  {
    name: 'exp a string',
    token: tok(hs(), claims({ exp: String(NOW + 600) })),
    route: 'fast',
    expect: 'exp invalid',
  },
  { name: 'exp null', token: tok(hs(), claims({ exp: null })), route: 'fast', expect: 'exp invalid' },
  { name: 'exp past', token: tok(hs(), claims({ exp: NOW - 60 })), route: 'fast', expect: 'JWTExpired' },
  {
    name: 'exp within the tolerance',
    token: tok(hs(), claims({ exp: NOW - 1 })),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'exp at the tolerance edge',
    token: tok(hs(), claims({ exp: NOW - 2 })),
    route: 'fast',
    expect: 'JWTExpired',
  },
  {
    name: 'exp fractional, inside',
    token: tok(hs(), claims({ exp: NOW - 1.5 })),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'exp 1e400 (Infinity)',
    token: tok(hs(), JSON.stringify(claims()).replace(/"exp":\d+/, '"exp":1e400')),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'nbf future',
    token: tok(hs(), claims({ nbf: NOW + 60 })),
    route: 'fast',
    expect: 'nbf check_failed',
  },
  {
    name: 'nbf within the tolerance',
    token: tok(hs(), claims({ nbf: NOW + 2 })),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'nbf just past the tolerance',
    token: tok(hs(), claims({ nbf: NOW + 3 })),
    route: 'fast',
    expect: 'nbf check_failed',
  },
  {
    name: 'nbf a string',
    token: tok(hs(), claims({ nbf: 'yesterday' })),
    route: 'fast',
    expect: 'nbf invalid',
  },
  { name: 'iat a string', token: tok(hs(), claims({ iat: '1' })), route: 'fast', expect: 'iat invalid' },
  {
    name: 'iat in the future is fine without maxTokenAge',
    token: tok(hs(), claims({ iat: NOW + 9999 })),
    route: 'fast',
    expect: 'ok',
  },
  {
    name: 'iss wrong',
    token: tok(hs(), claims({ iss: 'https://evil.example' })),
    route: 'fast',
    expect: 'iss check_failed',
  },
  {
    name: 'iss missing when configured',
    token: tok(hs(), claims({ iss: undefined })),
    route: 'fast',
    expect: 'iss missing',
  },
  {
    name: 'iss an array',
    token: tok(hs(), claims({ iss: [ISS] })),
    route: 'fast',
    expect: 'iss check_failed',
  },
  {
    name: 'aud wrong',
    token: tok(hs(), claims({ aud: 'other' })),
    route: 'fast',
    expect: 'aud check_failed',
  },
  {
    name: 'aud array without the audience',
    token: tok(hs(), claims({ aud: ['other', 'more'] })),
    route: 'fast',
    expect: 'aud check_failed',
  },
  {
    name: 'aud array with the audience',
    token: tok(hs(), claims({ aud: [AUD] })),
    route: 'fast',
    expect: 'ok',
  },
  { name: 'aud a number', token: tok(hs(), claims({ aud: 5 })), route: 'fast', expect: 'aud check_failed' },
  {
    name: 'aud missing when configured',
    token: tok(hs(), claims({ aud: undefined })),
    route: 'fast',
    expect: 'aud missing',
  },
  { name: 'sub missing', token: tok(hs(), claims({ sub: undefined })), route: 'fast', expect: 'sub missing' },
  {
    name: 'several failures: jose order (iss missing before sub missing)',
    token: tok(hs(), claims({ sub: undefined, iss: undefined, exp: 'x' })),
    route: 'fast',
    expect: 'iss missing',
  },
  {
    name: 'several failures: iss wrong before exp past',
    token: tok(hs(), claims({ iss: 'x', exp: NOW - 100 })),
    route: 'fast',
    expect: 'iss check_failed',
  },
  {
    name: 'several failures: nbf before exp',
    token: tok(hs(), claims({ nbf: NOW + 100, exp: NOW - 100 })),
    route: 'fast',
    expect: 'nbf check_failed',
  },
  {
    name: 'several failures: iat type before nbf',
    token: tok(hs(), claims({ iat: null, nbf: NOW + 100 })),
    route: 'fast',
    expect: 'iat invalid',
  },
];

/** 'ok', the error class, or `<claim> <reason>` for JWTClaimValidationFailed / `missing` etc. */
function summary(o: Outcome): string {
  if (o.ok) return 'ok';
  if (o.error === 'JWTClaimValidationFailed') return `${String(o.claim)} ${String(o.reason)}`;
  return o.error;
}

describe('HMAC JWT fast path, differential against jose', () => {
  it(`matrix of ${CASES.length} tokens: same answer as jose, decided by the expected path`, async () => {
    assert.ok(CASES.length >= 30);
    for (const c of CASES) {
      const cfg = c.cfg ?? FULL;
      const jose = await viaJose(c.token, cfg);
      const fast = await viaFast(c.token, cfg);
      assert.deepStrictEqual(fast.outcome, jose, `${c.name}: fast path and jose differ`);
      assert.equal(summary(jose), c.expect, `${c.name}: jose's answer`);
      assert.equal(fast.route, c.route, `${c.name}: decided by`);
    }
  });

  it('random one-character mutations of valid tokens: same answer as jose', async () => {
    let seed = 0x5eed;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. ';
    const bases = [
      valid,
      tok(hs('HS512'), claims({ nbf: NOW }), { alg: 'HS512' }),
      tok(hs('HS384'), claims({ aud: [AUD, 'x'] }), { alg: 'HS384' }),
    ];
    const routes = { fast: 0, jose: 0 };
    for (let i = 0; i < 600; i++) {
      const base = bases[i % bases.length]!;
      const at = rand(base.length);
      const kind = rand(3);
      const ch = alphabet[rand(alphabet.length)]!;
      const t =
        kind === 0
          ? setChar(base, at, ch)
          : kind === 1
            ? base.slice(0, at) + base.slice(at + 1)
            : base.slice(0, at) + ch + base.slice(at);
      const jose = await viaJose(t, FULL);
      const fast = await viaFast(t, FULL);
      routes[fast.route]++;
      assert.deepStrictEqual(fast.outcome, jose, `mutation ${i}: ${t}`);
    }
    assert.ok(routes.fast > 300, `most mutations are decided by the fast path (${JSON.stringify(routes)})`);
  });

  it('the Authenticator answers the same codes and messages with and without the fast path', async () => {
    const make = () =>
      new Authenticator({
        jwtSecret: SECRET,
        jwksUrl: undefined,
        publicKeyPem: undefined,
        issuer: ISS,
        audience: AUD,
        algorithms: FULL.algorithms,
        apiKeys: {} as ApiKeyStore,
        clockToleranceSec: 2,
        now: () => CURRENT.getTime(),
      });
    const withFast = make();
    const joseOnly = make();
    assert.ok(Reflect.get(joseOnly, 'hmacFast') instanceof HmacJwtVerifier);
    Reflect.set(joseOnly, 'hmacFast', undefined);
    const answer = async (a: Authenticator, t: string) => {
      try {
        return { ok: await a.authenticate(t) };
      } catch (err) {
        assert.ok(err instanceof ApiXError, String(err));
        return { code: err.code, message: err.message };
      }
    };
    for (const c of CASES.filter((x) => !x.cfg))
      assert.deepStrictEqual(await answer(withFast, c.token), await answer(joseOnly, c.token), c.name);
  });
});
