#!/usr/bin/env node
/**
 * The `apix` command. Each subcommand lives in cli/commands/<name>.ts and exports
 * `run(argv, env): Promise<number>` (the exit code). This file and those commands are the only places that
 * read process.env; they pass it to loadConfig.
 */
const COMMANDS: Record<string, string> = {
  serve: 'start a gateway node (embedded defaults; REDIS_URL / DATABASE_URL for the shared engines)',
  token: 'mint a development JWT: apix token --sub alice --org acme --roles member [--ttl 1h]',
  keys: 'manage API keys: apix keys create|list|revoke --org <org> (on a running node through its admin API)',
  channels: 'channel settings: apix channels set|set-permissions|get|list <channel> --org <org>',
  connections: 'connection records: apix connections list --org <org> [--status S] [--limit N]',
  migrate: 'apply database migrations',
  audit: 'the audit trail: apix audit verify|tail --org <org>',
  admin: 'operate a running gateway: suspend, resume, kick, revoke-token, revoke-user, dead-letters',
  webhooks: 'manage webhooks of a running gateway: apix webhooks add|list|remove|test|dead-letters|replay',
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write('usage: apix <command> [options]\n\n');
    for (const [cmd, text] of Object.entries(COMMANDS)) process.stdout.write(`  ${cmd.padEnd(10)} ${text}\n`);
    return name ? 0 : 2;
  }
  if (!Object.prototype.hasOwnProperty.call(COMMANDS, name)) {
    process.stderr.write(`apix: unknown command "${name}" (see apix --help)\n`);
    return 2;
  }
  let mod: { run: (argv: string[], env: NodeJS.ProcessEnv) => Promise<number> };
  try {
    mod = await import(`./commands/${name}.ts`);
  } catch (err) {
    process.stderr.write(`apix: command "${name}" is not available: ${(err as Error).message}\n`);
    return 2;
  }
  return mod.run(rest, process.env);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`apix: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
