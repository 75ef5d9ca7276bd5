/**
 * Organizations (tenants). Ids are the JWT `org` claim. `noteSeen` records organizations met on live
 * connections in batches (once per process per organization), so that operators can list them.
 */
import type { Organization } from '../generated/prisma/client.ts';
import type { PrismaClient } from './database.ts';

export class Organizations {
  private readonly known = new Set<string>();
  private pending = new Set<string>();

  constructor(private readonly prisma: PrismaClient) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Queues an organization row unless this process already wrote it. O(1), no I/O. */
  noteSeen(orgId: string): void {
    if (this.known.has(orgId) || this.pending.size >= 10_000) return;
    this.pending.add(orgId);
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const ids = [...this.pending];
    await this.prisma.organization.createMany({ data: ids.map((id) => ({ id })), skipDuplicates: true });
    for (const id of ids) {
      this.pending.delete(id);
      if (this.known.size < 100_000) this.known.add(id);
    }
  }

  /** Creates the organization if it does not exist (and names it, when a name is given). */
  ensure(orgId: string, name?: string): Promise<Organization> {
    return this.prisma.organization.upsert({
      where: { id: orgId },
      create: { id: orgId, name: name ?? null },
      update: name === undefined ? {} : { name },
    });
  }

  get(orgId: string): Promise<Organization | null> {
    return this.prisma.organization.findUnique({ where: { id: orgId } });
  }

  list(): Promise<Organization[]> {
    return this.prisma.organization.findMany({ orderBy: { id: 'asc' } });
  }

  setSuspended(orgId: string, suspended: boolean, at: Date = new Date()): Promise<Organization> {
    return this.prisma.organization.upsert({
      where: { id: orgId },
      create: { id: orgId, suspendedAt: suspended ? at : null },
      update: { suspendedAt: suspended ? at : null },
    });
  }
}
