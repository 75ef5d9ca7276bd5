/**
 * Embedded mode without APIX_JWT_SECRET: a development secret kept in the data dir, created once, so
 * that `apix serve` and `apix token` agree without configuration.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.ts';

export function devSecretPath(dataDir: string): string {
  return join(dataDir, 'dev-jwt-secret');
}

/** The secret tokens are signed with: the configured one, else the data dir's (created if asked). */
export function resolveJwtSecret(
  config: Config,
  create: boolean,
): { secret: string | undefined; generated: boolean } {
  if (config.auth.jwtSecret) return { secret: config.auth.jwtSecret, generated: false };
  if (config.auth.jwksUrl || config.auth.publicKeyPem) return { secret: undefined, generated: false };
  const path = devSecretPath(config.dataDir);
  if (existsSync(path)) return { secret: readFileSync(path, 'utf8').trim(), generated: false };
  if (!create) return { secret: undefined, generated: false };
  mkdirSync(config.dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(path, secret + '\n', { mode: 0o600 });
  return { secret, generated: true };
}

export function withSecret(config: Config, secret: string | undefined): Config {
  return secret === undefined ? config : { ...config, auth: { ...config.auth, jwtSecret: secret } };
}
