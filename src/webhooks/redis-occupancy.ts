/** Channel occupancy in Redis (see occupancy.ts): one set of node ids per channel, changed by a Lua script. */
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type { ChannelOccupancy } from './occupancy.ts';

export class RedisChannelOccupancy implements ChannelOccupancy {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  async change(key: string, nodeId: string, occupied: boolean): Promise<boolean> {
    const r = await runScript(
      this.client,
      'channel-occupancy',
      [this.keys.occupancy(key)],
      [nodeId, occupied ? '1' : '0'],
    );
    return Number(r) === 1;
  }
}
