/** Redis failures are sorted by the error's type (src/redis/client.ts redisFailureKind), not by a regex. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyError } from 'ioredis';
import { redisFailureKind } from '../../../src/redis/client.ts';
import { InternalError } from '@apix/protocol/internal-errors';

it('sorts Redis failures by type', () => {
  assert.equal(
    redisFailureKind(new (ReplyError as new (m: string) => Error)('NOSCRIPT No matching script')),
    'reply',
  );
  assert.equal(
    redisFailureKind(new Error("Stream isn't writeable and enableOfflineQueue options is false")),
    'not-sent',
  );
  assert.equal(redisFailureKind(new Error('Connection is closed.')), 'not-sent');
  assert.equal(
    redisFailureKind(new InternalError('APIX_ERR_TIMEOUT', 'Redis did not answer within 5 ms')),
    'unknown',
  );
  assert.equal(
    redisFailureKind(new InternalError('APIX_ERR_REDIS_SCRIPT', 'no Lua script named x')),
    'internal',
  );
  // A message of ours that merely looks like ioredis's is not taken for one.
  assert.equal(redisFailureKind(new Error('the audit stream is not writeable')), 'unknown');
  assert.equal(redisFailureKind(new Error('Connection is closed by the peer, maybe')), 'unknown');
  assert.equal(redisFailureKind(undefined), 'unknown');
});
