/**
 * OpenTelemetry traces of a node, exported by OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (else no
 * Tracing exists and nothing here runs). Spans:
 * - `apix.publish`: one publish (checks, permission, append), the child of the publisher's W3C
 *   `traceparent` (an HTTP publish's header or a WebSocket publish's `metadata.traceparent`);
 * - `apix.route`: its append to the channel and hand-off to the fan-out, the child of `apix.publish`. Its
 *   `traceparent` replaces the one in the event's metadata, so the event carries it to every node and to
 *   the subscribers;
 * - `apix.deliver`: one node's fan-out of one event (one span per event per node, not per subscriber),
 *   the child of the event's `traceparent`;
 * - `apix.connect`: a connection's handshake, from accept to `connection.established`.
 * Sampling follows the parent's sampled flag (every root is sampled); spans are batched. Uses its own
 * provider, never the global one, so that several nodes in one process do not share a pipeline.
 */
import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import type * as OtelTraceBase from '@opentelemetry/sdk-trace-base';
import type * as OtelExporter from '@opentelemetry/exporter-trace-otlp-http';
import type * as OtelResources from '@opentelemetry/resources';
import type { HookBus } from '../hooks.ts';

/**
 * The OpenTelemetry packages, loaded (synchronously, their CommonJS builds) only when tracing is on: a
 * node without OTEL_EXPORTER_OTLP_ENDPOINT does not spend their 200-300 ms of loading at start.
 */
interface Otel {
  readonly api: typeof OtelApi;
  readonly base: typeof OtelTraceBase;
  readonly exporter: typeof OtelExporter;
  readonly resources: typeof OtelResources;
}
function loadOtel(): Otel {
  const require = createRequire(import.meta.url);
  return {
    api: require('@opentelemetry/api') as typeof OtelApi,
    base: require('@opentelemetry/sdk-trace-base') as typeof OtelTraceBase,
    exporter: require('@opentelemetry/exporter-trace-otlp-http') as typeof OtelExporter,
    resources: require('@opentelemetry/resources') as typeof OtelResources,
  };
}

/** W3C trace context, version 00: `00-<trace id>-<parent id>-<flags>`. */
const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const INVALID_TRACE = '0'.repeat(32);
const INVALID_SPAN = '0'.repeat(16);

/** The span context of a `traceparent`, as a parent Context; the root context when absent or malformed. */
function contextOf(api: typeof OtelApi, traceparent: unknown): Context {
  const m = typeof traceparent === 'string' ? TRACEPARENT_RE.exec(traceparent) : null;
  if (!m || m[1] === INVALID_TRACE || m[2] === INVALID_SPAN) return api.ROOT_CONTEXT;
  return api.trace.setSpanContext(api.ROOT_CONTEXT, {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: parseInt(m[3]!, 16) & api.TraceFlags.SAMPLED,
    isRemote: true,
  });
}

export function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-${c.traceFlags.toString(16).padStart(2, '0')}`;
}

/** The `traceparent` in a channel event frame's metadata (which comes last in the frame), if any. */
export function frameTraceparent(frame: string): string | undefined {
  const at = frame.lastIndexOf('"metadata":');
  if (at < 0) return undefined;
  const m = /"traceparent":"(00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})"/.exec(frame.slice(at));
  return m?.[1];
}

/** A span around `run`, ended with its outcome. */
async function within<T>(api: typeof OtelApi, span: Span, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}

export interface TracingOptions {
  /** The collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT); spans go to `<endpoint>/v1/traces`. */
  readonly endpoint: string;
  readonly nodeId: string;
  /** How long spans wait to be batched (default 1000 ms; tests use less). */
  readonly batchDelayMs?: number;
}

export class Tracing {
  private readonly provider: OtelTraceBase.BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly api: typeof OtelApi;

  constructor(options: TracingOptions) {
    const { api, base, exporter: otlp, resources } = loadOtel();
    this.api = api;
    const { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, AlwaysOnSampler } = base;
    const exporter = new otlp.OTLPTraceExporter({ url: `${options.endpoint.replace(/\/$/, '')}/v1/traces` });
    this.provider = new BasicTracerProvider({
      resource: resources.resourceFromAttributes({
        'service.name': 'apix',
        'service.instance.id': options.nodeId,
      }),
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
      spanProcessors: [
        new BatchSpanProcessor(exporter, {
          scheduledDelayMillis: options.batchDelayMs ?? 1000,
          maxQueueSize: 2048, // bounded: spans beyond it are dropped by the processor
        }),
      ],
    });
    this.tracer = this.provider.getTracer('apix');
  }

  /** `apix.publish` around `run`, the child of the publisher's `traceparent`; `run` gets the span's. */
  publish<T>(
    traceparent: unknown,
    attributes: Attributes,
    run: (traceparent: string) => Promise<T>,
  ): Promise<T> {
    const span = this.tracer.startSpan(
      'apix.publish',
      { kind: this.api.SpanKind.SERVER, attributes },
      contextOf(this.api, traceparent),
    );
    return within(this.api, span, () => run(traceparentOf(span)));
  }

  /** `apix.route` around `run`, the child of `traceparent` (the publish span's); `run` gets the route's. */
  route<T>(
    traceparent: unknown,
    attributes: Attributes,
    run: (traceparent: string) => Promise<T>,
  ): Promise<T> {
    const span = this.tracer.startSpan(
      'apix.route',
      { kind: this.api.SpanKind.INTERNAL, attributes },
      contextOf(this.api, traceparent),
    );
    return within(this.api, span, () => run(traceparentOf(span)));
  }

  /** `apix.deliver`: one node's fan-out of one event, the child of the event's `traceparent`. */
  deliver(frame: string, attributes: Attributes, startMs: number, endMs: number): void {
    const parent = frameTraceparent(frame);
    if (parent === undefined) return; // an event published without tracing: no trace to continue
    const span = this.tracer.startSpan(
      'apix.deliver',
      { kind: this.api.SpanKind.PRODUCER, attributes, startTime: startMs },
      contextOf(this.api, parent),
    );
    span.end(endMs);
  }

  /** `apix.connect`: a handshake, from accept to established. */
  connect(attributes: Attributes, startMs: number, endMs: number): void {
    this.tracer
      .startSpan('apix.connect', { kind: this.api.SpanKind.SERVER, attributes, startTime: startMs })
      .end(endMs);
  }

  /** Exports what is batched, then stops. */
  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}

/**
 * The node's Tracing when OTEL_EXPORTER_OTLP_ENDPOINT is set (with its `apix.connect` spans attached to
 * the hooks), else undefined.
 */
export function nodeTracing(
  config: { readonly otlpEndpoint?: string | undefined },
  nodeId: string,
  hooks: HookBus,
  now: () => number,
): Tracing | undefined {
  if (config.otlpEndpoint === undefined) return undefined;
  const tracing = new Tracing({ endpoint: config.otlpEndpoint, nodeId });
  hooks.attach({
    onConnect: ({ connection, resumed }) =>
      tracing.connect(
        {
          'apix.org': connection.principal.orgId,
          'apix.connection_id': connection.connectionId,
          'apix.client_type': connection.clientType,
          'apix.resumed': resumed,
        },
        connection.connectedAt,
        now(),
      ),
  });
  return tracing;
}
