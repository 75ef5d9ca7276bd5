/**
 * The AG-UI adaptor (packages/sdk/src/ag-ui.ts) both ways, checked with `@ag-ui/core`'s own schemas: an
 * agent's run (text message, tool call, state snapshot and JSON Patch deltas) goes out as APIX streams and
 * events, a live subscriber gets the same AG-UI events back, and a late joiner gets one START/CONTENT/END
 * per message, one ARGS per tool call and ONE STATE_SNAPSHOT with every delta applied.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { EventSchemas } from '@ag-ui/core/schemas';
import { AgUiPublisher, agUiEvents, applyJsonPatch, type AgUiEvent } from '../src/ag-ui.ts';
import type { ApiXClient } from '../src/index.ts';
import { FakeGateway } from './support/fake-gateway.ts';
import { clientFor, eventually } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function connected(gateway: FakeGateway): Promise<ApiXClient> {
  const client = clientFor(gateway);
  cleanup.push(() => client.close());
  await client.connect();
  return client;
}

/** One run of an agent, as `@ag-ui/core` events. */
function agentRun(): AgUiEvent[] {
  const words = ['The ', 'weather ', 'in ', 'Paris ', 'is ', 'mild.'];
  const args = ['{"ci', 'ty":', '"Par', 'is"}'];
  return [
    { type: 'RUN_STARTED', threadId: 'th1', runId: 'r1' },
    { type: 'STATE_SNAPSHOT', snapshot: { step: 'start', tools: [] } },
    { type: 'TOOL_CALL_START', toolCallId: 'call-1', toolCallName: 'weather', parentMessageId: 'msg 1' },
    ...args.map((delta) => ({ type: 'TOOL_CALL_ARGS', toolCallId: 'call-1', delta })),
    { type: 'TOOL_CALL_END', toolCallId: 'call-1' },
    { type: 'STATE_DELTA', delta: [{ op: 'add', path: '/tools/-', value: 'weather' }] },
    { type: 'TEXT_MESSAGE_START', messageId: 'msg 1', role: 'assistant' },
    ...words.map((delta) => ({ type: 'TEXT_MESSAGE_CONTENT', messageId: 'msg 1', delta })),
    { type: 'TEXT_MESSAGE_END', messageId: 'msg 1' },
    { type: 'STATE_DELTA', delta: [{ op: 'replace', path: '/step', value: 'done' }] },
    { type: 'RUN_FINISHED', threadId: 'th1', runId: 'r1' },
  ];
}

function validate(events: AgUiEvent[]): void {
  for (const e of events) {
    const r = EventSchemas.safeParse(e);
    assert.ok(r.success, `${e.type}: ${JSON.stringify(r.error?.issues)}`);
  }
}

function textOf(events: AgUiEvent[], type: string): string {
  return events
    .filter((e) => e.type === type)
    .map((e) => e.delta as string)
    .join('');
}

describe('AG-UI adaptor', () => {
  it('maps a run to APIX streams and events, and back for a live subscriber', async () => {
    const gateway = await FakeGateway.start();
    cleanup.push(() => gateway.stop());
    const agent = await connected(gateway);
    const viewer = await connected(gateway);
    const run = agentRun();
    validate(run);
    const live: AgUiEvent[] = [];
    const sub = agUiEvents(viewer, 'agent:a1', (e) => void live.push(e));
    await eventually(() => viewer.subscription('agent:a1')?.state === 'subscribed');
    await new AgUiPublisher(agent, 'agent:a1').pipe(run);
    await eventually(() => live.some((e) => e.type === 'RUN_FINISHED'));
    validate(live);
    assert.deepEqual(
      live.map((e) => e.type),
      run.map((e) => e.type),
      'the same events, in order',
    );
    assert.equal(textOf(live, 'TEXT_MESSAGE_CONTENT'), 'The weather in Paris is mild.');
    assert.equal(textOf(live, 'TOOL_CALL_ARGS'), '{"city":"Paris"}');
    assert.deepEqual(sub.state(), { step: 'done', tools: ['weather'] });
    // In the channel's history: the run events and one compacted event per message, tool call and state.
    assert.deepEqual(
      (gateway.history.get('agent:a1') ?? []).map((e) => e.type),
      ['agui.run_started', 'agui.tool_call', 'agui.text_message', 'agui.state', 'agui.run_finished'],
    );
  });

  it('a late joiner gets one event per message and tool call, and ONE STATE_SNAPSHOT', async () => {
    const gateway = await FakeGateway.start();
    cleanup.push(() => gateway.stop());
    const agent = await connected(gateway);
    const publisher = new AgUiPublisher(agent, 'agent:a1');
    await publisher.pipe(agentRun().slice(0, -1)); // the run is still going: the state stream is open
    const late = await connected(gateway);
    const seen: AgUiEvent[] = [];
    agUiEvents(late, 'agent:a1', (e) => void seen.push(e), { replay: { last: 100 } });
    await eventually(() => seen.some((e) => e.type === 'STATE_SNAPSHOT'));
    validate(seen);
    assert.deepEqual(
      seen.map((e) => e.type),
      [
        'RUN_STARTED',
        'TOOL_CALL_START',
        'TOOL_CALL_ARGS',
        'TOOL_CALL_END',
        'TEXT_MESSAGE_START',
        'TEXT_MESSAGE_CONTENT',
        'TEXT_MESSAGE_END',
        'STATE_SNAPSHOT',
      ],
    );
    assert.deepEqual(seen.at(-1)?.snapshot, { step: 'done', tools: ['weather'] });
    assert.equal(seen.filter((e) => e.type === 'TEXT_MESSAGE_CONTENT').length, 1);
    assert.equal(seen.filter((e) => e.type === 'TOOL_CALL_ARGS').length, 1);
    assert.equal(textOf(seen, 'TEXT_MESSAGE_CONTENT'), 'The weather in Paris is mild.');
  });

  it('applies JSON Patch as RFC 6902 says (add, remove, replace, move, copy, test)', () => {
    const doc = { a: { b: [1, 2] }, c: 'x' };
    const out = applyJsonPatch(doc, [
      { op: 'add', path: '/a/b/1', value: 9 },
      { op: 'remove', path: '/c' },
      { op: 'replace', path: '/a/b/0', value: 0 },
      { op: 'copy', from: '/a/b', path: '/d' },
      { op: 'move', from: '/d', path: '/e' },
      { op: 'test', path: '/e/1', value: 9 },
    ]);
    assert.deepEqual(out, { a: { b: [0, 9, 2] }, e: [0, 9, 2] });
    assert.deepEqual(doc, { a: { b: [1, 2] }, c: 'x' }, 'the input is not changed');
    assert.throws(() => applyJsonPatch(doc, [{ op: 'test', path: '/c', value: 'y' }]), {
      code: 'BAD_REQUEST',
    });
  });
});
