/**
 * `apix channels set-permissions <channel> --org <org> --json '{...}'` stores a channel's own permissions
 * (docs/protocol.md §5); `apix channels set <channel> --org <org> [--durable true|false] [--encrypted true|false]
 * [--coalesce-key <payload field>|none]` its delivery settings; `apix channels get <channel> --org <org>`; `apix channels list --org <org>`.
 * On the database, or through a running node's admin API (`--url`, or when that node holds the embedded
 * database: src/cli/node-admin.ts).
 */
import { parseArgs, stringOption, type ParsedArgs } from '../args.ts';
import { auditCliAction, type CliDatabase } from '../database.ts';
import { callNode, namedNode, withDatabaseOrNode, type NodeAdmin } from '../node-admin.ts';
import { ChannelPermissionsSchema, ChannelRecords } from '../../store/channel-records.ts';
import type { ChannelPermissions } from '../../subscriptions/permissions.ts';
import { isValidOrgId, parseChannel, type ChannelType } from '@apix/protocol';
import { settingsFromJson } from '../../store/channel-records.ts';
import { COALESCE_KEY_RE, type ChannelSettings } from '../../subscriptions/channel-registry.ts';
import { loadConfig } from '../../config.ts';

const USAGE = `usage:
  apix channels set-permissions <channel> --org <org> --json '<permissions>'
  apix channels set <channel> --org <org> [--durable true|false] [--encrypted true|false]
                   [--coalesce-key <payload field>|none]
  apix channels get <channel> --org <org>
  apix channels list --org <org>
set, set-permissions and get also with --url <http://host:port> [--token <admin jwt>]: through that
node's admin API (used by itself when a node holds the embedded database)`;

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const [sub, channel] = args.positionals;
  const org = stringOption(args, 'org');
  const known =
    sub === 'list' ||
    ((sub === 'set-permissions' || sub === 'get' || sub === 'set') && channel !== undefined);
  if (!known || args.options.help || !isValidOrgId(org)) {
    process.stderr.write(`${USAGE}\n`);
    return args.options.help ? 0 : 2;
  }
  let type: ChannelType | undefined;
  if (channel !== undefined) {
    const parsed = parseChannel(channel);
    if (!parsed.ok) {
      process.stderr.write(`apix channels: invalid channel "${channel}": ${parsed.reason}\n`);
      return 2;
    }
    type = parsed.channel.type;
  }
  let permissions: ChannelPermissions = {};
  if (sub === 'set-permissions') {
    const parsed = permissionsOption(args);
    if (typeof parsed === 'number') return parsed;
    permissions = parsed;
  }
  let changes: SettingChanges = {};
  if (sub === 'set') {
    const parsed = settingFlags(args, env);
    if (typeof parsed === 'number') return parsed;
    changes = parsed;
  }
  const command: ChannelCommand = { sub: sub!, org, channel, type, permissions, changes };
  const node = await namedNode(args, env, org, 'apix channels');
  if (typeof node === 'number') return node;
  if (node) return onNode(node, command);
  return withDatabaseOrNode(
    env,
    org,
    'apix channels',
    (cli) => runOnDatabase(cli, command),
    (n) => onNode(n, command),
  );
}

/** The command through a running node's admin API (the token's organization). */
async function onNode(
  node: NodeAdmin,
  { sub, channel, permissions, changes }: ChannelCommand,
): Promise<number> {
  if (sub === 'list') {
    process.stderr.write(
      'apix channels list reads the database: stop the node, or share DATABASE_URL; ' +
        '`apix channels get <channel>` asks a running node\n',
    );
    return 1;
  }
  const path = `/v1/admin/channels/${encodeURIComponent(channel!)}`;
  const r =
    sub === 'get'
      ? await callNode(node, 'apix channels', 'GET', `${path}/settings`)
      : sub === 'set'
        ? await callNode(node, 'apix channels', 'POST', `${path}/settings`, changes)
        : await callNode(node, 'apix channels', 'PUT', `${path}/permissions`, { permissions });
  if (typeof r === 'number') return r;
  process.stdout.write(
    sub === 'get' ? `${JSON.stringify(r.settings)}\n` : `${channel}: ${JSON.stringify(r.settings)}\n`,
  );
  return 0;
}

/** `coalesceKey: null` clears it. */
type SettingChanges = { durable?: boolean; encrypted?: boolean; coalesceKey?: string | null };

