/**
 * An agent that streams a fake LLM's answer through APIX (docs/streams.md): each answer is one stream on
 * `agent:research-bot`, token by token; a viewer's cancel (the page's Stop button) stops the model through
 * the handle's AbortSignal. Run against `npm start`:
 *
 *   TOKEN="$(npm run -s apix -- token --sub research-bot --org acme --roles service)"
 *   node --import tsx examples/agent-stream/agent.ts ws://localhost:8080 "$TOKEN" [answers]
 *
 * and watch it in examples/agent-stream/index.html or the feed (http://localhost:8080/examples/feed/).
 * With the Vercel AI SDK, pass `streamText({ model, prompt, abortSignal: stream.signal }).textStream` to
 * `pipe` instead of `fakeLlm(...)`: any async iterable of strings works.
 */
import { WebSocket } from 'ws';
import type { StreamCancelledError } from '../../packages/sdk/src/index.ts';
import { ApiXClient } from '../../packages/sdk/src/index.ts';

const [url = 'ws://localhost:8080', token, answers = '3'] = process.argv.slice(2);
if (!token) throw new Error('usage: agent.ts <gateway url> <service token> [answers]');

const WORDS = (
  'Streams carry an answer as it is written: live viewers see each token, and whoever arrives later ' +
  'gets everything so far in one frame, then the rest live, with no gap and nothing twice. '
).split(' ');

/** A fake LLM: `n` tokens, one every 10-40 ms, stopping when `signal` fires (as a real model client would). */
async function* fakeLlm(n: number, signal: AbortSignal): AsyncGenerator<string> {
  for (let i = 0; i < n && !signal.aborted; i++) {
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 30));
    yield `${WORDS[i % WORDS.length]} `;
  }
}

const client = new ApiXClient({ url, token, clientType: 'INTERNAL_SERVICE', WebSocket });
client.on('connection.disconnected', (e) =>
  console.log(`disconnected (${e.code}); reconnecting: ${e.willReconnect}`),
);
await client.connect();
for (let n = 1; n <= Number(answers); n++) {
  const stream = client.stream('agent:research-bot', {
    eventType: 'agent_message',
    data: { agentId: 'research-bot', role: 'assistant', answer: n },
  });
  stream.signal.addEventListener('abort', () => {
    const why = stream.signal.reason as StreamCancelledError;
    console.log(`answer ${n}: cancelled by ${why.by} (${why.reason})`);
  });
  const { id, seq } = await stream.pipe(fakeLlm(200, stream.signal));
  console.log(`answer ${n}: ended after ${seq} appends; its event in the history: ${id}`);
}
await client.close();
