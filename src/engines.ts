/**
 * Picks the engines from the config: in memory by default, Redis when REDIS_URL is set.
 */
import type { Config } from './config.ts';
import { systemClock } from './clock.ts';
import type { Clock } from './clock.ts';
import { memoryEngines } from './node.ts';
import type { Engines } from './node.ts';

export async function createEngines(config: Config, clock: Clock = systemClock): Promise<Engines> {
  if (config.redisUrl) throw new Error('REDIS_URL is set but the Redis engine is not wired yet');
  return memoryEngines(config, clock);
}
