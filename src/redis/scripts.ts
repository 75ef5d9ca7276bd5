/**
 * The Lua scripts in ./scripts, read once at startup and registered on a client once (ioredis then runs
 * them by EVALSHA, falling back to EVAL when a restarted Redis has forgotten them). File names are
 * `<name>-<numKeys>.lua`, as in BullMQ; each file starts with its Input/Output contract.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RedisClient } from './client.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export type ScriptName =
  | 'publish'
  | 'publish-live'
  | 'history'
  | 'queue-push'
  | 'queue-drain'
  | 'presence-join'
  | 'presence-list'
  | 'rate-limit'
  | 'revoke-user'
  | 'session-index'
  | 'stream-start'
  | 'stream-append'
  | 'stream-end'
  | 'stream-compacted'
  | 'webhook-add'
  | 'webhook-claim'
  | 'webhook-dead'
  | 'channel-occupancy'
  | 'occupancy-lease-drop';

interface ScriptSource {
  readonly lua: string;
  readonly numberOfKeys: number;
  /** The ioredis command name: `apix_<name>` with '-' as '_'. */
  readonly command: string;
}

const dir = fileURLToPath(new URL('./scripts/', import.meta.url));

const sources: ReadonlyMap<string, ScriptSource> = new Map(
  readdirSync(dir)
    .filter((f) => f.endsWith('.lua'))
    .map((f) => {
      const m = /^(.+)-(\d+)\.lua$/.exec(f);
      if (!m)
        throw new InternalError(
          'APIX_ERR_REDIS_SCRIPT',
          `Lua script ${f} must be named <name>-<numKeys>.lua`,
        );
      const name = m[1]!;
      const source: ScriptSource = {
        lua: readFileSync(dir + f, 'utf8'),
        numberOfKeys: Number(m[2]),
        command: `apix_${name.replace(/-/g, '_')}`,
      };
      return [name, source] as const;
    }),
);

const registered = new WeakSet<RedisClient>();

function register(client: RedisClient): void {
  if (registered.has(client)) return;
  for (const s of sources.values())
    client.defineCommand(s.command, { lua: s.lua, numberOfKeys: s.numberOfKeys });
  registered.add(client);
}

/** Runs a script; `keys.length` must be the script's numKeys (checked, since a mismatch corrupts data). */
export function runScript(
  client: RedisClient,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const s = sources.get(name);
  if (s === undefined) throw new InternalError('APIX_ERR_REDIS_SCRIPT', `no Lua script named ${name}`);
  if (keys.length !== s.numberOfKeys)
    throw new InternalError(
      'APIX_ERR_REDIS_SCRIPT',
      `script ${name} takes ${s.numberOfKeys} keys, got ${keys.length}`,
    );
  register(client);
  const fn = (client as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[
    s.command
  ]!;
  return fn.call(client, ...keys, ...args);
}

/** Queues a script call on a pipeline (the client must have run `prepareScripts` first). */
export function pipelineScript(
  pipeline: unknown,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): void {
  const s = sources.get(name)!;
  const fn = (pipeline as Record<string, (...a: (string | number)[]) => unknown>)[s.command]!;
  fn.call(pipeline, ...keys, ...args);
}

/** Registers every script on the client (before building pipelines that call them). */
export function prepareScripts(client: RedisClient): void {
  register(client);
}
