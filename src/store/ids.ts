/** Row ids generated in the process (batched raw inserts cannot use Prisma's `@default(cuid())`). */
import { randomFillSync } from 'node:crypto';

/**
 * Random bytes drawn from one pool, refilled 4 KiB at a time: a `randomBytes(8)` call per id cost about
 * 9 µs of the event loop per connect in a connect storm (one id per connection record), the pool a
 * fraction of that. The bytes are the same CSPRNG's.
 */
const POOL = Buffer.alloc(4096);
let offset = POOL.length;

/** A collision-resistant, roughly time-ordered id in the cuid alphabet: `c` + base36 time + 16 hex. */
export function createRowId(now: number = Date.now()): string {
  if (offset + 8 > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  const hex = POOL.toString('hex', offset, offset + 8);
  offset += 8;
  return `c${now.toString(36)}${hex}`;
}
