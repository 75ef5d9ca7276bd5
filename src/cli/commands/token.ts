/**
 * `apix token --sub alice --org acme --roles member [--ttl 1h] [--client-type MOBILE_APP]`: mints a JWT signed
 * with the node's secret. `--client-type` sets the `client_type` claim, the client type channel rules see.
 */
import { SignJWT } from 'jose';
import { loadConfig } from '../../config.ts';
import { parseArgs, stringOption } from '../args.ts';
import { resolveJwtSecret, signingSecretNotice } from '../dev-secret.ts';
import { CLIENT_TYPE_CLAIM, isClientType } from '../../auth/client-type.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m)
    throw new InternalError('APIX_ERR_INVALID_SETTING', `invalid duration "${text}" (e.g. 90s, 15m, 1h, 7d)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit as 'ms']!;
}

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const sub = stringOption(args, 'sub');
  const org = stringOption(args, 'org');
  if (!sub || !org) {
    process.stderr.write(
      'usage: apix token --sub <user> --org <org> [--roles member,admin] [--ttl 1h] [--client-type <type>]\n',
    );
    return 2;
  }
  const clientType = stringOption(args, 'client-type');
  if (clientType !== undefined && !isClientType(clientType)) {
    process.stderr.write(
      'apix token: --client-type must be WEB_APP, MOBILE_APP, SDK_WIDGET, API_CLIENT or INTERNAL_SERVICE\n',
    );
    return 2;
  }
  const config = loadConfig(env);
  const { secret, generated } = resolveJwtSecret(config, true);
  if (!secret) {
    process.stderr.write(
      'apix token: tokens are verified with a JWKS URL or public key here; mint them with your issuer\n',
    );
    return 2;
  }
  process.stderr.write(signingSecretNotice(config, generated));
  const roles = (stringOption(args, 'roles') ?? 'member').split(',').filter(Boolean);
  const ttlMs = parseDuration(stringOption(args, 'ttl') ?? '1h');
  let jwt = new SignJWT({ org, roles, ...(clientType ? { [CLIENT_TYPE_CLAIM]: clientType } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor((Date.now() + ttlMs) / 1000));
  if (config.auth.issuer) jwt = jwt.setIssuer(config.auth.issuer);
  if (config.auth.audience) jwt = jwt.setAudience(config.auth.audience);
  process.stdout.write((await jwt.sign(new TextEncoder().encode(secret))) + '\n');
  return 0;
}