/** `--json` of `set-permissions`: the permissions, or the exit code after writing why not. */
function permissionsOption(args: ParsedArgs): ChannelPermissions | number {
  let json: unknown;
  try {
    json = JSON.parse(stringOption(args, 'json') ?? '');
  } catch {
    process.stderr.write('apix channels: --json must be a JSON object\n');
    return 2;
  }
  const r = ChannelPermissionsSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    process.stderr.write(
      `apix channels: invalid permissions at ${issue.path.join('.') || '(root)'}: ${issue.message} ` +
        '(expected {subscribe?, publish?, history?} rules of roles, clientTypes, scopes, users, deny)\n',
    );
    return 2;
  }
  return r.data;
}

/** `--durable`, `--encrypted` and `--coalesce-key` of `set`: the changes, or the exit code after writing why not. */
function settingFlags(args: ParsedArgs, env: NodeJS.ProcessEnv): SettingChanges | number {
  const flags: SettingChanges = {};
  const coalesceKey = stringOption(args, 'coalesce-key');
  if (coalesceKey !== undefined) {
    if (coalesceKey !== 'none' && !COALESCE_KEY_RE.test(coalesceKey)) {
      process.stderr.write(
        'apix channels: --coalesce-key must be a payload field name, or none to clear it\n',
      );
      return 2;
    }
    flags.coalesceKey = coalesceKey === 'none' ? null : coalesceKey;
  }
  for (const name of ['durable', 'encrypted']) {
    const v = stringOption(args, name);
    if (v === undefined) continue;
    if (v !== 'true' && v !== 'false') {
      process.stderr.write(`apix channels: --${name} must be true or false\n`);
      return 2;
    }
    flags[name as 'durable' | 'encrypted'] = v === 'true';
  }
  if (Object.keys(flags).length === 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  // Refused here rather than at the first publish: the gateways need the keys (set the same on all).
  if (flags.encrypted === true && loadConfig(env).encryption === undefined) {
    process.stderr.write(
      'apix channels: --encrypted true needs APIX_ENCRYPTION_KEYS (the same keys as the gateway nodes); ' +
        'without them publishing to the channel is refused\n',
    );
    return 1;
  }
  return flags;
}

interface ChannelCommand {
  readonly sub: string;
  readonly org: string;
  readonly channel: string | undefined;
  readonly type: ChannelType | undefined;
  readonly permissions: ChannelPermissions;
  readonly changes: SettingChanges;
}

/** The subcommand's reads and writes, once its arguments are checked. */
async function runOnDatabase(
  cli: CliDatabase,
  { sub, org, channel, type, permissions, changes }: ChannelCommand,
): Promise<number> {
  const channels = new ChannelRecords(cli.db.prisma);
  if (sub === 'set') {
    const current = await channels.get(org, channel!, type!);
    const { coalesceKey, ...flags } = changes;
    const { coalesceKey: previousKey, ...kept } = settingsFromJson(current?.permissions);
    const key = coalesceKey === undefined ? previousKey : (coalesceKey ?? undefined);
    const settings: ChannelSettings = {
      ...kept,
      ...flags,
      ...(key !== undefined ? { coalesceKey: key } : {}),
    };
    const row = await channels.setSettings(org, channel!, settings);
    await auditCliAction(cli, {
      orgId: org,
      action: 'admin.channels.set_settings',
      target: channel,
      detail: changes,
    });
    process.stdout.write(
      `${row.name.slice(row.name.indexOf('/') + 1)}: ${JSON.stringify(row.permissions)}\n`,
    );
    return 0;
  }
  if (sub === 'list') {
    for (const c of await channels.list(org))
      process.stdout.write(
        `${c.name.slice(c.name.indexOf('/') + 1)}  ${c.type}  subscribers=${c.subscribers}  ${JSON.stringify(c.permissions)}\n`,
      );
    return 0;
  }
  if (sub === 'get') {
    const row = await channels.get(org, channel!, type!);
    if (!row) {
      process.stderr.write(`apix channels: ${channel} has no record in ${org}\n`);
      return 1;
    }
    process.stdout.write(`${JSON.stringify(row.permissions)}\n`);
    return 0;
  }
  const row = await channels.setPermissions(org, channel!, permissions);
  await auditCliAction(cli, {
    orgId: org,
    action: 'admin.channels.set_permissions',
    target: channel,
    detail: { permissions },
  });
  process.stdout.write(`${row.name.slice(row.name.indexOf('/') + 1)}: ${JSON.stringify(row.permissions)}\n`);
  return 0;
}
