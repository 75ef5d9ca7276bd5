/**
 * Type tests: this file must typecheck (`tsc --noEmit`); each `@ts-expect-error` line must fail to. Never
 * run, only compiled: the functions below are not called.
 */
import { WebSocket as NodeWebSocket } from 'ws';
import {
  ApiXClient,
  type ApiXEvent,
  type ClientEvents,
  type ErrorCode,
  type PayloadOf,
  type PublishResult,
  type Subscription,
} from '../src/index.ts';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_: T): void {}

export function constructing(): void {
  // Node: `ws` fits the WebSocket option; the browser's global fits too.
  new ApiXClient({ url: 'wss://x', token: 't', clientType: 'WEB_APP', WebSocket: NodeWebSocket });
  new ApiXClient({
    url: ['wss://a', 'wss://b'],
    tokenProvider: async () => 't',
    clientType: 'SDK_WIDGET',
    WebSocket,
  });
  // @ts-expect-error clientType must be one of the seed's ClientType values
  new ApiXClient({ url: 'wss://x', token: 't', clientType: 'BROWSER' });
  // @ts-expect-error reconnect options are numbers
  new ApiXClient({ url: 'wss://x', token: 't', clientType: 'WEB_APP', reconnect: { baseMs: '1s' } });
}

export async function handlers(client: ApiXClient): Promise<void> {
  const sub: Subscription = client.subscribe('tool:t1', {
    ack: 'manual',
    filters: { types: ['tool_call_start'] },
  });
  sub.on('tool_call_start', (e) => {
    assertType<Equal<typeof e.payload.toolCallId, string>>(true);
    const name: string = e.payload.toolName;
    // @ts-expect-error not a field of tool_call_start (extra keys are unknown, not string)
    const n: string = e.payload.somethingElse;
    e.ack();
    void name;
    void n;
  });
  sub.on('agent_status_update', (e) => {
    // @ts-expect-error status is a union of known statuses, not any string
    const s: 'sleeping' = e.payload.status;
    void s;
  });
  sub.on('tool_call_error', async (e) => {
    const m: string = e.payload.error.message;
    void m;
  });
  // Custom event types carry unknown payloads.
  sub.on('my.custom_event', (e: ApiXEvent<'my.custom_event'>) => {
    const _payload = e.payload;
    assertType<Equal<typeof _payload, unknown>>(true);
  });
  sub.on('*', (e) => {
    const _type = e.type;
    assertType<Equal<typeof _type, string>>(true);
  });
  // @ts-expect-error handlers take the event, not (payload, event)
  sub.on('tool_call_start', (_payload: string, _event: unknown) => {});

  client.on('reconnection.attempt', ({ attempt, delayMs, url }) => {
    const x: number = attempt + delayMs;
    const u: string = url;
    void x;
    void u;
  });
  client.on('subscription.added', (e) => {
    const r: boolean = e.recovered;
    void r;
  });
  // @ts-expect-error no such client event
  client.on('subscription.granted', () => {});
  assertType<Equal<ClientEvents['error']['code'], ErrorCode>>(true);
}

export async function publishing(client: ApiXClient): Promise<void> {
  const r: PublishResult = await client.publish('tool:t1', 'tool_call_start', {
    toolCallId: 'c',
    toolName: 'n',
  });
  const status: 'sent' | 'queued' = r.status;
  void status;
  await client.publish('agent:a', 'agent_status_update', { agentId: 'a', status: 'running', extra: 1 });
  await client.publish('org', 'anything.custom', { free: ['form'] }, { idempotencyKey: 'k' });
  // @ts-expect-error tool_call_start needs toolCallId and toolName
  await client.publish('tool:t1', 'tool_call_start', { toolName: 'n' });
  // @ts-expect-error wrong status literal
  await client.publish('agent:a', 'agent_status_update', { agentId: 'a', status: 'sleeping' });
  // @ts-expect-error control types cannot be published
  await client.publish('org', 'connection.established', {});
  // @ts-expect-error control types cannot be published
  await client.publish('org', 'heartbeat.ping', {});
  assertType<Equal<PayloadOf<'system_notification'>['level'], 'info' | 'warning' | 'error' | 'critical'>>(
    true,
  );
  assertType<Equal<PayloadOf<'x.y'>, unknown>>(true);
}
