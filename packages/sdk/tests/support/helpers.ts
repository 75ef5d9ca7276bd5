/** Test helpers: clients wired to a fake gateway, event waiting, unsigned JWTs. */
import { WebSocket } from 'ws';
import { ApiXClient, type ApiXClientOptions, type ClientEvents } from '../../src/index.ts';
import type { FakeGateway } from './fake-gateway.ts';

/** A client with `ws`, fast deterministic backoff (random 0.5) and no client pings unless asked. */
export function clientFor(gateway: FakeGateway, overrides: Partial<ApiXClientOptions> = {}): ApiXClient {
  return new ApiXClient({
    url: gateway.url,
    token: 'test-token',
    clientType: 'WEB_APP',
    WebSocket,
    reconnect: { baseMs: 20, maxMs: 80, factor: 2 },
    random: () => 0.5,
    heartbeat: false,
    ...overrides,
  });
}

/** The next emission of `name` (optionally the next one matching `predicate`). */
export function nextEmit<K extends keyof ClientEvents>(
  client: ApiXClient,
  name: K,
  predicate: (event: ClientEvents[K]) => boolean = () => true,
  timeoutMs = 3000,
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${String(name)}`));
    }, timeoutMs);
    const off = client.on(name, (event) => {
      if (!predicate(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

/** Polls until `predicate` holds. */
export async function eventually(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error('eventually: timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An unsigned JWT-shaped token with these claims (the SDK never verifies signatures). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}.signature`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
