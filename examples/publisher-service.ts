/**
 * A Node service of an AI-agent platform that publishes what its agents do, two ways:
 *
 * - the orchestrator's workflow transitions (`workflow_state_change`) and provider health checks go out
 *   over HTTP, `POST /v1/publish`: one request per event, no connection to keep;
 * - the tool runner's `tool_call_start` / `tool_call_result` / `tool_call_error` and the agent's status
 *   go out through the SDK: one WebSocket, replies matched to publishes, publishes buffered while
 *   reconnecting and resent with their idempotency key (so none is lost or doubled).
 *
 *   npm start                                                              # a gateway on :8080
 *   export APIX_TOKEN=$(npx apix token --sub publisher --org acme --roles service)
 *   #   or an API key, `apix_<keyId>_<secret>` (docs/security.md), made by the running gateway:
 *   #   export APIX_TOKEN=$(npx apix keys create --org acme --scopes publish --name publisher)
 *   #   or one made up here in that format and given to the gateway as a static key:
 *   #   export APIX_TOKEN=apix_publisher_$(node -e "console.log(crypto.randomBytes(32).toString('hex'))")
 *   #   APIX_API_KEYS=acme:$APIX_TOKEN:publish npm start
 *   node --import tsx examples/publisher-service.ts [--runs 5] [--interval-ms 1500] [--via both|http|sdk]
 *
 * Watch it in the browser at /examples/feed/ (examples/feed/). The classes below are what the browser
 * end-to-end test (tests/e2e/browser-feed.test.ts) publishes with.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { ApiXClient, ApiXError, isApiXError } from '../packages/sdk/src/index.ts';
import type { ErrorCode } from '../packages/sdk/src/index.ts';

/** One event to publish: where, what, and its payload (checked by the gateway for the domain types). */
export interface PlatformEvent {
  readonly channel: string;
  readonly type: string;
  readonly payload: Record<string, unknown>;
}

export interface Publisher {
  publish(event: PlatformEvent): Promise<{ id: string }>;
  close(): Promise<void>;
}

/** `POST /v1/publish` with `Authorization: Bearer <API key or service JWT>`. */
export class HttpPublisher implements Publisher {
  private readonly endpoint: string;

  /** `baseUrl`: the gateway's HTTP address (`http://localhost:8080`; ws:// is accepted too). */
  constructor(
    baseUrl: string,
    private readonly credential: string,
  ) {
    this.endpoint = new URL('/v1/publish', baseUrl.replace(/^ws(s?):/, 'http$1:')).href;
  }

