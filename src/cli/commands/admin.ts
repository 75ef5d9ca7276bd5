/**
 * `apix admin`: operates a running gateway through its admin API (a JWT with role `admin`; actions are
 * limited to that token's organization and recorded in the audit trail).
 *
 *   apix admin suspend <sessionId> [--user <userId>] [--reason <text>] [--ttl 1h]
 *   apix admin suspend <userId> --scope user [--reason <text>] [--ttl 1h]   (every session of the user)
 *   apix admin suspend <keyId> --scope key [--reason <text>] [--ttl 1h]     (every connection of the key)
 *   apix admin resume <sessionId> [--user <userId>] | <userId> --scope user | <keyId> --scope key
 *   apix admin kick <connectionId> [--reason <text>]
 *   apix admin revoke-token <jti> [--exp <token exp, seconds>] [--reason <text>]
 *   apix admin revoke-user <userId> [--reason <text>]   (every token of the user issued up to now)
 *   apix admin stats
 *   apix admin dead-letters list [--channel <channel>] [--limit N]
 *   apix admin dead-letters inspect <eventId>
 *   apix admin dead-letters replay|purge <eventId>... | --channel <channel> | --all
 *   apix admin channel-settings <channel> [--coalesce-key <payload field>|none]
 *
 * `--url` (or APIX_URL; default http://127.0.0.1:8080) and `--token` (or APIX_ADMIN_TOKEN) on each.
 */
import { parseArgs, stringOption, type ParsedArgs } from '../args.ts';
import { parseDuration } from './token.ts';

const USAGE = `usage:
  apix admin suspend <sessionId> [--user <userId>] [--reason <text>] [--ttl 1h] --url <http://host:port> --token <admin jwt>
  apix admin suspend <userId> --scope user [--reason <text>] [--ttl 1h] --url ... --token ...
  apix admin suspend <keyId> --scope key [--reason <text>] [--ttl 1h] --url ... --token ...
  apix admin resume <sessionId> [--user <userId>] | <userId> --scope user | <keyId> --scope key --url ... --token ...
  apix admin kick <connectionId> [--reason <text>] --url ... --token ...
  apix admin revoke-token <jti> [--exp <token exp, seconds>] [--reason <text>] --url ... --token ...
  apix admin revoke-user <userId> [--reason <text>] --url ... --token ...
  apix admin stats --url ... --token ...
  apix admin dead-letters list [--channel <channel>] [--limit N] --url ... --token ...
  apix admin dead-letters inspect <eventId> --url ... --token ...
  apix admin dead-letters replay|purge <eventId>... | --channel <channel> | --all --url ... --token ...
  apix admin channel-settings <channel> [--coalesce-key <payload field>|none] --url ... --token ...
(--url defaults to $APIX_URL or http://127.0.0.1:8080; --token to $APIX_ADMIN_TOKEN)`;

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const [action, target] = args.positionals;
  const known =
    ((action === 'suspend' ||
      action === 'resume' ||
      action === 'kick' ||
      action === 'revoke-token' ||
      action === 'revoke-user' ||
      action === 'channel-settings') &&
      target !== undefined) ||
    action === 'stats' ||
    (action === 'dead-letters' && DEAD_LETTER_VERBS.includes(target ?? ''));
  if (!known || args.options.help) {
    process.stderr.write(`${USAGE}\n`);
    return args.options.help ? 0 : 2;
  }
  const token = stringOption(args, 'token') ?? env.APIX_ADMIN_TOKEN;
  if (!token) {
    process.stderr.write('apix admin: --token <admin jwt> (or APIX_ADMIN_TOKEN) is required\n');
    return 2;
  }
  let base: URL;
  try {
    base = new URL(stringOption(args, 'url') ?? env.APIX_URL ?? 'http://127.0.0.1:8080');
  } catch {
    process.stderr.write('apix admin: --url must be an http(s) URL such as http://127.0.0.1:8080\n');
    return 2;
  }
  const request = adminRequest(args, action, target);
  if (typeof request === 'number') return request;
  return send(base, token, action, request);
}

const DEAD_LETTER_VERBS = ['list', 'inspect', 'replay', 'purge'];

interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly body: Record<string, unknown> | undefined;
}

