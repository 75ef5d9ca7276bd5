/** RPC's figures on /metrics, read from the RpcService at each scrape. */
import { gaugesOn } from '../metrics/read-gauge.ts';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import type { RpcService } from './rpc-service.ts';

export function registerRpcMetrics(metrics: Registry, rpc: RpcService): void {
  const gauge = gaugesOn(metrics);
  gauge(
    'apix_rpc_pending',
    "RPC calls of this node's clients awaiting an answer (bounded by APIX_RPC_MAX_PENDING)",
    () => rpc.pending.size,
  );
  gauge(
    'apix_rpc_serving',
    "RPC calls this node's services are serving (bounded by APIX_RPC_MAX_PENDING)",
    () => rpc.serving.size,
  );
  gauge('apix_rpc_services', 'Connections of this node that registered RPC methods', () => rpc.services.size);
  new Counter({
    name: 'apix_rpc_calls_total',
    help: 'RPC calls by outcome: result, an error code, http (served by APIX_RPC_PROXY_URL), late (answer after the caller stopped waiting)',
    labelNames: ['outcome'],
    registers: [metrics],
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(rpc.outcomes)) this.inc({ outcome }, n);
    },
  });
}