  async publish(event: PlatformEvent): Promise<{ id: string }> {
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.credential}`, 'content-type': 'application/json' },
      body: JSON.stringify(event),
    });
    const body = (await response.json()) as { id?: string; code?: ErrorCode; message?: string };
    if (!response.ok || typeof body.id !== 'string')
      throw new ApiXError(body.code ?? 'INTERNAL', body.message ?? `HTTP ${response.status}`);
    return { id: body.id };
  }

  async close(): Promise<void> {}
}

/** The SDK over one WebSocket, as an internal service. */
export class SdkPublisher implements Publisher {
  private constructor(readonly client: ApiXClient) {}

  static async connect(url: string, credential: string): Promise<SdkPublisher> {
    const client = new ApiXClient({ url, token: credential, clientType: 'INTERNAL_SERVICE', WebSocket });
    client.on('reconnection.attempt', ({ attempt, delayMs }) =>
      console.warn(`sdk: reconnecting (attempt ${attempt} in ${delayMs} ms)`),
    );
    client.on('error', (err) => console.warn(`sdk: ${err.code} ${err.message}`));
    await client.connect();
    return new SdkPublisher(client);
  }

  async publish(event: PlatformEvent): Promise<{ id: string }> {
    const { id } = await this.client.publish(event.channel, event.type, event.payload);
    return { id };
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/** Which transport each event of a run goes through. */
export type Route = 'http' | 'sdk';

/**
 * The events of one scripted agent run: the workflow starts, the agent thinks and calls tools (the
 * second call fails on every third run), the workflow completes, the model provider reports its health.
 */
export function agentRun(run: number): Array<PlatformEvent & { readonly route: Route }> {
  const runId = `run-${run}`;
  const workflow = (from: string | undefined, to: string, step?: string) =>
    ({
      route: 'http',
      channel: 'workflow:onboarding',
      type: 'workflow_state_change',
      payload: { workflowId: 'onboarding', runId, ...(from ? { from } : {}), to, ...(step ? { step } : {}) },
    }) as const;
  const agent = (status: string, message?: string) =>
    ({
      route: 'sdk',
      channel: 'agent:research-bot',
      type: 'agent_status_update',
      payload: { agentId: 'research-bot', status, ...(message ? { message } : {}) },
    }) as const;
  const tool = (toolName: string, type: string, payload: Record<string, unknown>) =>
    ({
      route: 'sdk',
      channel: `tool:${toolName}`,
      type,
      payload: { toolCallId: `${runId}-${toolName}`, toolName, ...payload },
    }) as const;
  const fails = run % 3 === 0;
  return [
    workflow(undefined, 'running', 'research'),
    agent('thinking', 'planning the research'),
    tool('web_search', 'tool_call_start', { agentId: 'research-bot', input: { query: 'APIX gateway' } }),
    tool('web_search', 'tool_call_result', { output: { hits: 3 + run }, durationMs: 200 + 37 * run }),
    tool('code_interpreter', 'tool_call_start', { agentId: 'research-bot', input: { code: 'summarize()' } }),
    fails
      ? tool('code_interpreter', 'tool_call_error', {
          error: { message: 'sandbox timed out', code: 'TIMEOUT' },
          retryable: true,
        })
      : tool('code_interpreter', 'tool_call_result', { output: 'summary ready', durationMs: 900 }),
    agent(fails ? 'failed' : 'completed'),
    workflow('running', fails ? 'failed' : 'completed'),
    {
      route: 'http',
      channel: 'provider:openai',
      type: 'provider_health_update',
      payload: {
        providerId: 'openai',
        status: fails ? 'degraded' : 'healthy',
        latencyMs: fails ? 1800 : 420,
        errorRate: fails ? 0.12 : 0.01,
      },
    },
  ];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.APIX_URL ?? 'http://localhost:8080' },
      runs: { type: 'string', default: '5' },
      'interval-ms': { type: 'string', default: '1500' },
      via: { type: 'string', default: 'both' },
    },
  });
  const credential = process.env.APIX_TOKEN ?? process.env.APIX_API_KEY;
  if (!credential) {
    console.error('set APIX_TOKEN: npx apix token --sub publisher --org acme --roles service');
    return 2;
  }
  const via = values.via;
  if (via !== 'both' && via !== 'http' && via !== 'sdk') {
    console.error('--via must be both, http or sdk');
    return 2;
  }
  const runs = Number(values.runs);
  const intervalMs = Number(values['interval-ms']);
  const http = new HttpPublisher(values.url, credential);
  let sdk: SdkPublisher | undefined;
  try {
    sdk = via === 'http' ? undefined : await SdkPublisher.connect(values.url, credential);
  } catch (err) {
    console.error(`cannot connect the SDK: ${isApiXError(err) ? `${err.code} ${err.message}` : String(err)}`);
    return 1;
  }
  const pick = (route: Route): Publisher => ((via === 'both' ? route : via) === 'sdk' && sdk ? sdk : http);
  try {
    for (let run = 1; run <= runs; run++) {
      for (const { route, ...event } of agentRun(run)) {
        const publisher = pick(route);
        try {
          const { id } = await publisher.publish(event);
          console.log(`${publisher === sdk ? 'sdk ' : 'http'} ${id} ${event.channel} ${event.type}`);
        } catch (err) {
          console.error(isApiXError(err) ? `refused: ${err.code} ${err.message}` : err);
        }
        await new Promise((resolve) => setTimeout(resolve, intervalMs / 9));
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  } finally {
    await sdk?.close();
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
