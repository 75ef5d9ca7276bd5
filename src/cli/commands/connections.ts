/**
 * `apix connections list --org <org> [--status CONNECTED|DISCONNECTED|RECONNECTING|SUSPENDED] [--limit N]`:
 * an organization's connection records (ApiXConnection), newest first, one line each.
 */
import { parseArgs, stringOption } from '../args.ts';
import { withCliDatabase } from '../database.ts';
import { ConnectionRecords } from '../../store/connection-records.ts';
import { ConnectionStatus, isValidOrgId } from '@apix/protocol';

const USAGE = `usage:
  apix connections list --org <org> [--status ${Object.values(ConnectionStatus).join('|')}] [--limit N]`;

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const org = stringOption(args, 'org');
  const status = stringOption(args, 'status');
  const limit = Number(stringOption(args, 'limit') ?? 100);
  const validStatus = status === undefined || (Object.values(ConnectionStatus) as string[]).includes(status);
  if (
    args.positionals[0] !== 'list' ||
    args.options.help ||
    !isValidOrgId(org) ||
    !validStatus ||
    !Number.isInteger(limit) ||
    limit < 1 ||
    limit > 100_000
  ) {
    process.stderr.write(`${USAGE}\n`);
    return args.options.help ? 0 : 2;
  }
  return withCliDatabase(env, async (cli) => {
    const rows = await new ConnectionRecords(cli.db.prisma).listByOrganization(
      org,
      status as ConnectionStatus | undefined,
      limit,
    );
    for (const r of rows)
      process.stdout.write(
        `${r.sessionId}  ${r.status}  user=${r.userId}  ${r.clientType}  connected=${r.connectedAt.toISOString()}  ` +
          `lastHeartbeat=${r.lastHeartbeat.toISOString()}  channels=${r.channels.join(',')}\n`,
      );
    return 0;
  });
}
