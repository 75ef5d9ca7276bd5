/**
 * The backend's part of a node (docs/backend.md), built by node.ts: the proxy calls and their metrics.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { InternalError } from '@apix/protocol/internal-errors';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { HookBus } from '../hooks.ts';
import { BackendProxy } from './proxy.ts';

/** The signing secret is required as soon as one backend URL is set: nothing goes out unsigned. */
export function checkBackendSettings(config: Config): void {
  const urls = [config.proxy.connectUrl, config.proxy.subscribeUrl, config.proxy.publishUrl];
  if (config.rpc.proxyUrl !== undefined) urls.push(config.rpc.proxyUrl);
  if (urls.some((u) => u !== undefined) && config.proxy.secret === undefined)
    throw new InternalError(
      'APIX_ERR_INVALID_SETTING',
      'APIX_PROXY_SECRET must be set with APIX_PROXY_*_URL or APIX_RPC_PROXY_URL (backend calls are signed)',
    );
}

export function buildProxy(config: Config, clock: Clock, hooks: HookBus): BackendProxy {
  checkBackendSettings(config);
  return new BackendProxy({ config: config.proxy, clock, hooks });
}

/** The proxy calls' figures on /metrics, read at each scrape. */
export function registerProxyMetrics(metrics: Registry, proxy: BackendProxy): void {
  new Counter({
    name: 'apix_proxy_calls_total',
    help: 'Proxy-call decisions: allowed or refused by the backend, failed (the failure policy decided), answered from the cache',
    labelNames: ['outcome'],
    registers: [metrics],
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(proxy.calls)) this.inc({ outcome }, n);
    },
  });
  new Gauge({
    name: 'apix_proxy_cache_entries',
    help: 'Subscribe decisions held in the proxy decision cache (bounded by APIX_PROXY_CACHE_SIZE)',
    registers: [metrics],
    collect() {
      this.set(proxy.cacheSize);
    },
  });
}
