/**
 * TLS served by the node itself (APIX_TLS_CERT, APIX_TLS_KEY): the PEM files are read once at start and
 * checked together, so that a missing, unreadable or mismatched file stops the start with one line naming
 * the variable, instead of failing on the first client.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError } from './config.ts';
import type { Config } from './config.ts';

export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Reads and checks the node's certificate and key; undefined without TLS. Throws a ConfigError. */
export function loadTlsFiles(config: Pick<Config, 'tls'>): TlsFiles | undefined {
  if (!config.tls) return undefined;
  const cert = readPem('APIX_TLS_CERT', config.tls.certFile, /-----BEGIN CERTIFICATE-----/);
  const key = readPem('APIX_TLS_KEY', config.tls.keyFile, /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/);
  try {
    createSecureContext({ cert });
  } catch (err) {
    throw new ConfigError(
      `invalid APIX_TLS_CERT: ${config.tls.certFile} is not a usable certificate (${short(err)})`,
    );
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new ConfigError(
      `invalid APIX_TLS_KEY: ${config.tls.keyFile} is not a usable private key for APIX_TLS_CERT (${short(err)})`,
    );
  }
  return { cert, key };
}

function readPem(name: string, path: string, marker: RegExp): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`invalid ${name}: cannot read ${path} (${code})`);
  }
  if (!marker.test(data.toString('latin1')))
    throw new ConfigError(
      `invalid ${name}: ${path} is not a PEM ${name === 'APIX_TLS_CERT' ? 'certificate' : 'private key'}`,
    );
  return data;
}

function short(err: unknown): string {
  return String((err as Error).message ?? err)
    .split('\n')[0]!
    .slice(0, 120);
}
