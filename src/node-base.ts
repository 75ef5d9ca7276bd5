/** What every part of a node is given: its identity, time, randomness, log and hooks (node-wiring.ts makes it). */
import type { Config } from './config.ts';
import type { Clock, Random } from './clock.ts';
import type { Logger } from './log.ts';
import type { HookBus } from './hooks.ts';

export interface NodeBase {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly hooks: HookBus;
}
