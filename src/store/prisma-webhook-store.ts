/**
 * Webhook delivery state in the database (PostgreSQL, or the embedded PGlite of `apix serve`): a node
 * without Redis keeps its endpoints, queued batches and dead letters across a restart. Guarantees as in
 * src/webhooks/webhook-store.ts: `claim` leases due rows in one statement (`FOR UPDATE SKIP LOCKED`, so
 * nodes sharing PostgreSQL never claim the same batch at once).
 */
import type { Prisma } from '../generated/prisma/client.ts';
import type { ApiXWebhookBatch, ApiXWebhookEndpoint } from '../generated/prisma/client.ts';
import type {
  WebhookBatch,
  WebhookDeadLetter,
  WebhookEndpoint,
  WebhookEvent,
  WebhookEventType,
} from '../webhooks/events.ts';
import type { WebhookStore } from '../webhooks/webhook-store.ts';
import type { PrismaClient } from './database.ts';

function endpointOf(row: ApiXWebhookEndpoint): WebhookEndpoint {
  return {
    id: row.id,
    orgId: row.organizationId,
    url: row.url,
    events: row.events as WebhookEventType[],
    secret: row.secret,
    createdAt: row.createdAt.getTime(),
  };
}

function batchOf(row: ApiXWebhookBatch): WebhookBatch {
  return {
    id: row.id,
    orgId: row.organizationId,
    endpointId: row.endpointId,
    events: row.events as unknown as WebhookEvent[],
    attempts: row.attempts,
    lastError: row.lastError ?? undefined,
  };
}

function deadOf(row: ApiXWebhookBatch): WebhookDeadLetter {
  return { ...batchOf(row), failedAt: row.deadAt!.getTime() };
}

export class PrismaWebhookStore implements WebhookStore {
  constructor(private readonly prisma: PrismaClient) {}

  async addEndpoint(e: WebhookEndpoint): Promise<void> {
    await this.prisma.apiXWebhookEndpoint.create({
      data: {
        id: e.id,
        organizationId: e.orgId,
        url: e.url,
        events: [...e.events],
        secret: e.secret,
        createdAt: new Date(e.createdAt),
      },
    });
  }

  async removeEndpoint(orgId: string, id: string): Promise<boolean> {
    const r = await this.prisma.apiXWebhookEndpoint.deleteMany({ where: { id, organizationId: orgId } });
    return r.count > 0;
  }

  async endpoints(orgId: string): Promise<WebhookEndpoint[]> {
    const rows = await this.prisma.apiXWebhookEndpoint.findMany({ where: { organizationId: orgId } });
    return rows.map(endpointOf);
  }

  async endpoint(id: string): Promise<WebhookEndpoint | undefined> {
    const row = await this.prisma.apiXWebhookEndpoint.findUnique({ where: { id } });
    return row ? endpointOf(row) : undefined;
  }

  async add(batch: WebhookBatch, dueAt: number, maxQueued: number): Promise<boolean> {
    if ((await this.queued()) >= maxQueued) return false;
    await this.prisma.apiXWebhookBatch.create({
      data: {
        id: batch.id,
        organizationId: batch.orgId,
        endpointId: batch.endpointId,
        events: batch.events as unknown as Prisma.InputJsonValue,
        attempts: batch.attempts,
        lastError: batch.lastError ?? null,
        dueAt: new Date(dueAt),
      },
    });
    return true;
  }

  async claim(now: number, leaseMs: number, max: number): Promise<WebhookBatch[]> {
    const rows = await this.prisma.$queryRawUnsafe<ApiXWebhookBatch[]>(
      `UPDATE "ApiXWebhookBatch" SET "dueAt" = $1 WHERE "id" IN (
         SELECT "id" FROM "ApiXWebhookBatch" WHERE "deadAt" IS NULL AND "dueAt" <= $2
         ORDER BY "dueAt" LIMIT $3 FOR UPDATE SKIP LOCKED
       ) RETURNING *`,
      new Date(now + leaseMs),
      new Date(now),
      max,
    );
    return rows.map(batchOf);
  }

  async done(batchId: string): Promise<void> {
    await this.prisma.apiXWebhookBatch.deleteMany({ where: { id: batchId } });
  }

  async retry(batch: WebhookBatch, dueAt: number): Promise<void> {
    await this.prisma.apiXWebhookBatch.updateMany({
      where: { id: batch.id },
      data: { attempts: batch.attempts, lastError: batch.lastError ?? null, dueAt: new Date(dueAt) },
    });
  }

  async deadLetter(letter: WebhookDeadLetter, maxDead: number): Promise<void> {
    const deadAt = new Date(letter.failedAt);
    await this.prisma.apiXWebhookBatch.upsert({
      where: { id: letter.id },
      update: { attempts: letter.attempts, lastError: letter.lastError ?? null, deadAt },
      create: {
        id: letter.id,
        organizationId: letter.orgId,
        endpointId: letter.endpointId,
        events: letter.events as unknown as Prisma.InputJsonValue,
        attempts: letter.attempts,
        lastError: letter.lastError ?? null,
        dueAt: deadAt,
        deadAt,
      },
    });
    // The oldest go past the bound.
    await this.prisma.$executeRawUnsafe(
      `DELETE FROM "ApiXWebhookBatch" WHERE "id" IN (
         SELECT "id" FROM "ApiXWebhookBatch" WHERE "deadAt" IS NOT NULL ORDER BY "deadAt" DESC, "id" OFFSET $1
       )`,
      maxDead,
    );
  }

  async deadLetters(orgId: string): Promise<WebhookDeadLetter[]> {
    const rows = await this.prisma.apiXWebhookBatch.findMany({
      where: { organizationId: orgId, deadAt: { not: null } },
      orderBy: { deadAt: 'asc' },
    });
    return rows.map(deadOf);
  }

  async takeDeadLetter(orgId: string, id: string): Promise<WebhookDeadLetter | undefined> {
    const row = await this.prisma.apiXWebhookBatch.findFirst({
      where: { id, organizationId: orgId, deadAt: { not: null } },
    });
    if (!row) return undefined;
    // Only the one that removed it gets it.
    const r = await this.prisma.apiXWebhookBatch.deleteMany({ where: { id, deadAt: { not: null } } });
    return r.count === 1 ? deadOf(row) : undefined;
  }

  async queued(): Promise<number> {
    return this.prisma.apiXWebhookBatch.count({ where: { deadAt: null } });
  }

  async nextDue(): Promise<number | undefined> {
    const row = await this.prisma.apiXWebhookBatch.findFirst({
      where: { deadAt: null },
      orderBy: { dueAt: 'asc' },
      select: { dueAt: true },
    });
    return row?.dueAt.getTime();
  }
}
