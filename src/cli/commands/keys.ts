/**
 * `apix keys create --org <org> [--scopes a,b] [--name n]` prints a new API key once (only its hash is
 * stored); `apix keys list --org <org> [--all] [--json]`; `apix keys revoke <keyId> --org <org>`.
 * Creating and revoking are recorded in the audit trail.
 */
import { parseArgs, stringOption } from '../args.ts';
import { auditCliAction, cliActor, withCliDatabase } from '../database.ts';
import { ApiKeys } from '../../store/api-keys.ts';
import { isValidOrgId } from '@apix/protocol';
import { createRedisClients } from '../../redis/client.ts';
import { RedisKeys } from '../../redis/keys.ts';
import { revocationControlMessage } from '../../auth/revocation-store.ts';
import type { Config } from '../../config.ts';

const USAGE = `usage:
  apix keys create --org <org> [--scopes a,b] [--name <name>]
  apix keys list --org <org> [--all] [--json]
  apix keys revoke <keyId> --org <org>`;

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
  return withCliDatabase(env, async (cli) => {
    const keys = new ApiKeys(cli.db.prisma);
    if (sub === 'create') {
      const scopes = (stringOption(args, 'scopes') ?? '*')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
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
      if (args.options.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
      else
        for (const k of rows)
          process.stdout.write(
            `${k.id}  scopes=${k.scopes.join(',')}  created=${k.createdAt.toISOString()}` +
              `  lastUsed=${k.lastUsedAt?.toISOString() ?? '-'}${k.revokedAt ? `  REVOKED ${k.revokedAt.toISOString()}` : ''}` +
              `${k.name ? `  name=${k.name}` : ''}\n`,
          );
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
  });
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
