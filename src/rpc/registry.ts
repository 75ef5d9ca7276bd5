import { ApiXError } from '@apix/protocol';

/**
 * Where RPC methods are registered (docs/protocol.md §12): which connected service, on which node, serves
 * a method of an organization. Shared by the nodes (Redis), or by the nodes of one MemoryBrokerBus.
 *
 * Guarantees: a registration is valid until its `until` (ms); its node refreshes it well before then while
 * the service is connected, so a crashed node's registrations lapse by themselves. `providers` answers
 * only registrations still valid at `now`. `unregister` removes exactly what `register` added.
 */

export interface RpcOwner {
  readonly nodeId: string;
  readonly connectionId: string;
}

export interface RpcProvider extends RpcOwner {
  /** Roles a caller needs one of; empty: any caller of the organization. */
  readonly roles: readonly string[];
}

export interface RpcRegistry {
  /** Adds (or refreshes) one registration per method, valid until `until`, which is `ttlMs` from now. */
  register(orgId: string, providers: readonly RpcRegistration[], until: number, ttlMs: number): Promise<void>;
  unregister(orgId: string, providers: readonly RpcRegistration[]): Promise<void>;
  /** The services serving `method` now. */
  providers(orgId: string, method: string, now: number): Promise<RpcProvider[]>;
}

export interface RpcRegistration extends RpcProvider {
  readonly method: string;
}

/** One registration's identity in a store: node, connection and roles (roles are part of it). */
export function memberOf(r: RpcProvider): string {
  return JSON.stringify([r.nodeId, r.connectionId, r.roles]);
}

export function providerOf(member: string): RpcProvider | undefined {
  try {
    const [nodeId, connectionId, roles] = JSON.parse(member) as [string, string, string[]];
    return { nodeId, connectionId, roles };
  } catch {
    return undefined;
  }
}

/** The memory registry; at most `maxEntries` registrations (more are refused: the service hears UNAVAILABLE). */
export class MemoryRpcRegistry implements RpcRegistry {
  /** `<org>\n<method>` -> member -> until. */
  private readonly methods = new Map<string, Map<string, number>>();
  private entries = 0;

  constructor(private readonly maxEntries = 100_000) {}

  get size(): number {
    return this.entries;
  }

  async register(orgId: string, providers: readonly RpcRegistration[], until: number): Promise<void> {
    for (const p of providers) {
      const key = `${orgId}\n${p.method}`;
      let members = this.methods.get(key);
      const member = memberOf(p);
      if (!members?.has(member) && this.entries >= this.maxEntries)
        throw new ApiXError('UNAVAILABLE', 'too many RPC registrations on this engine');
      if (!members) this.methods.set(key, (members = new Map()));
      if (!members.has(member)) this.entries++;
      members.set(member, until);
    }
  }

  async unregister(orgId: string, providers: readonly RpcRegistration[]): Promise<void> {
    for (const p of providers) {
      const key = `${orgId}\n${p.method}`;
      const members = this.methods.get(key);
      if (members?.delete(memberOf(p))) this.entries--;
      if (members?.size === 0) this.methods.delete(key);
    }
  }

  async providers(orgId: string, method: string, now: number): Promise<RpcProvider[]> {
    const members = this.methods.get(`${orgId}\n${method}`);
    if (!members) return [];
    const out: RpcProvider[] = [];
    for (const [member, until] of members) {
      if (until <= now) {
        members.delete(member);
        this.entries--;
        continue;
      }
      const p = providerOf(member);
      if (p) out.push(p);
    }
    return out;
  }
}
