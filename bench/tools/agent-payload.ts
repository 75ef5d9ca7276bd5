/**
 * A realistic AI-agent event for the compression measurement (bench/tools/compression.ts): the payload of
 * a `tool_call_result` of a web-search tool (results with titles, URLs and snippets, a summary), about
 * the size asked for, different for every sequence number (sentences drawn from a fixed pool, as real
 * agent output repeats its vocabulary), with the bench's send-time fields (`bs`, `bq`, `bt`).
 */

/** Words of realistic agent output: a web search tool's result, as an agent platform would stream it. */
const SENTENCES = [
  'The rate limiter uses a token bucket per connection, refilled every second, with a configurable burst.',
  'Kubernetes readiness probes should fail while a node drains so that the load balancer stops routing to it.',
  'PostgreSQL logical replication streams changes from the write-ahead log to subscribers in commit order.',
  'A WebSocket server that negotiates permessage-deflate keeps a zlib context per connection unless told not to.',
  'The incident began at 14:02 UTC when the primary database failed over and clients retried in a tight loop.',
  'Exponential backoff with full jitter spreads retries over time and avoids synchronized thundering herds.',
  'The agent summarized twelve support tickets and found that most of them concerned expired API credentials.',
  'Redis streams keep an ordered log per key, trimmed by length or by minimum id, and support consumer groups.',
  'For browsers, the recommended approach is to reconnect with the last event id so that the server can replay.',
  'Our evaluation shows a median latency of 38 milliseconds and a p99 of 210 milliseconds under nominal load.',
  'The workflow moved from the planning step to the execution step after the user approved the proposed changes.',
  'OpenTelemetry traces propagate a trace id across services through the traceparent header of each request.',
  'A circuit breaker opens after five consecutive failures and half-opens again after thirty seconds of cooldown.',
  'The search returned documentation pages, a blog post from the vendor, and two threads from the community forum.',
  'Enable HTTP/2 on the load balancer, but keep WebSocket upgrades on HTTP/1.1 connections to the gateway nodes.',
  'The model called the calculator tool three times before producing the final answer with the correct total.',
  'Each tenant has its own encryption key, derived from a master key with HKDF and the organization identifier.',
  'Large language models stream tokens as server-sent events; a gateway can fan them out to many viewers at once.',
  'The provider reported degraded health in the eu-west region with an error rate of four percent for an hour.',
  'Cache invalidation is triggered by the change feed, so readers never observe a value older than two seconds.',
];
const TITLES = [
  'Rate limiting strategies for real-time APIs',
  'Designing resilient WebSocket gateways',
  'Postmortem: database failover and retry storms',
  'permessage-deflate and memory per connection',
  'Operating Redis streams in production',
  'Tracing asynchronous workflows end to end',
  'Multi-tenant key management patterns',
  'Streaming LLM output to thousands of clients',
];

/** A tool_call_result payload of about `bytes` bytes of JSON, different for every `seq`. */
export function payloadFor(seq: number, bytes: number, bt: number): string {
  let x = (seq * 2654435761) >>> 0;
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const results: Array<{ title: string; url: string; snippet: string; score: number }> = [];
  const body = {
    toolCallId: `call_${seq.toString(36)}_${rnd(1e9).toString(16)}`,
    toolName: 'web_search',
    agentId: 'research-assistant',
    durationMs: 200 + rnd(2000),
    output: {
      query: 'how do real-time gateways keep fan-out fast when compression is enabled',
      results,
      summary: '',
    },
    usage: { inputTokens: 1200 + rnd(800), outputTokens: 300 + rnd(400) },
    bs: 0,
    bq: seq,
    bt: 0,
  };
  const size = (): number => JSON.stringify(body).length + 12; // bt grows to its real width below
  while (size() < bytes * 0.7 && results.length < 50) {
    const title = TITLES[rnd(TITLES.length)]!;
    results.push({
      title,
      url: `https://docs.example.com/articles/${title.toLowerCase().replace(/[^a-z]+/g, '-')}-${rnd(9000) + 1000}`,
      snippet: `${SENTENCES[rnd(SENTENCES.length)]} ${SENTENCES[rnd(SENTENCES.length)]}`,
      score: Math.round(1000 * (0.5 + rnd(500) / 1000)) / 1000,
    });
  }
  const summary: string[] = [];
  while (size() < bytes) {
    summary.push(SENTENCES[rnd(SENTENCES.length)]!);
    body.output.summary = summary.join(' ');
  }
  body.bt = bt;
  return JSON.stringify(body);
}
