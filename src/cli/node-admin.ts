/**
 * `apix keys` and `apix channels` on a running node: through its admin API instead of the database, when
 * - `--url` (or APIX_URL) names a node: with `--token` (or APIX_ADMIN_TOKEN), else a token this CLI mints
 *   with the node's secret (as `apix token` does: APIX_JWT_SECRET, else the data dir's development secret);
 * - or the embedded database is held by a node on this data dir (its lock): the CLI cannot open it, so it
 *   asks that node, at 127.0.0.1:APIX_PORT, with a token minted as above.
 * The admin API acts on the token's organization.
 */
import { SignJWT } from 'jose';
import { loadConfig } from '../config.ts';
import type { Config } from '../config.ts';
import { DataDirInUseError } from '../store/dir-lock.ts';
import { stringOption, type ParsedArgs } from './args.ts';
import { withCliDatabase, type CliDatabase } from './database.ts';
import { resolveJwtSecret } from './dev-secret.ts';

export interface NodeAdmin {
  readonly base: URL;
  readonly token: string;
}

/** An admin token of `org`, five minutes long, signed with the node's secret; undefined without one. */
async function mintAdminToken(config: Config, org: string): Promise<string | undefined> {
  const { secret } = resolveJwtSecret(config, false);
  if (!secret) return undefined;
  let jwt = new SignJWT({ org, roles: ['admin'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('cli')
    .setIssuedAt()
    .setExpirationTime('5m');
  if (config.auth.issuer) jwt = jwt.setIssuer(config.auth.issuer);
  if (config.auth.audience) jwt = jwt.setAudience(config.auth.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

/**
 * The node named by `--url`/APIX_URL, undefined when none is, or the exit code after writing why it cannot
 * be used.
 */
export async function namedNode(
  args: ParsedArgs,
  env: NodeJS.ProcessEnv,
  org: string,
  command: string,
): Promise<NodeAdmin | undefined | number> {
  const url = stringOption(args, 'url') ?? env.APIX_URL;
  if (url === undefined) return undefined;
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    process.stderr.write(`${command}: --url must be an http(s) URL such as http://127.0.0.1:8080\n`);
    return 2;
  }
  const token =
    stringOption(args, 'token') ?? env.APIX_ADMIN_TOKEN ?? (await mintAdminToken(loadConfig(env), org));
  if (token === undefined) {
    process.stderr.write(
      `${command}: --token <admin jwt> (or APIX_ADMIN_TOKEN) is required with --url here\n`,
    );
    return 2;
  }
  return { base, token };
}

/**
 * Runs `onDatabase`; when the embedded database is held by a running node, runs `onNode` against that node
 * instead (saying so on stderr), if this CLI can mint its admin token.
 */
export async function withDatabaseOrNode(
  env: NodeJS.ProcessEnv,
  org: string,
  command: string,
  onDatabase: (cli: CliDatabase) => Promise<number>,
  onNode: (node: NodeAdmin) => Promise<number>,
): Promise<number> {
  try {
    return await withCliDatabase(env, onDatabase);
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    const config = loadConfig(env);
    const token = await mintAdminToken(config, org);
    if (token === undefined) throw err;
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    const base = new URL(
      `${config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${config.port}`,
    );
    process.stderr.write(
      `${command}: ${err.message}\n${command}: asking the running node's admin API at ${base.origin} instead\n`,
    );
    return onNode({ base, token });
  }
}

/** An admin API call: the JSON answer, or the exit code after writing the error. */
export async function callNode(
  node: NodeAdmin,
  command: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Record<string, unknown> | number> {
  let res: Response;
  try {
    res = await fetch(new URL(path, node.base), {
      method,
      headers: {
        Authorization: `Bearer ${node.token}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    process.stderr.write(`${command}: cannot reach ${node.base.origin}: ${(err as Error).message}\n`);
    return 1;
  }
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { message: text };
  }
  if (!res.ok) {
    process.stderr.write(`${command}: ${String(json.code ?? res.status)}: ${String(json.message ?? text)}\n`);
    return 1;
  }
  return json;
}
