/**
 * `apix keys create --org <org> [--scopes a,b] [--name n]` prints a new API key once (only its hash is
 * stored); `apix keys list --org <org> [--all] [--json]`; `apix keys revoke <keyId> --org <org>`.
 * Creating and revoking are recorded in the audit trail. On the database, or through a running node's
 * admin API (`--url`, or when that node holds the embedded database: src/cli/node-admin.ts).
 */
import { parseArgs, stringOption } from '../args.ts';
import { auditCliAction, cliActor } from '../database.ts';
import { ApiKeys } from '../../store/api-keys.ts';
import { isValidOrgId } from '@apix/protocol';
import { createRedisClients } from '../../redis/client.ts';
import { RedisKeys } from '../../redis/keys.ts';
import { revocationControlMessage } from '../../auth/revocation-store.ts';
import type { Config } from '../../config.ts';
import type { CliDatabase } from '../database.ts';
import type { ParsedArgs } from '../args.ts';
import { callNode, namedNode, withDatabaseOrNode, type NodeAdmin } from '../node-admin.ts';

const USAGE = `usage:
  apix keys create --org <org> [--scopes a,b] [--name <name>]
  apix keys list --org <org> [--all] [--json]
  apix keys revoke <keyId> --org <org>
each also with --url <http://host:port> [--token <admin jwt>]: through that node's admin API`;

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const [sub, keyId] = args.positionals;
  const org = stringOption(args, 'org');
  const known = sub === 'create' || sub === 'list' || (sub === 'revoke' && keyId !== undefined);
  if (!known || args.options.help || !isValidOrgId(org)) {
    if (org !== undefined && !isValidOrgId(org))
      process.stderr.write(
        'apix keys: --org must match [A-Za-z0-9_-]{1,64} and not be "_" (the shared namespace)\n',
      );
    process.stderr.write(`${USAGE}\n`);
    return args.options.help ? 0 : 2;
  }
  const node = await namedNode(args, env, org, 'apix keys');
  if (typeof node === 'number') return node;
  const command: KeysCommand = { sub: sub!, org, keyId, args };
  if (node) return onNode(node, command);
  return withDatabaseOrNode(
    env,
    org,
    'apix keys',
    (cli) => onDatabase(cli, command),
    (n) => onNode(n, command),
  );
}

interface KeysCommand {
  readonly sub: string;
  readonly org: string;
  readonly keyId: string | undefined;
  readonly args: ParsedArgs;
}

function scopesOf(args: ParsedArgs): string[] {
  return (stringOption(args, 'scopes') ?? '*')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function printKeys(rows: readonly Record<string, unknown>[], json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  else
    for (const k of rows) {
      const at = (v: unknown) => (v ? new Date(v as string).toISOString() : undefined);
      process.stdout.write(
        `${String(k.id)}  scopes=${(k.scopes as string[]).join(',')}  created=${at(k.createdAt)}` +
          `  lastUsed=${at(k.lastUsedAt) ?? '-'}${k.revokedAt ? `  REVOKED ${at(k.revokedAt)}` : ''}` +
          `${k.name ? `  name=${String(k.name)}` : ''}\n`,
      );
    }
}

/** The command through a running node's admin API (the token's organization). */
async function onNode(node: NodeAdmin, { sub, keyId, args }: KeysCommand): Promise<number> {
  if (sub === 'create') {
    const name = stringOption(args, 'name');
    const r = await callNode(node, 'apix keys', 'POST', '/v1/admin/keys', {
      scopes: scopesOf(args),
      ...(name !== undefined ? { name } : {}),
    });
    if (typeof r === 'number') return r;
    process.stdout.write(`${String(r.key)}\n`);
    process.stderr.write(
      `key ${String(r.keyId)} (scopes: ${(r.scopes as string[]).join(',')}); it is shown only once\n`,
    );
    return 0;
  }
  if (sub === 'list') {
    const r = await callNode(
      node,
      'apix keys',
      'GET',
      `/v1/admin/keys${args.options.all === true ? '?all=true' : ''}`,
    );
    if (typeof r === 'number') return r;
    printKeys(r.keys as Record<string, unknown>[], args.options.json === true);
    return 0;
  }
  const r = await callNode(node, 'apix keys', 'POST', `/v1/admin/keys/${encodeURIComponent(keyId!)}/revoke`);
  if (typeof r === 'number') return r;
  process.stdout.write(
    `revoked ${keyId}; every gateway drops it and cuts its connections (4001) within a second\n`,
  );
  return 0;
}

/** The command on the database (the node is stopped, or shares DATABASE_URL). */
async function onDatabase(cli: CliDatabase, { sub, org, keyId, args }: KeysCommand): Promise<number> {
  const keys = new ApiKeys(cli.db.prisma);
  if (sub === 'create') {
    const scopes = scopesOf(args);
    const name = stringOption(args, 'name');
    const { key, record } = await keys.create(org, { scopes, name, createdBy: cliActor() });
    await auditCliAction(cli, {
      orgId: org,
      action: 'admin.keys.create',
      target: record.id,
      detail: { scopes, name: name ?? null },
    });
    process.stdout.write(`${key}\n`);
    process.stderr.write(
      `key ${record.id} for ${org} (scopes: ${scopes.join(',')}); it is shown only once\n`,
    );
    return 0;
  }
  if (sub === 'list') {
    const rows = await keys.list(org, { includeRevoked: args.options.all === true });
    printKeys(rows as unknown as Record<string, unknown>[], args.options.json === true);
    return 0;
  }
  const revoked = await keys.revoke(org, keyId!);
  if (!revoked) {
    process.stderr.write(`apix keys: ${org} has no active key ${keyId}\n`);
    return 1;
  }
  const told = await tellGateways(cli.config, org, keyId!);
  await auditCliAction(cli, {
    orgId: org,
    action: 'admin.keys.revoke',
    target: keyId,
    detail: { gatewaysTold: told },
  });
  process.stdout.write(
    told
      ? `revoked ${keyId}; every gateway drops it and cuts its connections (4001) within a second\n`
      : `revoked ${keyId} (without REDIS_URL the gateways stop accepting it within their key cache time, APIX_API_KEY_CACHE_MS, and live connections stay up)\n`,
  );
  return 0;
}

/**
 * With REDIS_URL: a control message to every gateway node (as the nodes send each other), so each drops
 * the key from its cache and closes the connections authenticated with it. False without Redis.
 */
async function tellGateways(config: Config, orgId: string, keyId: string): Promise<boolean> {
  if (!config.redisUrl) return false;
  try {
    const clients = await createRedisClients(config.redisUrl, { connectionName: 'apix:cli' });
    try {
      const message = revocationControlMessage(
        { kind: 'apiKey', orgId, keyId },
        `cli-${process.pid}`,
        'API key revoked',
      );
      await clients.command.publish(new RedisKeys(config.redisPrefix).control(), JSON.stringify(message));
      return true;
    } finally {
      await clients.close();
    }
  } catch (err) {
    process.stderr.write(
      `apix keys: the key is revoked, but the gateways could not be told over Redis (${(err as Error).message}); ` +
        'they stop accepting it within their key cache time\n',
    );
    return false;
  }
}