/** The admin API request of the action, or the exit code after writing why not. */
function adminRequest(args: ParsedArgs, action: string, target: string | undefined): AdminRequest | number {
  const reason = stringOption(args, 'reason');
  let method = 'POST';
  let path: string;
  let body: Record<string, unknown> | undefined;
  switch (action) {
    case 'suspend':
    case 'resume':
      return suspensionRequest(args, action, target!, reason);
    case 'dead-letters':
      return deadLetterRequest(args, target!, args.positionals.slice(2));
    case 'channel-settings': {
      path = `/v1/admin/channels/${encodeURIComponent(target!)}/settings`;
      const key = stringOption(args, 'coalesce-key');
      if (key === undefined) method = 'GET';
      else body = { coalesceKey: key === 'none' ? null : key };
      break;
    }
    case 'kick':
      path = `/v1/admin/connections/${encodeURIComponent(target!)}/kick`;
      body = reason ? { reason } : {};
      break;
    case 'revoke-token': {
      const exp = stringOption(args, 'exp');
      if (exp !== undefined && !/^\d{1,12}$/.test(exp)) {
        process.stderr.write("apix admin: --exp must be the token's exp claim, in seconds since epoch\n");
        return 2;
      }
      path = '/v1/admin/revocations';
      body = { jti: target!, ...(exp ? { expiresAt: Number(exp) } : {}), ...(reason ? { reason } : {}) };
      break;
    }
    case 'revoke-user':
      path = '/v1/admin/revocations';
      body = { userId: target!, ...(reason ? { reason } : {}) };
      break;
    default:
      method = 'GET';
      path = '/v1/admin/stats';
  }
  return { method, path, body };
}

/** `suspend` or `resume` of a session, a user (`--scope user`) or an API key (`--scope key`). */
function suspensionRequest(
  args: ParsedArgs,
  action: 'suspend' | 'resume',
  target: string,
  reason: string | undefined,
): AdminRequest | number {
  const user = stringOption(args, 'user');
  const scope = stringOption(args, 'scope') ?? 'session';
  if (scope !== 'session' && scope !== 'user' && scope !== 'key') {
    process.stderr.write('apix admin: --scope must be session, user or key\n');
    return 2;
  }
  const ttl = stringOption(args, 'ttl');
  let ttlMs: number | undefined;
  try {
    ttlMs = ttl !== undefined && action === 'suspend' ? parseDuration(ttl) : undefined;
  } catch (err) {
    process.stderr.write(`apix admin: --ttl: ${(err as Error).message}\n`);
    return 2;
  }
  const collection = { session: 'sessions', user: 'users', key: 'keys' }[scope];
  return {
    method: 'POST',
    path: `/v1/admin/${collection}/${encodeURIComponent(target)}/${action}`,
    body: {
      ...(user && scope === 'session' ? { userId: user } : {}),
      ...(reason && action === 'suspend' ? { reason } : {}),
      ...(ttlMs !== undefined ? { ttlMs } : {}),
    },
  };
}

/** `dead-letters list|inspect|replay|purge` (src/dead-letters/dead-letter-admin.ts). */
function deadLetterRequest(args: ParsedArgs, verb: string, eventIds: string[]): AdminRequest | number {
  const channel = stringOption(args, 'channel');
  if (verb === 'list') {
    const query = new URLSearchParams();
    if (channel) query.set('channel', channel);
    const limit = stringOption(args, 'limit');
    if (limit) query.set('limit', limit);
    return { method: 'GET', path: `/v1/admin/dead-letters?${query}`, body: undefined };
  }
  if (verb === 'inspect') {
    if (eventIds.length !== 1) {
      process.stderr.write('apix admin dead-letters inspect: give one event id\n');
      return 2;
    }
    return {
      method: 'GET',
      path: `/v1/admin/dead-letters/${encodeURIComponent(eventIds[0]!)}`,
      body: undefined,
    };
  }
  const all = args.options.all === true || args.options.all === 'true';
  if (eventIds.length === 0 && !channel && !all) {
    process.stderr.write(`apix admin dead-letters ${verb}: give event ids, --channel <channel> or --all\n`);
    return 2;
  }
  return {
    method: 'POST',
    path: `/v1/admin/dead-letters/${verb}`,
    body: {
      ...(eventIds.length ? { eventIds } : {}),
      ...(channel ? { channel } : {}),
      ...(all ? { all: true } : {}),
    },
  };
}

/** Sends the request and prints the answer; the exit code. */
async function send(
  base: URL,
  token: string,
  action: string,
  { method, path, body }: AdminRequest,
): Promise<number> {
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    process.stderr.write(`apix admin: cannot reach ${base.origin}: ${(err as Error).message}\n`);
    return 1;
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      const e = JSON.parse(text) as { code?: string; message?: string };
      message = `${e.code ?? res.status}: ${e.message ?? text}`;
    } catch {
      // not JSON: print as is
    }
    process.stderr.write(`apix admin ${action}: ${message}\n`);
    return 1;
  }
  const pretty = action === 'stats' || action === 'dead-letters' || action === 'channel-settings';
  process.stdout.write(pretty ? `${JSON.stringify(JSON.parse(text), null, 2)}\n` : `${text}\n`);
  return 0;
}
