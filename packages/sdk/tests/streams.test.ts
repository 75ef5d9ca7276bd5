/**
 * Streams in the SDK (docs/streams.md) against the fake gateway's stream model: the publisher handle
 * (start, appends, end, pipe, cancel as an AbortSignal, resume after a dropped connection with nothing
 * lost or doubled, the client-wide append rate merging pieces) and the subscriber's state built by
 * `subscribeStreams` and `applyStreamInput` (the fromSeq rule, snapshots, compacted events).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  applyStreamInput,
  StreamCancelledError,
  type AgentStream,
  type ApiXClient,
  type ApiXClientOptions,
} from '../src/index.ts';
import { FakeGateway } from './support/fake-gateway.ts';
import { clientFor, eventually } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function setup(
  overrides: Partial<ApiXClientOptions> = {},
): Promise<{ gateway: FakeGateway; client: ApiXClient }> {
  const gateway = await FakeGateway.start();
  const client = clientFor(gateway, overrides);
  cleanup.push(
    () => gateway.stop(),
    () => client.close(),
  );
  return { gateway, client };
}

async function* tokens(list: string[], gapMs = 1): AsyncGenerator<string> {
  for (const t of list) {
    await new Promise((r) => setTimeout(r, gapMs));
    yield t;
  }
}

const WORDS = Array.from({ length: 50 }, (_, i) => `w${i} `);

describe('stream publisher', () => {
  it('starts, appends, ends: one compacted event with the whole text, and subscribers see each piece', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const seen: AgentStream[] = [];
    const pieces: string[] = [];
    const reader = client.subscribeStreams('agent:a1', {
      onAppend: (_s, text) => void pieces.push(text),
      onEnd: (s) => void seen.push(s),
    });
    await reader.subscription.ready;
    const stream = client.stream('agent:a1', { eventType: 'agent_message', data: { agentId: 'a1' } });
    const { id } = await stream.started;
    assert.match(id, /^s-/);
    stream.append('Hello');
    stream.append(', ');
    stream.append('world');
    const ended = await stream.end('complete');
    assert.equal(ended.seq, 3);
    const history = gateway.history.get('agent:a1') ?? [];
    assert.equal(history.length, 1);
    assert.equal(history[0]?.id, ended.id);
    assert.deepEqual(history[0]?.payload, {
      agentId: 'a1',
      streamId: stream.streamId,
      text: 'Hello, world',
      seq: 3,
      status: 'complete',
    });
    await eventually(() => seen.length === 1);
    assert.deepEqual(pieces, ['Hello', ', ', 'world']);
    assert.equal(seen[0]?.text, 'Hello, world');
    assert.equal(seen[0]?.status, 'complete');
    assert.equal(seen[0]?.id, ended.id);
    assert.equal(reader.subscription.lastEventId, ended.id, 'stream.end moves the resume point');
  });

  it('pipe() appends an async iterable and ends complete', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const stream = client.stream('agent:a1', { eventType: 'agent_message' });
    const result = await stream.pipe(tokens(WORDS));
    const event = gateway.history.get('agent:a1')?.[0];
    assert.equal(event?.id, result.id);
    assert.equal((event?.payload as { text: string }).text, WORDS.join(''));
  });

  it('pipe() ends the stream error with the source failure, without throwing', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    async function* failing(): AsyncGenerator<string> {
      yield 'partial ';
      throw new Error('model overloaded');
    }
    const result = await client.stream('agent:a1', { eventType: 'agent_message' }).pipe(failing());
    const payload = gateway.history.get('agent:a1')?.[0]?.payload as { text: string; status: string };
    assert.equal(result.seq, 1);
    assert.equal(payload.status, 'error');
    assert.equal(payload.text, 'partial ');
  });

  it("a subscriber's stream.cancel fires the handle's signal, and pipe() ends cancelled", async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const stream = client.stream('agent:a1', { eventType: 'agent_message' });
    await stream.started;
    let cancelled: unknown;
    stream.signal.addEventListener('abort', () => (cancelled = stream.signal.reason));
    async function* endless(): AsyncGenerator<string> {
      for (let i = 0; ; i++) {
        if (i === 3)
          gateway.send(gateway.open[0]!, {
            type: 'stream.cancel',
            channel: 'agent:a1',
            payload: { channel: 'agent:a1', streamId: stream.streamId, reason: 'stop', by: 'bob' },
          });
        await new Promise((r) => setTimeout(r, 5));
        yield `t${i} `;
      }
    }
    await stream.pipe(endless());
    assert.ok(cancelled instanceof StreamCancelledError);
    assert.equal(cancelled.by, 'bob');
    assert.equal(cancelled.reason, 'stop');
    const payload = gateway.history.get('agent:a1')?.[0]?.payload as { status: string };
    assert.equal(payload.status, 'cancelled');
  });

  it('resumes after a dropped connection: what the server did not accept is sent again, once', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const stream = client.stream('agent:a1', { eventType: 'agent_message' });
    await stream.started;
    stream.append('one ');
    stream.append('two ');
    await gateway.until(() => gateway.framesOf('stream.append').length === 2);
    // The next two appends are lost with the connection.
    gateway.dropAppends = 2;
    stream.append('three ');
    stream.append('four ');
    await gateway.until(() => gateway.framesOf('stream.append').length === 4);
    gateway.dropAll();
    stream.append('five ');
    await eventually(() => client.state === 'connected' && gateway.open.length === 1, 5000);
    const result = await stream.end();
    const payload = gateway.history.get('agent:a1')?.[0]?.payload as { text: string; seq: number };
    assert.equal(payload.text, 'one two three four five ');
    // Resumed at seq 2: "three four five " went again as one append.
    assert.equal(payload.seq, 3);
    assert.equal(result.seq, 3);
  });

  it('merges appends over the client-wide append rate into fewer frames, keeping the text', async () => {
    const { gateway, client } = await setup({ streamAppendsPerSec: 10 });
    await client.connect();
    const stream = client.stream('agent:a1', { eventType: 'agent_message' });
    await stream.started;
    for (const w of WORDS) stream.append(w);
    await stream.end();
    const frames = gateway.framesOf('stream.append').length;
    assert.ok(frames < WORDS.length / 2, `${frames} append frames for ${WORDS.length} appends`);
    const payload = gateway.history.get('agent:a1')?.[0]?.payload as { text: string };
    assert.equal(payload.text, WORDS.join(''));
  });

  it('refuses bad ids, a second open stream with the same id, and appends after end', async () => {
    const { client } = await setup({ maxOpenStreams: 1 });
    await client.connect();
    assert.throws(() => client.stream('agent:a1', { eventType: 'Bad Type' }), { code: 'BAD_REQUEST' });
    assert.throws(() => client.stream('agent:a1', { eventType: 'x', streamId: 'bad id' }), {
      code: 'BAD_REQUEST',
    });
    const s = client.stream('agent:a1', { eventType: 'agent_message', streamId: 's1' });
    assert.throws(() => client.stream('agent:a1', { eventType: 'x', streamId: 's1' }), { code: 'CONFLICT' });
    assert.throws(() => client.stream('agent:a2', { eventType: 'x' }), { code: 'STREAM_LIMIT' });
    await s.end();
    assert.throws(() => s.append('late'), { code: 'STREAM_NOT_OPEN' });
  });
});

describe('stream reader', () => {
  const base = { channel: 'agent:a1', id: 's-1' };
  const start = {
    ...base,
    type: 'stream.start',
    payload: { streamId: 's1', eventType: 'agent_message', data: { a: 1 } },
  };
  const append = (fromSeq: number, seq: number, text: string) => ({
    ...base,
    type: 'stream.append',
    payload: { streamId: 's1', fromSeq, seq, text },
  });

  function run(inputs: Array<Parameters<typeof applyStreamInput>[1]>): {
    stream?: AgentStream;
    gaps: number;
  } {
    let stream: AgentStream | undefined;
    let gaps = 0;
    for (const input of inputs) {
      const step = applyStreamInput(stream, input);
      if (step === undefined) continue;
      if ('gap' in step) gaps++;
      else stream = step.stream;
    }
    return { stream, gaps };
  }

  it('applies an append only when fromSeq is seq + 1; duplicates are ignored, gaps reported', () => {
    const { stream, gaps } = run([
      start,
      append(1, 1, 'a'),
      append(1, 1, 'a'),
      append(2, 3, 'bc'),
      append(5, 5, 'e'),
    ]);
    assert.equal(stream?.text, 'abc');
    assert.equal(stream?.seq, 3);
    assert.equal(gaps, 1);
  });

  it('a snapshot replaces the text (late joiner), then appends go on from its seq', () => {
    const snapshot = {
      ...base,
      type: 'stream.snapshot',
      payload: {
        streamId: 's1',
        eventType: 'agent_message',
        data: {},
        text: 'Hello',
        seq: 4,
        status: 'streaming',
      },
    };
    const { stream } = run([snapshot, append(3, 4, 'lo'), append(5, 5, ' world')]);
    assert.equal(stream?.text, 'Hello world');
    assert.equal(stream?.seq, 5);
  });

  it('the compacted event of a stream ended while away completes it; stream.end merges data', () => {
    const compacted = {
      ...base,
      id: '1700000000000-9',
      type: 'agent_message',
      payload: { a: 1, streamId: 's1', text: 'all of it', seq: 7, status: 'complete' },
    };
    const fromReplay = run([start, append(1, 1, 'all'), compacted]).stream;
    assert.equal(fromReplay?.text, 'all of it');
    assert.equal(fromReplay?.status, 'complete');
    assert.equal(fromReplay?.id, '1700000000000-9');
    const end = {
      ...base,
      id: '1700000000000-9',
      type: 'stream.end',
      payload: { streamId: 's1', seq: 1, status: 'complete', data: { b: 2 } },
    };
    const live = run([start, append(1, 1, 'x'), end]).stream;
    assert.deepEqual(live?.data, { a: 1, b: 2 });
    assert.equal(live?.status, 'complete');
  });

  it('a late subscriber to a finished stream gets its compacted event as one ended stream', async () => {
    const { client } = await setup();
    await client.connect();
    const s = client.stream('agent:a1', { eventType: 'agent_message' });
    await s.pipe(tokens(['a', 'b', 'c']));
    const ended: AgentStream[] = [];
    const reader = client.subscribeStreams(
      'agent:a1',
      { onEnd: (x) => void ended.push(x) },
      { replay: { last: 10 } },
    );
    await eventually(() => ended.length === 1);
    assert.equal(ended[0]?.text, 'abc');
    assert.equal(reader.streams.get(s.streamId)?.status, 'complete');
  });
});
