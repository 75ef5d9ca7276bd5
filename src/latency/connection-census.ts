/**
 * Connections of this node counted by client type and status, node-wide and per organization, from
 * the gateway's own maps (a scan: cheap enough once a second, and never wrong the way counters kept by
 * hooks could drift across takeovers and resumes). Answers are cached for `maxAgeMs` (250 ms).
 */
import type { ClientType, ConnectionStatus } from '@apix/protocol';
import type { Principal } from '../auth/principal.ts';

/** What a census reads: the shape of ApiXGateway's `connections` and `sessions` maps. */
export interface CensusSource {
  readonly connections: ReadonlyMap<
    string,
    {
      readonly clientType: ClientType | undefined;
      readonly principal: Principal | undefined;
      readonly session: { readonly status: ConnectionStatus } | undefined;
    }
  >;
  readonly sessions: ReadonlyMap<
    string,
    {
      readonly isLive: boolean;
      readonly status: ConnectionStatus;
      readonly clientType: ClientType;
      readonly orgId: string;
    }
  >;
}

/** `CONNECTING`: a socket still in the `connect` handshake (not a ConnectionStatus of the seed). */
export type CensusStatus = ConnectionStatus | 'CONNECTING';

export interface ConnectionCounts {
  /** Open sockets (with CONNECTING ones). */
  total: number;
  /** Connected sockets by the client type they declared. */
  byClientType: Partial<Record<ClientType, number>>;
  /** CONNECTED and CONNECTING sockets, RECONNECTING (away, resumable) and SUSPENDED sessions. */
  byStatus: Partial<Record<CensusStatus, number>>;
}

export interface Census {
  readonly at: number;
  readonly node: ConnectionCounts;
  readonly organizations: ReadonlyMap<string, ConnectionCounts>;
}

const empty = (): ConnectionCounts => ({ total: 0, byClientType: {}, byStatus: {} });

export function takeCensus(source: CensusSource, now: number): Census {
  const node = empty();
  const organizations = new Map<string, ConnectionCounts>();
  const of = (orgId: string) => {
    let c = organizations.get(orgId);
    if (c === undefined) organizations.set(orgId, (c = empty()));
    return c;
  };
  for (const conn of source.connections.values()) {
    const status: CensusStatus = conn.session?.status ?? 'CONNECTING';
    const org = conn.principal ? of(conn.principal.orgId) : undefined;
    for (const c of org ? [node, org] : [node]) {
      c.total++;
      c.byStatus[status] = (c.byStatus[status] ?? 0) + 1;
      if (conn.session && conn.clientType)
        c.byClientType[conn.clientType] = (c.byClientType[conn.clientType] ?? 0) + 1;
    }
  }
  for (const s of source.sessions.values()) {
    if (s.isLive) continue; // counted with its connection
    for (const c of [node, of(s.orgId)]) c.byStatus[s.status] = (c.byStatus[s.status] ?? 0) + 1;
  }
  return { at: now, node, organizations };
}

/** A census taken at most once per `maxAgeMs`. */
export class CachedCensus {
  private last: Census | undefined;
  constructor(
    private readonly source: CensusSource,
    private readonly now: () => number,
    private readonly maxAgeMs = 250,
  ) {}
  get(): Census {
    const now = this.now();
    if (this.last === undefined || now - this.last.at >= this.maxAgeMs || now < this.last.at)
      this.last = takeCensus(this.source, now);
    return this.last;
  }
  organization(orgId: string): ConnectionCounts {
    return this.get().organizations.get(orgId) ?? empty();
  }
}
