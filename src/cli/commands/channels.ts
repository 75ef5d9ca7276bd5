/**
 * `apix channels set-permissions <channel> --org <org> --json '{...}'` stores a channel's own permissions
 * (PROTOCOL.md 5); `apix channels get <channel> --org <org>`; `apix channels list --org <org>`.
 */
import { parseArgs, stringOption } from '../args.ts';
import { auditCliAction, withCliDatabase } from '../database.ts';
import { ChannelPermissionsSchema, ChannelRecords } from '../../store/channel-records.ts';
import type { ChannelPermissions } from '../../subscriptions/permissions.ts';
import { isValidOrgId, parseChannel, type ChannelType } from '../../protocol/index.ts';

const USAGE = `usage:
  apix channels set-permissions <channel> --org <org> --json '<permissions>'
  apix channels get <channel> --org <org>
  apix channels list --org <org>`;

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const [sub, channel] = args.positionals;
  const org = stringOption(args, 'org');
  const known = sub === 'list' || ((sub === 'set-permissions' || sub === 'get') && channel !== undefined);
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
    permissions = r.data;
  }
  return withCliDatabase(env, async (cli) => {
    const channels = new ChannelRecords(cli.db.prisma);
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
    process.stdout.write(
      `${row.name.slice(row.name.indexOf('/') + 1)}: ${JSON.stringify(row.permissions)}\n`,
    );
    return 0;
  });
}
