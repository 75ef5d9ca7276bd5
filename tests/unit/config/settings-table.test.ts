/**
 * The settings table (SETTINGS in src/config.ts) declares each setting once: the env schema, the Config
 * type and the mapping are derived from it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EnvSchema, SETTINGS, settingsOf, loadConfig, testConfig } from '../../../src/config.ts';

describe('settings table', () => {
  const settings = settingsOf(SETTINGS);

  it('has one entry per variable, each with a doc line and a Config path', () => {
    const envs = settings.map((x) => x.setting.env);
    assert.equal(new Set(envs).size, envs.length, 'a variable is declared twice');
    assert.deepEqual([...envs].sort(), Object.keys(EnvSchema.shape).sort());
    for (const { path, setting } of settings) {
      // OTEL_*: OpenTelemetry's own standard variables (OTEL_EXPORTER_OTLP_ENDPOINT), read as they are named.
      assert.match(setting.env, /^(APIX|REDIS|DATABASE|OTEL)_[A-Z0-9_]+$/);
      assert.ok(setting.doc.trim().length > 0, `${setting.env} has no doc line`);
      assert.ok(path.length > 0);
    }
  });

  it('puts each variable where its path says', () => {
    const config = loadConfig({
      APIX_RATE_PUBLISH_PER_SEC: '7',
      APIX_QOS_DEGRADE_RTT_MS: '1234',
      APIX_JWT_ALGORITHMS: 'HS256, ES256',
      APIX_RECORDS: 'off',
      APIX_HISTORY_MAX_BYTES: String(2 * 1024 * 1024),
    });
    assert.equal(config.rateLimits.publish.perSec, 7);
    assert.equal(config.qos.degradeRttMs, 1234);
    assert.deepEqual(config.auth.algorithms, ['HS256', 'ES256']);
    assert.equal(config.records, false);
    assert.equal(config.history.maxBytes, 2 * 1024 * 1024);
    const paths = new Map(settings.map((x) => [x.setting.env, x.path]));
    assert.equal(paths.get('APIX_RATE_PUBLISH_PER_SEC'), 'rateLimits.publish.perSec');
    assert.equal(paths.get('APIX_TLS_CERT'), 'tls.certFile');
  });

  it('builds the grouped values (TLS, encryption) and refuses halves', () => {
    assert.equal(testConfig().tls, undefined);
    assert.equal(testConfig().encryption, undefined);
    assert.deepEqual(loadConfig({ APIX_TLS_CERT: 'c.pem', APIX_TLS_KEY: 'k.pem' }).tls, {
      certFile: 'c.pem',
      keyFile: 'k.pem',
    });
    assert.throws(() => loadConfig({ APIX_TLS_CERT: 'c.pem' }), /invalid APIX_TLS_KEY: must be set too/);
    const key = Buffer.alloc(32, 1).toString('base64');
    const enc = loadConfig({ APIX_ENCRYPTION_KEYS: `1:${key},3:${key}` }).encryption;
    assert.equal(enc?.active, 3);
    assert.throws(
      () => loadConfig({ APIX_ENCRYPTION_KEYS: `1:${key}`, APIX_ENCRYPTION_ACTIVE_KEY: '2' }),
      /invalid APIX_ENCRYPTION_ACTIVE_KEY: version 2 is not in APIX_ENCRYPTION_KEYS/,
    );
  });
});
