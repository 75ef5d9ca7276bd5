/**
 * `apix webhooks`: manages an organization's webhooks through a running gateway's admin API (a JWT with
 * role `admin` or `service`, or an API key; its organization only; every change is in the audit trail).
 *
 *   apix webhooks add <destination url> --events connection.opened,channel.occupied   (prints the secret once)
 *   apix webhooks list
 *   apix webhooks remove <id>
 *   apix webhooks test <id>            (sends one `webhook.test` event now)
 *   apix webhooks dead-letters         (batches given up on)
 *   apix webhooks replay <deadLetterId> | --all
 *
 * `--url` (or APIX_URL; default http://127.0.0.1:8080) and `--token` (or APIX_ADMIN_TOKEN) on each.
 */
import { WEBHOOK_EVENT_TYPES } from '@apix/protocol';
import { parseArgs, stringOption } from '../args.ts';
import type { ParsedArgs } from '../args.ts';

const USAGE = `usage:
  apix webhooks add <destination url> --events <type,type,...> --url <http://host:port> --token <admin jwt or API key>
  apix webhooks list --url ... --token ...
  apix webhooks remove <id> --url ... --token ...
  apix webhooks test <id> --url ... --token ...
  apix webhooks dead-letters --url ... --token ...
  apix webhooks replay <deadLetterId> | --all --url ... --token ...
(--url defaults to $APIX_URL or http://127.0.0.1:8080; --token to $APIX_ADMIN_TOKEN)
event types: ${WEBHOOK_EVENT_TYPES.join(', ')}`;

interface Request {
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
}

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const request = requestOf(args);
  if (request === undefined || args.options.help) {
    process.stderr.write(`${USAGE}\n`);
    return args.options.help ? 0 : 2;
  }
  if (typeof request === 'string') {
    process.stderr.write(`apix webhooks: ${request}\n`);
    return 2;
  }
  const token = stringOption(args, 'token') ?? env.APIX_ADMIN_TOKEN;
  if (!token) {
    process.stderr.write('apix webhooks: --token <admin jwt or API key> (or APIX_ADMIN_TOKEN) is required\n');
    return 2;
  }
  let base: URL;
  try {
    base = new URL(stringOption(args, 'url') ?? env.APIX_URL ?? 'http://127.0.0.1:8080');
  } catch {
    process.stderr.write('apix webhooks: --url must be an http(s) URL such as http://127.0.0.1:8080\n');
    return 2;
  }
  return send(base, token, args.positionals[0]!, request);
}

/** The admin API request of the subcommand; a string says what is wrong; undefined: print the usage. */
function requestOf(args: ParsedArgs): Request | string | undefined {
  const [sub, target] = args.positionals;
  const id = target !== undefined ? encodeURIComponent(target) : undefined;
  switch (sub) {
    case 'add': {
      const events = (stringOption(args, 'events') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (target === undefined) return undefined;
      if (events.length === 0) return '--events <type,...> is required';
      return { method: 'POST', path: '/v1/admin/webhooks', body: { url: target, events } };
    }
    case 'list':
      return { method: 'GET', path: '/v1/admin/webhooks' };
    case 'remove':
      return id && { method: 'DELETE', path: `/v1/admin/webhooks/${id}` };
    case 'test':
      return id && { method: 'POST', path: `/v1/admin/webhooks/${id}/test` };
    case 'dead-letters':
      return { method: 'GET', path: '/v1/admin/webhooks/dead-letters' };
    case 'replay':
      if (args.options.all === true)
        return { method: 'POST', path: '/v1/admin/webhooks/dead-letters/replay' };
      return id && { method: 'POST', path: `/v1/admin/webhooks/dead-letters/${id}/replay` };
    default:
      return undefined;
  }
}

async function send(base: URL, token: string, sub: string, { method, path, body }: Request): Promise<number> {
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    process.stderr.write(`apix webhooks: cannot reach ${base.origin}: ${(err as Error).message}\n`);
    return 1;
  }
  const text = await res.text();
  let json: { code?: string; message?: string; delivered?: boolean; error?: string; secret?: string } = {};
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    // not JSON: printed as is
  }
  if (!res.ok) {
    process.stderr.write(`apix webhooks ${sub}: ${json.code ?? res.status}: ${json.message ?? text}\n`);
    return 1;
  }
  process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  if (sub === 'add') process.stderr.write('the secret is shown only this once: keep it\n');
  if (sub === 'test' && json.delivered === false) {
    process.stderr.write(`apix webhooks test: not delivered: ${json.error ?? 'unknown error'}\n`);
    return 1;
  }
  return 0;
}
