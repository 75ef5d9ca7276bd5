/**
 * `StreamHandle.pipe` with the Vercel AI SDK (`ai`): `streamText(...).textStream` from a mock language
 * model (`ai/test`) goes into an APIX stream whole, and the handle's `signal`, given to `streamText` as its
 * `abortSignal`, stops the model when a subscriber cancels.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { simulateReadableStream, streamText } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';
import type { ApiXClient } from '../src/index.ts';
import { FakeGateway } from './support/fake-gateway.ts';
import { clientFor } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

const TOKENS = Array.from({ length: 200 }, (_, i) => `tok${i} `);

/** A mock model streaming `tokens`, `chunkDelayMs` apart. */
function mockModel(tokens: string[], chunkDelayMs: number): MockLanguageModelV3 {
  return new MockLanguageModelV3({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunkDelayInMs: chunkDelayMs,
        chunks: [
          { type: 'text-start', id: 't1' },
          ...tokens.map((delta) => ({ type: 'text-delta' as const, id: 't1', delta })),
          { type: 'text-end', id: 't1' },
          {
            type: 'finish',
            finishReason: { unified: 'stop', raw: undefined },
            usage: {
              inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
              outputTokens: { total: tokens.length, text: tokens.length, reasoning: undefined },
            },
          },
        ],
      }),
    }),
  });
}

async function setup(): Promise<{ gateway: FakeGateway; client: ApiXClient }> {
  const gateway = await FakeGateway.start();
  const client = clientFor(gateway);
  cleanup.push(
    () => gateway.stop(),
    () => client.close(),
  );
  await client.connect();
  return { gateway, client };
}

describe('pipe() with the AI SDK', () => {
  it("streams streamText's textStream whole into one stream and one compacted event", async () => {
    const { gateway, client } = await setup();
    const stream = client.stream('agent:a1', { eventType: 'agent_message', data: { agentId: 'a1' } });
    const result = streamText({ model: mockModel(TOKENS, 0), prompt: 'hi', abortSignal: stream.signal });
    const ended = await stream.pipe(result.textStream);
    const event = gateway.history.get('agent:a1')?.[0];
    assert.equal(event?.id, ended.id);
    assert.deepEqual(event?.payload, {
      agentId: 'a1',
      streamId: stream.streamId,
      text: TOKENS.join(''),
      seq: ended.seq,
      status: 'complete',
    });
  });

  it('a cancel from a subscriber aborts the model through the signal, and the stream ends cancelled', async () => {
    const { gateway, client } = await setup();
    const stream = client.stream('agent:a1', { eventType: 'agent_message' });
    await stream.started;
    const result = streamText({ model: mockModel(TOKENS, 5), prompt: 'hi', abortSignal: stream.signal });
    const piped = stream.pipe(result.textStream);
    await gateway.until(() => gateway.framesOf('stream.append').length >= 3);
    gateway.send(gateway.open[0]!, {
      type: 'stream.cancel',
      channel: 'agent:a1',
      payload: { channel: 'agent:a1', streamId: stream.streamId, reason: 'user pressed stop', by: 'bob' },
    });
    await piped;
    const payload = gateway.history.get('agent:a1')?.[0]?.payload as { status: string; text: string };
    assert.equal(payload.status, 'cancelled');
    assert.ok(payload.text.length < TOKENS.join('').length, 'the model stopped early');
  });
});
