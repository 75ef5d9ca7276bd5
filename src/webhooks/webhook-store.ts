/**
 * Where webhook delivery state lives, so that it survives a restart: endpoints, the batches waiting for
 * delivery (each with the time it is next due) and dead letters. Memory (this file; shared by the nodes
 * of one in-process bus) or Redis (redis-webhook-store.ts, shared by every node).
 *
 * Guarantees: `claim` hands a due batch to one caller at a time (it is leased for `leaseMs`: a node that
 * dies while sending leaves it to be claimed again when the lease runs out: at least once, never lost);
 * the queue and the dead letters are bounded (`add` answers false when the queue is full).
 */
import type { WebhookBatch, WebhookDeadLetter, WebhookEndpoint } from './events.ts';

export interface WebhookStore {
  addEndpoint(endpoint: WebhookEndpoint): Promise<void>;
  /** Removes the endpoint; answers whether it existed. */
  removeEndpoint(orgId: string, id: string): Promise<boolean>;
  endpoints(orgId: string): Promise<WebhookEndpoint[]>;
  endpoint(id: string): Promise<WebhookEndpoint | undefined>;
  /** Queues a batch, due at `dueAt`; false when the queue holds `maxQueued` batches already. */
  add(batch: WebhookBatch, dueAt: number, maxQueued: number): Promise<boolean>;
  /** Up to `max` batches due at `now`, each leased until `now + leaseMs`. */
  claim(now: number, leaseMs: number, max: number): Promise<WebhookBatch[]>;
  /** The batch was delivered (or its endpoint is gone): forgotten. */
  done(batchId: string): Promise<void>;
  /** The batch failed: stored with its new attempt count, due again at `dueAt`. */
  retry(batch: WebhookBatch, dueAt: number): Promise<void>;
  /** The batch failed for the last time: a dead letter (the oldest go past `maxDead`). */
  deadLetter(letter: WebhookDeadLetter, maxDead: number): Promise<void>;
  deadLetters(orgId: string): Promise<WebhookDeadLetter[]>;
  /** Takes a dead letter back out (to queue it again); undefined when there is none of that id. */
  takeDeadLetter(orgId: string, id: string): Promise<WebhookDeadLetter | undefined>;
  /** Batches waiting (due or leased). */
  queued(): Promise<number>;
  /** When the earliest waiting batch is due (or its lease ends); undefined when none waits. */
  nextDue(): Promise<number | undefined>;
}

/** Memory store (one per in-process bus of nodes); ends with the process. */
export class MemoryWebhookStore implements WebhookStore {
  private readonly endpointsById = new Map<string, WebhookEndpoint>();
  private readonly batches = new Map<string, { batch: WebhookBatch; dueAt: number }>();
  private readonly dead = new Map<string, WebhookDeadLetter>();

  async addEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    this.endpointsById.set(endpoint.id, endpoint);
  }
  async removeEndpoint(orgId: string, id: string): Promise<boolean> {
    const e = this.endpointsById.get(id);
    if (!e || e.orgId !== orgId) return false;
    return this.endpointsById.delete(id);
  }
  async endpoints(orgId: string): Promise<WebhookEndpoint[]> {
    return [...this.endpointsById.values()].filter((e) => e.orgId === orgId);
  }
  async endpoint(id: string): Promise<WebhookEndpoint | undefined> {
    return this.endpointsById.get(id);
  }
  async add(batch: WebhookBatch, dueAt: number, maxQueued: number): Promise<boolean> {
    if (this.batches.size >= maxQueued) return false;
    this.batches.set(batch.id, { batch, dueAt });
    return true;
  }
  async claim(now: number, leaseMs: number, max: number): Promise<WebhookBatch[]> {
    const due = [...this.batches.values()]
      .filter((b) => b.dueAt <= now)
      .sort((a, b) => a.dueAt - b.dueAt)
      .slice(0, max);
    for (const b of due) b.dueAt = now + leaseMs;
    return due.map((b) => b.batch);
  }
  async done(batchId: string): Promise<void> {
    this.batches.delete(batchId);
  }
  async retry(batch: WebhookBatch, dueAt: number): Promise<void> {
    this.batches.set(batch.id, { batch, dueAt });
  }
  async deadLetter(letter: WebhookDeadLetter, maxDead: number): Promise<void> {
    this.batches.delete(letter.id);
    this.dead.set(letter.id, letter);
    // Map order is insertion order: the oldest go first.
    for (const id of this.dead.keys()) {
      if (this.dead.size <= maxDead) break;
      this.dead.delete(id);
    }
  }
  async deadLetters(orgId: string): Promise<WebhookDeadLetter[]> {
    return [...this.dead.values()].filter((d) => d.orgId === orgId);
  }
  async takeDeadLetter(orgId: string, id: string): Promise<WebhookDeadLetter | undefined> {
    const d = this.dead.get(id);
    if (!d || d.orgId !== orgId) return undefined;
    this.dead.delete(id);
    return d;
  }
  async queued(): Promise<number> {
    return this.batches.size;
  }
  async nextDue(): Promise<number | undefined> {
    let min: number | undefined;
    for (const b of this.batches.values()) if (min === undefined || b.dueAt < min) min = b.dueAt;
    return min;
  }
}
