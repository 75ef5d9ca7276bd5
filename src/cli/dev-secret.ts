/**
 * Embedded mode without APIX_JWT_SECRET: a development secret kept in the data dir, created once, so
 * that `apix serve` and `apix token` agree without configuration.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
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

/** The data dir when nothing sets APIX_DATA_DIR (src/config.ts). */
const DEFAULT_DATA_DIR = './.apix';

/**
 * The command that mints a token this node accepts: with `APIX_DATA_DIR=...` in front when the node's data
 * dir is not the default, since `apix token` run without it signs with another dir's secret.
 */
export function tokenCommand(dataDir: string, args: string): string {
  if (resolve(dataDir) === resolve(DEFAULT_DATA_DIR)) return `npx apix token ${args}`;
  const quoted = /^[\w./@:+-]+$/.test(dataDir) ? dataDir : `'${dataDir.replaceAll("'", "'\\''")}'`;
  return `APIX_DATA_DIR=${quoted} npx apix token ${args}`;
}

/**
 * The line `apix token` writes to stderr about the secret it signed with, so that a token from the wrong
 * data dir (`token signature is invalid` at the server) is explained at the source.
 */
export function signingSecretNotice(config: Config, generated: boolean): string {
  if (config.auth.jwtSecret) return 'apix token: signed with APIX_JWT_SECRET\n';
  const path = resolve(devSecretPath(config.dataDir));
  if (!generated) return `apix token: signed with the development secret in ${path}\n`;
  return (
    `apix token: no development secret existed; created a new one in ${path}.\n` +
    `apix token: a server running with another APIX_DATA_DIR will refuse this token ("token signature is invalid"); ` +
    `run this command with that server's APIX_DATA_DIR (its start banner prints the exact command).\n`
  );
}

export function withSecret(config: Config, secret: string | undefined): Config {
  return secret === undefined ? config : { ...config, auth: { ...config.auth, jwtSecret: secret } };
}
