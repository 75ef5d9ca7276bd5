/**
 * The RPC registry's guarantees (src/rpc/registry.ts), for every engine: registrations per organization and
 * method, roles kept, exact removal, and lapse after their `until`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { RpcRegistry, RpcRegistration } from '../../src/rpc/registry.ts';

export interface RegistryHarness {
  readonly registry: RpcRegistry;
  close(): Promise<void>;
}

const reg = (
  method: string,
  nodeId: string,
  connectionId: string,
  roles: string[] = [],
): RpcRegistration => ({
  method,
  nodeId,
  connectionId,
  roles,
});

const sorted = (ps: { connectionId: string }[]) => ps.map((p) => p.connectionId).sort();

export function describeRpcRegistryContract(
  name: string,
  make: () => Promise<RegistryHarness>,
  options: { skip?: string | false } = {},
): void {
  describe(`RpcRegistry contract (${name})`, { skip: options.skip ?? false }, () => {
    let h: RegistryHarness;
    before(async () => {
      h = await make();
    });
    after(() => h.close());
    const now = 1_000_000;

    it('answers the services of a method in its organization only, with their roles', async () => {
      await h.registry.register('acme', [reg('a.x', 'n1', 'c1'), reg('a.y', 'n1', 'c1')], now + 1000, 1000);
      await h.registry.register('acme', [reg('a.x', 'n2', 'c2', ['admin'])], now + 1000, 1000);
      await h.registry.register('other', [reg('a.x', 'n3', 'c3')], now + 1000, 1000);
      assert.deepEqual(sorted(await h.registry.providers('acme', 'a.x', now)), ['c1', 'c2']);
      const c2 = (await h.registry.providers('acme', 'a.x', now)).find((p) => p.connectionId === 'c2')!;
      assert.deepEqual(c2, { nodeId: 'n2', connectionId: 'c2', roles: ['admin'] });
      assert.deepEqual(sorted(await h.registry.providers('other', 'a.x', now)), ['c3']);
      assert.deepEqual(await h.registry.providers('acme', 'a.z', now), []);
    });

    it('removes exactly what was registered', async () => {
      await h.registry.unregister('acme', [reg('a.x', 'n1', 'c1')]);
      assert.deepEqual(sorted(await h.registry.providers('acme', 'a.x', now)), ['c2']);
      assert.deepEqual(sorted(await h.registry.providers('acme', 'a.y', now)), ['c1']);
    });

    it('a registration lapses after its until, unless refreshed', async () => {
      await h.registry.register('lapse', [reg('b.x', 'n1', 'c1'), reg('b.x', 'n2', 'c2')], now + 1000, 1000);
      await h.registry.register('lapse', [reg('b.x', 'n2', 'c2')], now + 5000, 5000);
      assert.deepEqual(sorted(await h.registry.providers('lapse', 'b.x', now + 999)), ['c1', 'c2']);
      assert.deepEqual(sorted(await h.registry.providers('lapse', 'b.x', now + 1000)), ['c2']);
      assert.deepEqual(await h.registry.providers('lapse', 'b.x', now + 5000), []);
    });
  });
}
