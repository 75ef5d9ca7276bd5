/**
 * OpenTelemetry, end to end with a real OTLP/HTTP receiver in this process: a publish made with a W3C
 * `traceparent` (an HTTP header, or a WebSocket publish's metadata) shows up as one trace, the
 * publisher's span -> `apix.publish` -> `apix.route` -> `apix.deliver`, and the event reaching the
 * subscriber carries the route span's `traceparent`. Connections get `apix.connect` spans. Without
 * OTEL_EXPORTER_OTLP_ENDPOINT there is no tracing at all.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import { waitFor } from '../../support/wait.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { HookBus } from '../../../src/hooks.ts';
import { nodeTracing } from '../../../src/tracing/tracing.ts';

interface ReceivedSpan {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly service: string | undefined;
}

/** An OTLP/HTTP JSON receiver: every span posted to /v1/traces. */
async function otlpReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url === '/v1/traces' && req.method === 'POST') {
        const doc = JSON.parse(body) as { resourceSpans: any[] };
        for (const rs of doc.resourceSpans) {
          const service = rs.resource?.attributes?.find((a: any) => a.key === 'service.name')?.value
            ?.stringValue;
          for (const ss of rs.scopeSpans)
            for (const s of ss.spans)
              spans.push({
                name: s.name,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId || undefined,
                service,
              });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans };
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

describe('OpenTelemetry: one trace from publish to delivery', () => {
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let node: ApiXNode;
  let reader: RawClient;

  before(async () => {
    receiver = await otlpReceiver();
    node = await startNode({ otlpEndpoint: receiver.url });
    reader = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'reader' }) });
    await reader.subscribe({ channels: ['agent:traced'] });
  });
  after(async () => {
    reader?.close();
    await node?.close();
    await new Promise((resolve) => receiver?.server.close(resolve));
  });

  /** Waits for the three spans of the trace, and checks that they chain to `parentSpanId`. */
  async function chain(traceId: string, parentSpanId: string) {
    const of = (name: string) => receiver.spans.find((s) => s.traceId === traceId && s.name === name);
    await waitFor(() => of('apix.deliver') !== undefined, 15_000, `the spans of trace ${traceId}`);
    const publish = of('apix.publish')!;
    const route = of('apix.route')!;
    const deliver = of('apix.deliver')!;
    assert.equal(publish.parentSpanId, parentSpanId, 'apix.publish is the child of the caller');
    assert.equal(route.parentSpanId, publish.spanId, 'apix.route is the child of apix.publish');
    assert.equal(deliver.parentSpanId, route.spanId, 'apix.deliver is the child of apix.route');
    assert.equal(publish.service, 'apix');
    return route;
  }

  it('an HTTP publish with a traceparent header', async () => {
    const traceId = hex(16);
    const parent = hex(8);
    const res = await fetch(`${node.httpUrl}/v1/publish`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer apix_static_acmekey',
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${parent}-01`,
      },
      body: JSON.stringify({ channel: 'agent:traced', type: 'note', payload: { n: 1 } }),
    });
    const { id } = (await res.json()) as { id: string };
    const event = await reader.next((f) => f.id === id, 10_000);
    const route = await chain(traceId, parent);
    assert.equal(event.metadata.traceparent, `00-${traceId}-${route.spanId}-01`);
  });

  it('a WebSocket publish with metadata.traceparent; connections have apix.connect spans', async () => {
    const traceId = hex(16);
    const parent = hex(8);
    const pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'svc', roles: ['service'] }),
    });
    await pub.publish('agent:traced', 'note', { n: 2 }, { traceparent: `00-${traceId}-${parent}-01` });
    await chain(traceId, parent);
    pub.close();
    assert.ok(receiver.spans.some((s) => s.name === 'apix.connect' && s.parentSpanId === undefined));
  });

  it('no endpoint, no tracing', () => {
    assert.equal(nodeTracing({}, 'n1', new HookBus(() => {}), Date.now), undefined);
  });
});
