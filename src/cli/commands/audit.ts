/**
 * `apix audit verify --org <org> [--json]`: checks the organization's hash chain; exit 1 when it finds
 * altered, removed or truncated entries. `apix audit tail --org <org> [--type t] [--since when]
 * [--limit n] [--follow] [--json]`: prints the latest entries, then (with --follow) new ones as they come.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, stringOption } from '../args.ts';
import { note, withCliDatabase } from '../database.ts';
import { queryAudit, type AuditEntryView } from '../../audit/query.ts';
import { verifyAuditChain } from '../../audit/verify.ts';

const USAGE = `usage:
  apix audit verify --org <org> [--json]
  apix audit tail --org <org> [--type <action|area>] [--since <iso|ms>] [--limit <n>] [--follow] [--json]`;

export async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  const [sub] = args.positionals;
  const org = stringOption(args, 'org');
  if (!sub || args.options.help || !org || (sub !== 'verify' && sub !== 'tail')) {
    process.stderr.write(`${USAGE}\n`);
    return args.options.help ? 0 : 2;
  }
  const json = args.options.json === true;
  return withCliDatabase(env, async ({ db }) => {
    if (sub === 'verify') {
      const started = Date.now();
      const v = await verifyAuditChain(db.prisma, org, {
        onProgress: (checked) => note(`verifying ${org}: ${checked} entries checked`),
      });
      if (json) process.stdout.write(`${JSON.stringify(v)}\n`);
      else {
        for (const p of v.problems) process.stdout.write(`${p.kind.padEnd(13)} seq ${p.seq}: ${p.message}\n`);
        process.stdout.write(
          `${v.ok ? 'OK' : 'TAMPERED'}: ${v.checked} entries, chain head seq ${v.headSeq} hash ${v.headHash} ` +
            `(${Date.now() - started} ms)\n`,
        );
      }
      return v.ok ? 0 : 1;
    }

    const limit = Number(stringOption(args, 'limit') ?? 20);
    const type = stringOption(args, 'type');
    const sinceText = stringOption(args, 'since');
    const since =
      sinceText === undefined
        ? undefined
        : /^\d+$/.test(sinceText)
          ? Number(sinceText)
          : Date.parse(sinceText);
    if (
      !Number.isInteger(limit) ||
      limit < 1 ||
      limit > 1000 ||
      (since !== undefined && !Number.isFinite(since))
    ) {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    const print = (e: AuditEntryView) =>
      process.stdout.write(
        json
          ? `${JSON.stringify(e)}\n`
          : `${e.createdAt}  #${e.seq}  ${e.action}  actor=${e.actor}${e.target ? `  target=${e.target}` : ''}` +
              `${e.remoteAddress ? `  from=${e.remoteAddress}` : ''}  ${JSON.stringify(e.detail)}\n`,
      );
    // The last `limit` matching entries: page backwards from the chain head by position.
    const head = await db.prisma.auditLog.findFirst({ where: { orgId: org }, orderBy: { seq: 'desc' } });
    let afterSeq = since === undefined && type === undefined ? Math.max(0, (head?.seq ?? 0) - limit) : 0;
    let page = await queryAudit(db.prisma, { orgId: org, afterSeq, since, type, limit: 1000 });
    const initial = page.entries.slice(-limit);
    for (const e of initial) print(e);
    afterSeq = Math.max(page.nextAfterSeq, head?.seq ?? 0);
    if (!args.options.follow) return 0;
    note(`following ${org} (Ctrl-C to stop)`);
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    while (!stop.signal.aborted) {
      page = await queryAudit(db.prisma, { orgId: org, afterSeq, type, limit: 1000 });
      for (const e of page.entries) print(e);
      afterSeq = page.nextAfterSeq;
      if (page.entries.length < 1000) await sleep(1_000, undefined, { signal: stop.signal }).catch(() => {});
    }
    return 0;
  });
}
