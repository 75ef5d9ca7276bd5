import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../../src/config.ts';

describe('config', () => {
  it('has the docs/protocol.md §10 defaults', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.dataDir, './.apix');
    assert.equal(c.maxMessageBytes, 1024 * 1024);
    assert.equal(c.connectTimeoutMs, 10_000);
    assert.equal(c.heartbeatIntervalMs, 25_000);
    assert.equal(c.ackTimeoutMs, 10_000);
    assert.equal(c.sessionTtlMs, 120_000);
    assert.equal(c.redisUrl, undefined);
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.allowedOrigins, undefined);
  });

  it('parses values and lists', () => {
    const c = loadConfig({
      APIX_PORT: '9000',
      APIX_ALLOWED_ORIGINS: 'https://a, https://b',
      REDIS_URL: 'redis://127.0.0.1:6379',
    });
    assert.equal(c.port, 9000);
    assert.deepEqual(c.allowedOrigins, ['https://a', 'https://b']);
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
  });

  it('stops with one line naming the variable, never echoing secrets', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ APIX_PORT: 'eighty' }, /^invalid APIX_PORT \(got "eighty"\)/],
      [{ APIX_PORT: '70000' }, /APIX_PORT/],
      [{ APIX_HEARTBEAT_INTERVAL_MS: '-1' }, /APIX_HEARTBEAT_INTERVAL_MS/],
      [{ REDIS_URL: 'http://x' }, /^invalid REDIS_URL: /],
      [{ APIX_JWT_SECRET: 'short' }, /^invalid APIX_JWT_SECRET: /],
    ];
    for (const [env, pattern] of cases) {
      assert.throws(
        () => loadConfig(env),
        (err: unknown) =>
          err instanceof ConfigError &&
          pattern.test(err.message) &&
          !err.message.includes('\n') &&
          !err.message.includes('short'),
      );
    }
  });
});
