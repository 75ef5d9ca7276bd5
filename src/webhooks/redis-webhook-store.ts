/** Webhook delivery state in Redis, shared by every node (see webhook-store.ts for the guarantees). */
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type { WebhookBatch, WebhookDeadLetter, WebhookEndpoint } from './events.ts';
import type { WebhookStore } from './webhook-store.ts';

export class RedisWebhookStore implements WebhookStore {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  async addEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    await this.client.hset(this.keys.webhooks('endpoints'), endpoint.id, JSON.stringify(endpoint));
  }

  async removeEndpoint(orgId: string, id: string): Promise<boolean> {
    const e = await this.endpoint(id);
    if (!e || e.orgId !== orgId) return false;
    return (await this.client.hdel(this.keys.webhooks('endpoints'), id)) === 1;
  }

  async endpoints(orgId: string): Promise<WebhookEndpoint[]> {
    const all = await this.client.hgetall(this.keys.webhooks('endpoints'));
    return Object.values(all)
      .map((j) => JSON.parse(j) as WebhookEndpoint)
      .filter((e) => e.orgId === orgId);
  }

  async endpoint(id: string): Promise<WebhookEndpoint | undefined> {
    const j = await this.client.hget(this.keys.webhooks('endpoints'), id);
    return j === null ? undefined : (JSON.parse(j) as WebhookEndpoint);
  }

  async add(batch: WebhookBatch, dueAt: number, maxQueued: number): Promise<boolean> {
    const r = await runScript(
      this.client,
      'webhook-add',
      [this.keys.webhooks('batches'), this.keys.webhooks('due')],
      [batch.id, JSON.stringify(batch), dueAt, maxQueued],
    );
    return Number(r) === 1;
  }

  async claim(now: number, leaseMs: number, max: number): Promise<WebhookBatch[]> {
    const r = (await runScript(
      this.client,
      'webhook-claim',
      [this.keys.webhooks('batches'), this.keys.webhooks('due')],
      [now, leaseMs, max],
    )) as string[];
    return r.map((j) => JSON.parse(j) as WebhookBatch);
  }

  async done(batchId: string): Promise<void> {
    await this.client
      .multi()
      .hdel(this.keys.webhooks('batches'), batchId)
      .zrem(this.keys.webhooks('due'), batchId)
      .exec();
  }

  async retry(batch: WebhookBatch, dueAt: number): Promise<void> {
    await this.client
      .multi()
      .hset(this.keys.webhooks('batches'), batch.id, JSON.stringify(batch))
      .zadd(this.keys.webhooks('due'), dueAt, batch.id)
      .exec();
  }

  async deadLetter(letter: WebhookDeadLetter, maxDead: number): Promise<void> {
    await runScript(
      this.client,
      'webhook-dead',
      [
        this.keys.webhooks('batches'),
        this.keys.webhooks('due'),
        this.keys.webhooks('dead'),
        this.keys.webhooks('deadorder'),
      ],
      [letter.id, JSON.stringify(letter), letter.failedAt, maxDead],
    );
  }

  async deadLetters(orgId: string): Promise<WebhookDeadLetter[]> {
    const all = await this.client.hgetall(this.keys.webhooks('dead'));
    return Object.values(all)
      .map((j) => JSON.parse(j) as WebhookDeadLetter)
      .filter((d) => d.orgId === orgId)
      .sort((a, b) => a.failedAt - b.failedAt);
  }

  async takeDeadLetter(orgId: string, id: string): Promise<WebhookDeadLetter | undefined> {
    const j = await this.client.hget(this.keys.webhooks('dead'), id);
    if (j === null) return undefined;
    const d = JSON.parse(j) as WebhookDeadLetter;
    if (d.orgId !== orgId) return undefined;
    // Two replays at once: only the one that removed it gets it.
    const [[, removed]] = (await this.client
      .multi()
      .hdel(this.keys.webhooks('dead'), id)
      .zrem(this.keys.webhooks('deadorder'), id)
      .exec()) as [[unknown, number], [unknown, number]];
    return removed === 1 ? d : undefined;
  }

  async queued(): Promise<number> {
    return this.client.zcard(this.keys.webhooks('due'));
  }

  async nextDue(): Promise<number | undefined> {
    const [, score] = await this.client.zrange(this.keys.webhooks('due'), '0', '0', 'WITHSCORES');
    return score === undefined ? undefined : Number(score);
  }
}
