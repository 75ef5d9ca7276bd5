/**
 * A fresh PostgreSQL database per test file. Finds the server from DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432 (trust auth). When none answers, tests that need it are skipped with
 * a loud notice; under CI=true that is a failure instead, so CI cannot go green without PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface TestPostgres {
  /** URL of the fresh database. */
  readonly url: string;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Drops the database (terminating leftover connections). */
  drop(): Promise<void>;
}

const baseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

let probed: Promise<string | undefined> | undefined;

/** Why PostgreSQL is unusable, or undefined when it answers. Probed once per process. */
export function postgresUnavailable(): Promise<string | undefined> {
  probed ??= (async () => {
    const client = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 3_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return undefined;
    } catch (err) {
      return `PostgreSQL at ${redacted(baseUrl)} is unreachable (${(err as Error).message})`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return probed;
}

/**
 * Returns the skip reason for a PostgreSQL suite (undefined: run it). Throws under CI=true, prints a
 * banner otherwise.
 */
export async function postgresSkipReason(): Promise<string | undefined> {
  const reason = await postgresUnavailable();
  if (!reason) return undefined;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires PostgreSQL`);
  process.stderr.write(
    `\n!!! SKIPPING PostgreSQL tests: ${reason}. Set DATABASE_URL or start PostgreSQL.\n\n`,
  );
  return reason;
}

/** Creates an empty database with a unique name on the test server. */
export async function createTestPostgres(): Promise<TestPostgres> {
  const name = `apix_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin(async (c) => void (await c.query(`CREATE DATABASE "${name}"`)));
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    host: url.hostname,
    port: Number(url.port || 5432),
    drop: () => admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))),
  };
}

/** The test database's URL rewritten to go through another host and port (a TCP proxy). */
export function viaPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

async function admin(fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const client = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

function redacted(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
