/** Row ids generated in the process (batched raw inserts cannot use Prisma's `@default(cuid())`). */
import { randomBytes } from 'node:crypto';

/** A collision-resistant, roughly time-ordered id in the cuid alphabet: `c` + base36 time + 16 hex. */
export function createRowId(now: number = Date.now()): string {
  return `c${now.toString(36)}${randomBytes(8).toString('hex')}`;
}
