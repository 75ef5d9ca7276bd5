/**
 * The live activity feed example (examples/feed/) in a real Chromium, against real gateway nodes on the
 * Redis engine: the page connects with a token, shows what a Node service publishes (over HTTP and the
 * SDK, examples/publisher-service.ts), survives the gateway restarting on the same port (reconnects,
 * resumes, shows every event once and in channel order, including those published while it was down),
 * and shows a permission denial. The page loads under its own strict CSP; a violation fails the test.
 *
 * Set APIX_E2E_SCREENSHOT_DIR to keep screenshots of the page.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { config, token } from '../support/gateway.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import type { FoundRedis } from '../support/redis.ts';
import { deletePrefix } from '../support/redis-engines.ts';
import { launchChromium, skipWithoutChromium } from '../support/chromium.ts';
import { SteppedClock } from '../support/clock.ts';
import { createNode } from '../../src/node.ts';
import { memoryEngines } from '../../src/engines.ts';
import type { ApiXNode } from '../../src/node.ts';
import { createEngines } from '../../src/engines.ts';
import { createLogger } from '../../src/log.ts';
import { FEED_CSP, registerFeedExample, registerSdkBundle } from '../../src/http/examples.ts';
import { HttpPublisher, SdkPublisher, agentRun } from '../../examples/publisher-service.ts';
import type { PlatformEvent, Publisher } from '../../examples/publisher-service.ts';
import { WebSocket } from 'ws';
import { ApiXClient } from '../../packages/sdk/src/index.ts';
import type * as Sdk from '../../packages/sdk/src/index.ts';

const API_KEY = 'apix_static_acmekey'; // config() of tests/support/gateway.ts: acme:apix_static_acmekey
const FEED_CHANNELS = [
  'workflow:onboarding',
  'agent:research-bot',
  'tool:web_search',
  'tool:code_interpreter',
  'provider:openai',
];

interface Published {
  readonly id: string;
  readonly channel: string;
}

interface Shown {
  readonly id: string;
  readonly channel: string;
  readonly type: string;
}

const skip = skipWithoutChromium() || skipWithoutRedis();

describe('the live activity feed in Chromium', { skip, timeout: 60_000 }, () => {
  let redis: FoundRedis;
  let prefix: string;
  let browser: Browser;
  const nodes = new Set<ApiXNode>();

  /** A node on the Redis engine, serving the example, on `port` (0: any); its keys under `keyPrefix`. */
  async function startNode(port: number, nodeId: string, keyPrefix = prefix): Promise<ApiXNode> {
    const cfg = config({
      port,
      nodeId,
      redisUrl: redis.url,
      redisPrefix: keyPrefix,
      sessionTtlMs: 60_000,
      drainTimeoutMs: 2000,
    });
    const engines = await createEngines(cfg, { nodeId });
    const node = createNode({ config: cfg, logger: createLogger('silent', nodeId), engines });
    registerSdkBundle(node.httpRouter);
    registerFeedExample(node.httpRouter);
    await node.listen();
    nodes.add(node);
    return node;
  }

  async function stopNode(node: ApiXNode): Promise<void> {
    nodes.delete(node);
    await node.close();
  }

  /** A fresh page (its own sessionStorage) that records script errors and CSP violations. */
  async function openFeed(
    node: ApiXNode,
    jwt: string,
    channels: readonly string[],
    options: { withoutWebSocket?: boolean } = {},
  ): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // As in a browser whose WebSocket is locked down: the constructor is gone before any script runs.
    if (options.withoutWebSocket)
      await context.addInitScript(() => {
        delete (globalThis as { WebSocket?: unknown }).WebSocket;
      });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && /Content Security Policy|Refused to/i.test(msg.text()))
        problems.push(`CSP: ${msg.text()}`);
    });
    const fragment = new URLSearchParams({ token: jwt, channels: channels.join(',') });
    await page.goto(`${node.httpUrl}/examples/feed/#${fragment}`);
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
    assert.doesNotMatch(page.url(), /token=/, 'the page removes the token from the address bar');
    return { context, page, problems };
  }

  function shownEvents(page: Page): Promise<Shown[]> {
    // The feed shows the newest first; reversed, this is the order of arrival.
    return page.$$eval('#events li', (items) =>
      items
        .map((li) => {
          const data = (li as HTMLElement).dataset;
          return { id: data.id ?? '', channel: data.channel ?? '', type: data.type ?? '' };
        })
        .reverse(),
    );
  }

  async function waitForEventCount(page: Page, count: number, timeoutMs = 15_000): Promise<void> {
    try {
      await page.waitForFunction((n) => document.querySelectorAll('#events li').length >= n, count, {
        timeout: timeoutMs,
      });
    } catch (err) {
      const shown = await shownEvents(page);
      const log = await page.locator('#log').innerText();
      throw new Error(
        `expected ${count} events on the page, saw ${shown.length}: ${JSON.stringify(shown)}\nlog:\n${log}`,
        { cause: err },
      );
    }
  }

  async function publishAll(
    events: ReadonlyArray<PlatformEvent & { route: 'http' | 'sdk' }>,
    publishers: { http: Publisher; sdk: Publisher },
    into: Published[],
  ): Promise<void> {
    for (const { route, ...event } of events) {
      const { id } = await publishers[route].publish(event);
      into.push({ id, channel: event.channel });
    }
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    const dir = process.env.APIX_E2E_SCREENSHOT_DIR;
    if (dir) await page.screenshot({ path: join(dir, name), fullPage: true });
  }

  before(async () => {
    redis = await findRedis();
    prefix = uniquePrefix();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await Promise.all([...nodes].map((n) => n.close()));
    if (redis) {
      await deletePrefix(redis.url, prefix);
      await redis.release();
    }
  });

  it('serves the page under a strict CSP with no inline script, and the SDK as one ES module', async () => {
    const node = await startNode(0, 'e2e-static');
    try {
      const page = await fetch(`${node.httpUrl}/examples/feed/`);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('content-security-policy'), FEED_CSP);
      const html = await page.text();
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script has a src');
      assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or handler');

      const sdk = await fetch(`${node.httpUrl}/sdk/apix.js`);
      assert.equal(sdk.status, 200);
      assert.match(sdk.headers.get('content-type') ?? '', /^text\/javascript/);
      const code = await sdk.text();
      assert.match(code, /export\s*\{/);
      assert.doesNotMatch(code, /^\s*import\s/m, 'the bundle imports nothing');
      const etag = sdk.headers.get('etag') ?? '';
      const again = await fetch(`${node.httpUrl}/sdk/apix.js`, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304);

      const script = await (await fetch(`${node.httpUrl}/examples/feed/feed.js`)).text();
      assert.match(script, /from "\.\.\/\.\.\/sdk\/apix\.js"/, 'the page script loads the SDK bundle');
    } finally {
      await stopNode(node);
    }
  });

  for (const transport of ['websocket', 'http-stream'] as const)
    it(`shows what a Node service publishes, then survives a gateway restart: each event once, in order (${transport}${transport === 'websocket' ? '' : ', the page has no WebSocket'})`, async () => {
      // A cluster of its own (its own history): the page replays the channels' last events when it opens.
      const cluster = `${prefix}${transport}:`;
      let node1 = await startNode(0, `e2e-1-${transport}`, cluster);
      const port = Number(new URL(node1.httpUrl).port);
      const node2 = await startNode(0, `e2e-2-${transport}`, cluster); // another node of the cluster, up while node 1 is down
      const jwt = await token({ sub: `alice-${transport}`, org: 'acme', roles: ['member'] });
      const { context, page, problems } = await openFeed(node1, jwt, FEED_CHANNELS, {
        withoutWebSocket: transport !== 'websocket',
      });
      const sdkPublisher = await SdkPublisher.connect(node1.wsUrl, API_KEY);
      const published: Published[] = [];
      try {
        // 1. Live: a Node service publishes an agent run, half over HTTP, half through the SDK.
        await publishAll(
          agentRun(1),
          { http: new HttpPublisher(node1.httpUrl, API_KEY), sdk: sdkPublisher },
          published,
        );
        await waitForEventCount(page, published.length);
        assert.equal(await page.locator('#attempts').innerText(), '0');

        // 2. The gateway stops (drain: close 1001). The page reconnects, and fails while nobody listens.
        await stopNode(node1);
        await page.waitForFunction(
          () => Number(document.getElementById('attempts')?.textContent) >= 2,
          undefined,
          { timeout: 10_000 },
        );
        const state = await page.locator('#state').getAttribute('data-state');
        assert.ok(state === 'reconnecting' || state === 'connecting', `state while down: ${state}`);

        // 3. Meanwhile the platform keeps publishing, through the other node (into the shared history).
        const viaNode2 = new HttpPublisher(node2.httpUrl, API_KEY);
        await publishAll(agentRun(2), { http: viaNode2, sdk: viaNode2 }, published);

        // 4. A new gateway process on the same port: the page resumes and catches up; then more live events
        //    (the SDK publisher's were buffered while it was reconnecting, and go out once it is back).
        node1 = await startNode(port, `e2e-1b-${transport}`, cluster);
        await publishAll(
          agentRun(3),
          { http: new HttpPublisher(node1.httpUrl, API_KEY), sdk: sdkPublisher },
          published,
        );
        await waitForEventCount(page, published.length, 20_000);
        await page.waitForSelector('#state[data-state="connected"]');

        const shown = await shownEvents(page);
        // Ids are per channel (two channels published in the same millisecond give the same id): an event is
        // its channel and its id.
        const shownKeys = shown.map((e) => `${e.channel} ${e.id}`);
        assert.equal(
          new Set(shownKeys).size,
          shownKeys.length,
          `no event shown twice: ${shownKeys.join(', ')}`,
        );
        assert.equal(shown.length, published.length, 'no event missing, none extra');
        // Ids are ordered within a channel, and so is delivery (docs/protocol.md §6): compare channel by channel.
        for (const channel of FEED_CHANNELS) {
          assert.deepEqual(
            shown.filter((e) => e.channel === channel).map((e) => e.id),
            published.filter((e) => e.channel === channel).map((e) => e.id),
            `events of ${channel}, in order`,
          );
        }
        const log = await page.locator('#log').innerText();
        assert.match(log, /session resumed/, 'the reconnect resumed the session');
        assert.match(log, new RegExp(`connected \\S+ over ${transport}`), `the feed went over ${transport}`);
        assert.doesNotMatch(log, new RegExp(`over (?!${transport})`), 'and stayed on it');
        assert.match(log, /disconnected \(close 1001, UNAVAILABLE\), will reconnect/);
        assert.ok(Number(await page.locator('#attempts').innerText()) >= 2);
        assert.deepEqual(problems, []);
        await screenshot(page, `feed-after-restart-${transport}.png`);
      } finally {
        await sdkPublisher.close();
        await context.close();
        await stopNode(node1);
        await stopNode(node2);
      }
    });

  it('shows the events of two channels that carry the same ids (ids are per channel)', async () => {
    // Time stands still for the node (timers run): every publish falls in the same millisecond, so each
    // channel numbers its events <ms>-1, <ms>-2, ... and the two channels give the same ids.
    const clock = new SteppedClock();
    const cfg = config({ port: 0, nodeId: 'e2e-same-ids' });
    const node = createNode({
      config: cfg,
      clock,
      logger: createLogger('silent', 'e2e-same-ids'),
      engines: memoryEngines(cfg, clock),
    });
    registerSdkBundle(node.httpRouter);
    registerFeedExample(node.httpRouter);
    await node.listen();
    nodes.add(node);
    const jwt = await token({ sub: 'carol', org: 'acme', roles: ['member'] });
    const channels = ['agent:research-bot', 'tool:web_search'];
    const { context, page, problems } = await openFeed(node, jwt, channels);
    try {
      await page.locator('#log li', { hasText: 'subscribed tool:web_search' }).waitFor({ timeout: 10_000 });
      const http = new HttpPublisher(node.httpUrl, API_KEY);
      const published: Published[] = [];
      for (let i = 0; i < 2; i++)
        for (const channel of channels) {
          const { id } = await http.publish({
            channel,
            type: 'agent_status_update',
            payload: { agentId: 'research-bot', status: 'running', message: `${channel} ${i}` },
          });
          published.push({ id, channel });
        }
      assert.equal(published[0]!.id, published[1]!.id, 'the two channels gave the same id');
      await waitForEventCount(page, published.length);
      const shown = await shownEvents(page);
      assert.deepEqual(
        shown.map((e) => `${e.channel} ${e.id}`),
        published.map((e) => `${e.channel} ${e.id}`),
      );
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await stopNode(node);
    }
  });

  it('a reload resumes the stored session and shows the page caught up again: each event once, in order', async () => {
    const node = await startNode(0, 'e2e-reload');
    const jwt = await token({ sub: 'alice', org: 'acme', roles: ['member'] });
    const { context, page, problems } = await openFeed(node, jwt, FEED_CHANNELS);
    const http = new HttpPublisher(node.httpUrl, API_KEY);
    const published: Published[] = [];
    try {
      await publishAll(agentRun(1), { http, sdk: http }, published);
      // The first visit shows its replay (the channels may hold earlier tests' events) and then these.
      const key = (e: { channel: string; id: string }) => `${e.channel} ${e.id}`;
      const showsAll = async () => {
        const shown = new Set((await shownEvents(page)).map(key));
        return published.every((e) => shown.has(key(e)));
      };
      for (let t = Date.now(); !(await showsAll());) {
        assert.ok(Date.now() - t < 15_000, 'the first visit shows what was published');
        await new Promise((r) => setTimeout(r, 50));
      }
      const firstVisit = await shownEvents(page);
      // The page is loaded again in the same tab (the token comes in the fragment again: the page keeps it
      // out of the address bar): its session id, kept in sessionStorage, resumes the session, and the new
      // page, which has shown nothing yet, must get its replay (the last 20 per channel), not a blank feed.
      await page.goto('about:blank');
      const fragment = new URLSearchParams({ token: jwt, channels: FEED_CHANNELS.join(',') });
      await page.goto(`${node.httpUrl}/examples/feed/#${fragment}`);
      await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
      await waitForEventCount(page, firstVisit.length);
      await new Promise((r) => setTimeout(r, 200));
      const shown = await shownEvents(page);
      // Ids are per channel: an event is the pair (channel, id).
      const keys = shown.map(key);
      assert.equal(new Set(keys).size, keys.length, `no event shown twice: ${keys.join(', ')}`);
      assert.equal(
        shown.length,
        firstVisit.length,
        'what the first visit showed, no event missing, none extra',
      );
      for (const channel of FEED_CHANNELS) {
        const ids = shown.filter((e) => e.channel === channel).map((e) => e.id);
        assert.deepEqual(
          ids,
          firstVisit.filter((e) => e.channel === channel).map((e) => e.id),
          `events of ${channel}, in order`,
        );
        const mine = published.filter((e) => e.channel === channel).map((e) => e.id);
        assert.deepEqual(ids.slice(ids.length - mine.length), mine, `the newest of ${channel}`);
      }
      assert.match(
        await page.locator('#log').innerText(),
        /session resumed/,
        'the reload resumed the session',
      );
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
      await stopNode(node);
    }
  });

  it('a reload in the middle of a streamed answer shows its text once, whole, then the rest live', async () => {
    const node = await startNode(0, 'e2e-stream');
    const jwt = await token({ sub: 'alice', org: 'acme', roles: ['member'] });
    const { context, page, problems } = await openFeed(node, jwt, ['agent:research-bot']);
    const agent = new ApiXClient({
      url: node.wsUrl,
      tokenProvider: () => token({ sub: 'research-bot', org: 'acme', roles: ['service'] }),
      clientType: 'INTERNAL_SERVICE',
      WebSocket,
    });
    const pieces = Array.from({ length: 400 }, (_, i) => `word${i} `);
    const firstHalf = pieces.slice(0, 200).join('');
    const answerText = (id: string) =>
      page.locator(`#answers li[data-stream-id="${id}"] .answer-text`).textContent({ timeout: 10_000 });
    try {
      await agent.connect();
      const stream = agent.stream('agent:research-bot', {
        eventType: 'agent_message',
        data: { agentId: 'research-bot', role: 'assistant' },
      });
      for (let i = 0; i < 200; i++) {
        stream.append(pieces[i] as string);
        if (i % 20 === 19) await new Promise((r) => setTimeout(r, 20));
      }
      const row = `#answers li[data-stream-id="${stream.streamId}"]`;
      await page.waitForFunction(
        ([sel, n]) => (document.querySelector(`${sel} .answer-text`)?.textContent?.length ?? 0) >= n,
        [row, firstHalf.length] as const,
        { timeout: 15_000 },
      );
      // Reload mid-answer: the page resumes its session and gets the answer so far as one snapshot.
      await page.goto('about:blank');
      const fragment = new URLSearchParams({ token: jwt, channels: 'agent:research-bot' });
      await page.goto(`${node.httpUrl}/examples/feed/#${fragment}`);
      await page.waitForSelector(`${row}[data-status="streaming"]`, { timeout: 15_000 });
      assert.equal(await answerText(stream.streamId), firstHalf, 'the text so far, once');
      // The rest comes live, piece by piece, into the same row.
      for (let i = 200; i < 400; i++) {
        stream.append(pieces[i] as string);
        if (i % 20 === 19) await new Promise((r) => setTimeout(r, 20));
      }
      const ended = await stream.end('complete');
      await page.waitForSelector(`${row}[data-status="complete"]`, { timeout: 15_000 });
      assert.equal(await answerText(stream.streamId), pieces.join(''), 'the full text, once');
      assert.equal(await page.locator(row).count(), 1, 'one row for the answer');
      assert.equal(await page.locator(row).getAttribute('data-seq'), String(ended.seq));
      assert.deepEqual(problems, []);
      await screenshot(page, 'feed-stream.png');
    } finally {
      await agent.close();
      await context.close();
      await stopNode(node);
    }
  });

  it("loads the MessagePack codec only for encoding: 'msgpack', and speaks MessagePack from the page", async () => {
    const node = await startNode(0, 'e2e-msgpack');
    const context = await browser.newContext();
    const page = await context.newPage();
    const fetched: string[] = [];
    page.on('request', (r) => void fetched.push(new URL(r.url()).pathname));
    try {
      await page.goto(`${node.httpUrl}/healthz`); // the gateway's origin: the SDK loads as a same-origin module
      const jwt = await token({ sub: 'svc-msgpack', org: 'acme', roles: ['service'] });
      const url = node.wsUrl;
      const json = await page.evaluate(
        async ({ url, jwt, sdkPath }) => {
          const sdk = (await import(sdkPath)) as typeof Sdk;
          const client = new sdk.ApiXClient({ url, token: jwt, clientType: 'WEB_APP' });
          await client.connect();
          await client.close();
          return client.transport;
        },
        { url, jwt, sdkPath: '/sdk/apix.js' },
      );
      assert.equal(json, 'websocket');
      assert.ok(!fetched.includes('/sdk/apix-msgpack.js'), 'a JSON client does not load the codec');
      const data = await page.evaluate(
        async ({ url, jwt, sdkPath }) => {
          const sdk = (await import(sdkPath)) as typeof Sdk;
          const client = new sdk.ApiXClient({ url, token: jwt, clientType: 'WEB_APP', encoding: 'msgpack' });
          await client.connect();
          const sub = client.subscribe('agent:bin');
          const got = new Promise<unknown>((resolve) =>
            sub.on('*', (e: { payload: unknown }) => resolve(e.payload)),
          );
          await sub.ready;
          await client.publish('agent:bin', 'blob', { data: new Uint8Array([1, 2, 255]) });
          const payload = (await got) as { data: unknown };
          await client.close();
          // Bytes arrive as bytes only over MessagePack (JSON carries {"$binary": ...}).
          return payload.data instanceof Uint8Array ? [...payload.data] : payload.data;
        },
        { url, jwt, sdkPath: '/sdk/apix.js' },
      );
      assert.deepEqual(data, [1, 2, 255]);
      assert.ok(
        fetched.includes('/sdk/apix-msgpack.js'),
        'the msgpack client loaded the codec beside the SDK',
      );
    } finally {
      await context.close();
      await stopNode(node);
    }
  });

  it("shows a permission denial for someone else's channel, and stays connected", async () => {
    const node = await startNode(0, 'e2e-deny');
    const jwt = await token({ sub: 'bob', org: 'acme', roles: ['member'] });
    const { context, page, problems } = await openFeed(node, jwt, ['workflow:onboarding']);
    try {
      await page.locator('#private-channel').fill('user:someone-else');
      await page.locator('#private-subscribe').click();
      const denial = page.locator('#denials .denial[data-channel="user:someone-else"]');
      await denial.waitFor({ timeout: 5000 });
      assert.equal(await denial.getAttribute('data-code'), 'FORBIDDEN');
      const text = await denial.innerText();
      assert.match(text, /Permission denied/);
      assert.match(text, /user:someone-else/);
      assert.equal(await page.locator('#denials').getAttribute('role'), 'alert');
      assert.equal(await page.locator('#state').getAttribute('data-state'), 'connected');

      // The user's own channel is allowed, and events keep flowing on the same connection.
      await page.locator('#private-channel').fill('user:bob');
      await page.locator('#private-subscribe').click();
      await page.locator('#log li', { hasText: 'subscribed user:bob' }).waitFor({ timeout: 5000 });
      const http = new HttpPublisher(node.httpUrl, API_KEY);
      const note = await http.publish({
        channel: 'user:bob',
        type: 'system_notification',
        payload: { level: 'warning', title: 'Quota', message: 'research-bot used 80% of its budget' },
      });
      await page.locator(`#events li[data-id="${note.id}"]`).waitFor({ timeout: 5000 });
      assert.equal(await page.locator('#denials .denial').count(), 1);
      assert.deepEqual(problems, []);
      await screenshot(page, 'feed-denial.png');
    } finally {
      await context.close();
      await stopNode(node);
    }
  });
});
