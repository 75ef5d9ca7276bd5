/**
 * The dashboard's dead-letter card in a real Chromium: an admin sees the organization's dead letters,
 * replays one (a subscriber of the channel gets it again) and purges the rest, under the dashboard's
 * strict CSP. Without Chromium the test skips loudly, except under CI=true.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { RawClient, startNode, token } from '../support/gateway.ts';
import { launchChromium, skipWithoutChromium } from '../support/chromium.ts';
import type { ApiXNode } from '../../src/node.ts';

describe('dead letters on the dashboard', { skip: skipWithoutChromium(), timeout: 120_000 }, () => {
  let node: ApiXNode;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    node = await startNode({ ackTimeoutMs: 100, retry: { baseMs: 20, maxMs: 50, maxAttempts: 2 } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
    page.on('console', (m) => {
      if (/Content Security Policy|Content-Security-Policy/i.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
  });
  after(async () => {
    await browser?.close();
    await node?.close();
  });

  const rows = () =>
    page.$$eval('#dead-letters tbody tr[data-event-id]', (trs) =>
      trs.map((tr) => (tr as HTMLElement).dataset.eventId ?? ''),
    );

  it('lists them, replays one to the channel and purges the rest', async () => {
    const worker = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'worker' }) });
    await worker.subscribe({ channels: ['tool:jobs'], acknowledgment: true });
    const pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'boss', roles: ['service'] }),
    });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++)
      ids.push((await pub.publish('tool:jobs', 'job', { n: i })).payload.id as string);
    for (const _ of ids) await pub.nextOfType('message.failed', 10_000);
    worker.close();
    const reader = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'reader' }) });
    await reader.subscribe({ channels: ['tool:jobs'] });

    await page.goto(`${node.httpUrl}/dashboard`);
    await page.fill('#token', await token({ sub: 'ops', roles: ['admin'] }));
    await page.click('#login-form button[type="submit"]');
    await page.waitForSelector('#dead-letters-card[data-count="2"]', { state: 'attached', timeout: 30_000 });
    assert.deepEqual((await rows()).sort(), ids);

    await page.click(`#dead-letters tr[data-event-id="${ids[0]}"] button:text("Replay")`);
    const replayed = await reader.next((f) => f.type === 'job' && f.metadata?.replay_of === ids[0], 10_000);
    assert.deepEqual(replayed.payload, { n: 0 });
    await page.waitForSelector('#dead-letters-card[data-count="1"]', { state: 'attached', timeout: 30_000 });
    assert.match((await page.textContent('#dead-letters-status')) ?? '', /1 replayed/);

    await page.click('#dead-letters-actions button:text("Purge all")');
    await page.waitForSelector('#dead-letters-card[data-count="0"]', { state: 'attached', timeout: 30_000 });
    assert.match((await page.textContent('#dead-letters-status')) ?? '', /1 purged/);
    assert.deepEqual(problems, []);
    reader.close();
    pub.close();
  });
});
