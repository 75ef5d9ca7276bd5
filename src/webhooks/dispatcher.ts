/**
 * The webhook dispatcher of one node: events from the hooks wait in a bounded buffer, are grouped every
 * `flushMs` into batches (one per endpoint that selected their type, at most `batchMax` events each) and
 * queued in the store; due batches are claimed (leased, so one node sends each) and POSTed, signed.
 * A failure is retried with full-jitter backoff (src/retry/backoff.ts, the RetryManager's), due at
 * `now + backoffDelay(attempt)` in the store, so a restart mid-retry still delivers; after `maxAttempts`
 * the batch is a dead letter, listed and replayed through the admin API.
 *
 * Memory is bounded whatever the receivers do: the buffer (`bufferMax` events, the rest dropped and
 * counted), the batches being sent (`concurrency`), and the store's queue (`queueMax` batches).
 */
import { randomBytes } from 'node:crypto';
import type { Clock, Random, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import { backoffDelay } from '../retry/backoff.ts';
import type { BackoffPolicy } from '../retry/backoff.ts';
import type { WebhookBatch, WebhookEndpoint, WebhookEvent, WebhookEventType } from './events.ts';
import type { WebhookStore } from './webhook-store.ts';
import type { Sender } from './sender.ts';

export interface DispatcherOptions {
  readonly flushMs: number;
  readonly batchMax: number;
  readonly bufferMax: number;
  readonly queueMax: number;
  readonly deadLetterMax: number;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly backoff: BackoffPolicy;
  /** How long a claimed batch is this node's before another may claim it (longer than a send). */
  readonly leaseMs: number;
  /** How long an organization's endpoints are cached before they are read again. */
  readonly endpointCacheMs: number;
  /**
   * How often an idle node asks the store anyway (default IDLE_POLL_MS), to take over batches of a node
   * that died. Infinity when no other node shares the store (one node, memory engines): it then asks only
   * at start and when a batch it knows of is due, so that the embedded database can stay shut down.
   */
  readonly idlePollMs?: number;
}

export interface DispatcherCounters {
  delivered: number;
  failedAttempts: number;
  deadLettered: number;
  dropped: number;
}

const MAX_CACHED_ORGS = 10_000;
/**
 * An idle node asks the store at most this often whether a batch is due (batches this node queues or
 * retries are known without asking): an embedded database may sleep, and a batch queued by a node that
 * died is taken over within this time.
 */
export const IDLE_POLL_MS = 30_000;

export class WebhookDispatcher {
  private buffer: WebhookEvent[] = [];
  private readonly cache = new Map<string, { at: number; endpoints: WebhookEndpoint[] }>();
  private inflight = 0;
  private readonly sends = new Set<Promise<void>>();
  private ticking: Promise<void> | undefined;
  /** When a batch may be due next (0 at start: ask the store), and when the store was last asked. */
  private nextDueAt = 0;
  private lastPoll = Number.NEGATIVE_INFINITY;
  private timer: TimerHandle | undefined;
  readonly counters: DispatcherCounters = { delivered: 0, failedAttempts: 0, deadLettered: 0, dropped: 0 };

  constructor(
    private readonly store: WebhookStore,
    private readonly send: Sender,
    private readonly options: DispatcherOptions,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly log: Logger,
  ) {}

  /** Events waiting in this node's buffer. */
  get buffered(): number {
    return this.buffer.length;
  }
  /** Organizations whose endpoints are cached (at most 10000). */
  get cachedOrgs(): number {
    return this.cache.size;
  }
  /** Batches this node is sending now. */
  get sending(): number {
    return this.inflight;
  }

  /** Takes one event (from a hook: cheap, never throws); dropped and counted when the buffer is full. */
  emit(orgId: string, type: WebhookEventType, data: Record<string, unknown>): void {
    // Known not to be wanted (no endpoint of the organization selects it): not even buffered.
    const known = this.cache.get(orgId);
    if (
      known &&
      this.clock.now() - known.at < this.options.endpointCacheMs &&
      !known.endpoints.some((e) => (e.events as readonly string[]).includes(type))
    )
      return;
    if (this.buffer.length >= this.options.bufferMax) {
      this.counters.dropped++;
      return;
    }
    this.buffer.push({ id: newId('evt'), type, organizationId: orgId, time: this.clock.now(), data });
  }

  start(): void {
    this.timer ??= this.clock.setInterval(() => void this.tick(), this.options.flushMs);
  }

  /** Stops the timer; what is buffered is queued in the store first. */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.ticking;
    await this.flush().catch((err) => this.log.warn({ err }, 'webhook events not queued at stop'));
  }

  /** One round: queue what is buffered, then send what is due. One round at a time. */
  tick(): Promise<void> {
    this.ticking ??= (async () => {
      try {
        await this.flush();
        await this.sendDue();
      } catch (err) {
        this.log.warn({ err }, 'webhook round failed; retried next round');
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }

  /** Groups the buffered events into batches per endpoint and queues them in the store. */
  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const events = this.buffer;
    this.buffer = [];
    const byOrg = new Map<string, WebhookEvent[]>();
    for (const e of events) {
      const list = byOrg.get(e.organizationId) ?? [];
      list.push(e);
      byOrg.set(e.organizationId, list);
    }
    for (const [orgId, list] of byOrg) {
      let endpoints: WebhookEndpoint[];
      try {
        endpoints = await this.endpointsOf(orgId);
      } catch (err) {
        // The store is down: the events go back to the buffer (bounded), for the next round.
        this.requeue(list);
        throw err;
      }
      for (const endpoint of endpoints) await this.queueFor(endpoint, list);
    }
  }

  private requeue(events: readonly WebhookEvent[]): void {
    const room = Math.max(0, this.options.bufferMax - this.buffer.length);
    this.buffer.push(...events.slice(0, room));
    this.counters.dropped += Math.max(0, events.length - room);
  }

  private async queueFor(endpoint: WebhookEndpoint, events: readonly WebhookEvent[]): Promise<void> {
    const selected = events.filter((e) => (endpoint.events as readonly string[]).includes(e.type));
    for (let i = 0; i < selected.length; i += this.options.batchMax) {
      const chunk = selected.slice(i, i + this.options.batchMax);
      const batch: WebhookBatch = {
        id: newId('whb'),
        orgId: endpoint.orgId,
        endpointId: endpoint.id,
        events: chunk,
        attempts: 0,
      };
      if (await this.store.add(batch, this.clock.now(), this.options.queueMax)) this.due(this.clock.now());
      else {
        this.counters.dropped += chunk.length;
        this.log.warn({ endpoint: endpoint.id, events: chunk.length }, 'webhook queue full: events dropped');
      }
    }
  }

  /** The organization's endpoints, cached for `endpointCacheMs`. */
  async endpointsOf(orgId: string): Promise<WebhookEndpoint[]> {
    const now = this.clock.now();
    const hit = this.cache.get(orgId);
    if (hit && now - hit.at < this.options.endpointCacheMs) return hit.endpoints;
    const endpoints = await this.store.endpoints(orgId);
    if (this.cache.size >= MAX_CACHED_ORGS) this.cache.clear();
    this.cache.set(orgId, { at: now, endpoints });
    return endpoints;
  }

  /** Forgets the cached endpoints of an organization (after a change made on this node). */
  invalidate(orgId: string): void {
    this.cache.delete(orgId);
  }

  /**
   * Claims the due batches this node has room for and starts sending them; resolves when they are claimed
   * (a slow receiver does not hold up the next round). `sent()` waits for the sends too.
   */
  async sendDue(): Promise<void> {
    const room = this.options.concurrency - this.inflight;
    const now = this.clock.now();
    const idlePollMs = this.options.idlePollMs ?? IDLE_POLL_MS;
    if (room <= 0 || (now < this.nextDueAt && now - this.lastPoll < idlePollMs)) return;
    this.lastPoll = now;
    // Batches noted while the store answers (retries of sends in flight) lower it again.
    this.nextDueAt = Infinity;
    let batches: WebhookBatch[];
    try {
      batches = await this.store.claim(now, this.options.leaseMs, room);
      // A full claim may have left due batches behind: ask again next round; else wait for the next one.
      const next = batches.length === room ? now : ((await this.store.nextDue()) ?? Infinity);
      this.nextDueAt = Math.min(this.nextDueAt, next);
    } catch (err) {
      this.nextDueAt = now; // the store failed: ask again next round
      throw err;
    }
    for (const b of batches) {
      const p = this.sendOne(b).finally(() => this.sends.delete(p));
      this.sends.add(p);
    }
  }

  /** Resolves when the sends started so far are over. */
  async sent(): Promise<void> {
    await Promise.all([...this.sends]);
  }

  private async sendOne(batch: WebhookBatch): Promise<void> {
    this.inflight++;
    try {
      const endpoint = await this.store.endpoint(batch.endpointId);
      if (!endpoint) return await this.store.done(batch.id);
      const failure = await this.send(
        endpoint.url,
        endpoint.secret,
        JSON.stringify({ events: batch.events }),
      );
      if (failure === undefined) {
        await this.store.done(batch.id);
        this.counters.delivered += batch.events.length;
        return;
      }
      await this.failed(batch, failure);
    } catch (err) {
      // The store failed: the lease runs out and the batch is claimed again.
      this.log.warn({ err, batch: batch.id }, 'webhook batch state not saved');
    } finally {
      this.inflight--;
    }
  }

  private async failed(batch: WebhookBatch, failure: string): Promise<void> {
    this.counters.failedAttempts++;
    const attempts = batch.attempts + 1;
    const next: WebhookBatch = { ...batch, attempts, lastError: failure };
    if (attempts >= this.options.maxAttempts) {
      this.counters.deadLettered++;
      this.log.warn({ batch: batch.id, endpoint: batch.endpointId, failure }, 'webhook batch dead-lettered');
      await this.store.deadLetter({ ...next, failedAt: this.clock.now() }, this.options.deadLetterMax);
      return;
    }
    const delay = backoffDelay(attempts - 1, this.options.backoff, this.random);
    await this.store.retry(next, this.clock.now() + delay);
    this.due(this.clock.now() + delay);
  }

  /** A batch this node stored is due at `at`. */
  private due(at: number): void {
    this.nextDueAt = Math.min(this.nextDueAt, at);
  }

  /** Queues a dead letter again (attempts from zero); false when there is none of that id. */
  async replay(orgId: string, id: string): Promise<boolean> {
    const letter = await this.store.takeDeadLetter(orgId, id);
    if (!letter) return false;
    const batch: WebhookBatch = {
      id: letter.id,
      orgId: letter.orgId,
      endpointId: letter.endpointId,
      events: letter.events,
      attempts: 0,
    };
    // An operator's replay is never refused for a full queue: it was stored already.
    await this.store.add(batch, this.clock.now(), Number.MAX_SAFE_INTEGER);
    this.due(this.clock.now());
    return true;
  }

  /** Sends one `webhook.test` event to the endpoint now; why it failed, or undefined. */
  test(endpoint: WebhookEndpoint): Promise<string | undefined> {
    const event: WebhookEvent = {
      id: newId('evt'),
      type: 'webhook.test',
      organizationId: endpoint.orgId,
      time: this.clock.now(),
      data: { endpointId: endpoint.id },
    };
    return this.send(endpoint.url, endpoint.secret, JSON.stringify({ events: [event] }));
  }
}

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}
