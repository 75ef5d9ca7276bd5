import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/clock.ts';
import { HookBus } from '../../../src/hooks.ts';
import type { ConnectionInfo } from '../../../src/hooks.ts';
import type { Principal } from '../../../src/auth/principal.ts';
import { LatencyTracker } from '../../../src/latency/latency-tracker.ts';

const peer = { remoteAddress: '10.0.0.1', userAgent: undefined, origin: undefined };
const principal = (orgId: string, userId = 'u'): Principal => ({
  orgId,
  userId,
  roles: ['member'],
  kind: 'jwt',
  scopes: [],
  isService: false,
  expiresAt: undefined,
  keyId: undefined,
});
const connection = (id: string, orgId: string): ConnectionInfo => ({
  connectionId: id,
  sessionId: `s-${id}`,
  clientType: 'WEB_APP',
  principal: principal(orgId, `user-${id}`),
  peer,
  status: 'CONNECTED',
  connectedAt: 0,
  channels: [],
  metadata: undefined,
});

function setup(options: Partial<ConstructorParameters<typeof LatencyTracker>[0]> = {}) {
  const clock = new ManualClock();
  const hooks = new HookBus((_n, err) => {
    throw err;
  });
  const tracker = new LatencyTracker({ clock, ignoredChannels: ['org:apix-dashboard'], ...options });
  hooks.attach(tracker.hooks());
  const publish = (orgId: string, channel: string) =>
    hooks.emit('onPublish', {
      principal: principal(orgId),
      peer,
      connection: undefined,
      channel,
      channelType: 'AGENT_EVENTS',
      type: 't',
      id: '1-0',
      bytes: 10,
    });
  const deliver = (orgId: string, channel: string, ms: number) =>
    hooks.emit('onDeliver', {
      orgId,
      channel,
      channelType: 'AGENT_EVENTS',
      publishedAt: clock.now() - ms,
      deliveredAt: clock.now(),
      recipients: 2,
      bytes: 100,
    });
  return { clock, hooks, tracker, publish, deliver };
}

describe('LatencyTracker', () => {
  it('keeps each organization to itself and leaves the dashboard channel out', () => {
    const { clock, tracker, publish, deliver } = setup();
    clock.advance(5000);
    for (let i = 0; i < 20; i++) {
      publish('acme', 'agent:a');
      deliver('acme', 'agent:a', 4);
    }
    publish('globex', 'agent:g');
    deliver('globex', 'agent:g', 50);
    publish('acme', 'org:apix-dashboard');
    deliver('acme', 'org:apix-dashboard', 1);

    const acme = tracker.organizationFigures('acme');
    assert.deepEqual(acme.busiestChannels, [{ channel: 'agent:a', events: 20 }]);
    assert.equal(acme.latency.publishToDeliver.count, 20);
    assert.equal(acme.latency.publishToDeliver.p99, 4);
    assert.equal(acme.throughput.eventsPerSec, 20 / 5);
    assert.equal(acme.throughput.deliveriesPerSec, 40 / 5);
    assert.equal(acme.throughput.bytesPerSec, 4000 / 5);
    const globex = tracker.organizationFigures('globex');
    assert.deepEqual(globex.busiestChannels, [{ channel: 'agent:g', events: 1 }]);
    assert.equal(globex.latency.publishToDeliver.p50, 50);
    const node = tracker.nodeFigures();
    assert.equal(node.latency.publishToDeliver.count, 21);
    assert.equal(node.byChannelType.AGENT_EVENTS!.publishToDeliver.count, 21);
    assert.equal(node.throughput.eventsPerSec, 21 / 5);
    // The window moves on: a minute later the latencies and rates are gone.
    clock.advance(70_000);
    assert.equal(tracker.nodeFigures().latency.publishToDeliver.count, 0);
    assert.equal(tracker.organizationFigures('acme').throughput.eventsPerSec, 0);
  });

  it('keeps the last RTT per connection and drops it on disconnect', () => {
    const { clock, hooks, tracker } = setup();
    hooks.emit('onConnect', { connection: connection('c1', 'acme'), resumed: false });
    hooks.emit('onConnect', { connection: connection('c2', 'acme'), resumed: false });
    hooks.emit('onHeartbeat', { connectionId: 'c1', sessionId: 's', rttMs: 30, at: clock.now() });
    hooks.emit('onHeartbeat', { connectionId: 'c1', sessionId: 's', rttMs: 12, at: clock.now() });
    hooks.emit('onHeartbeat', { connectionId: 'c2', sessionId: 's', rttMs: 80, at: clock.now() });
    assert.equal(tracker.lastRtt('c1'), 12);
    assert.deepEqual(
      tracker.organizationFigures('acme').slowestConnections.map((c) => [c.connectionId, c.rttMs]),
      [
        ['c2', 80],
        ['c1', 12],
      ],
    );
    assert.equal(tracker.organizationFigures('acme').latency.heartbeatRtt.count, 3);
    hooks.emit('onDisconnect', {
      connection: connection('c1', 'acme'),
      code: 1000,
      reason: '',
      status: 'DISCONNECTED',
    });
    assert.equal(tracker.lastRtt('c1'), undefined);
    assert.equal(tracker.nodeFigures().trackedConnections, 1);
  });

  it('bounds the organizations and connections it tracks', () => {
    const { hooks, tracker, publish } = setup({ maxOrganizations: 3, maxConnections: 2 });
    for (const org of ['a', 'b', 'c', 'd']) publish(org, 'agent:x');
    assert.equal(tracker.nodeFigures().trackedOrganizations, 3);
    assert.deepEqual(tracker.organizationFigures('a').busiestChannels, []); // the least recent went first
    assert.equal(tracker.organizationFigures('d').busiestChannels.length, 1);
    for (const id of ['c1', 'c2', 'c3'])
      hooks.emit('onConnect', { connection: connection(id, 'a'), resumed: false });
    assert.equal(tracker.nodeFigures().trackedConnections, 2);
  });

  it("records rate-limit hits and admin actions in the organization's recent activity", () => {
    const { clock, hooks, tracker } = setup();
    hooks.emit('onRateLimited', { principal: principal('acme', 'flooder'), peer, scope: 'connection' });
    hooks.emit('onRateLimited', { principal: undefined, peer, scope: 'connection' });
    hooks.emit('onAdminAction', { principal: principal('acme', 'ops'), peer, action: 'kick', target: 'c9' });
    const acme = tracker.organizationFigures('acme');
    assert.deepEqual(
      acme.recentActivity.map((e) => [e.kind, e.actor, e.action]),
      [
        ['admin', 'ops', 'kick'],
        ['rate_limited', 'flooder', 'connection'],
      ],
    );
    assert.equal(acme.rateLimitHits.recent.length, 1);
    assert.equal(tracker.nodeFigures().rateLimited.total, 2);
    assert.equal(tracker.organizationFigures('globex').recentActivity.length, 0);
    void clock;
  });
});
