/**
 * The settings of the platform backend's part in the gateway (docs/backend.md): RPC to services
 * (`rpc` of {@link SETTINGS} in src/config.ts) and the proxy calls of connect, subscribe and publish
 * (`proxy`).
 */
import { z } from 'zod';
import { int, omittable, s, type Table } from './config-table.ts';

const url = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

export const RPC_SETTINGS = {
  timeoutMs: s(
    'APIX_RPC_TIMEOUT_MS',
    int(1, 600_000).default(10_000),
    'an `rpc` without `timeoutMs` fails with `TIMEOUT` after this long',
  ),
  maxPending: s(
    'APIX_RPC_MAX_PENDING',
    int(1, 10_000_000).default(10_000),
    'RPC calls awaiting an answer on one node (as caller, and as the node of the serving service, each); more answer `RATE_LIMITED`',
  ),
  registrationTtlMs: s(
    'APIX_RPC_REGISTRATION_TTL_MS',
    int(1_000, 3_600_000).default(30_000),
    "a service's registrations are dropped this long after its node stopped refreshing them (a crashed node)",
  ),
  proxyUrl: omittable(
    s(
      'APIX_RPC_PROXY_URL',
      url.optional(),
      'methods no connected service registered are served by a signed HTTP POST here',
    ),
  ),
} satisfies Table;

export const PROXY_SETTINGS = {
  connectUrl: omittable(
    s(
      'APIX_PROXY_CONNECT_URL',
      url.optional(),
      'the backend decides each `connect` (after the credentials are checked)',
    ),
  ),
  subscribeUrl: omittable(
    s(
      'APIX_PROXY_SUBSCRIBE_URL',
      url.optional(),
      'the backend decides each new subscription a client asks for',
    ),
  ),
  publishUrl: omittable(
    s(
      'APIX_PROXY_PUBLISH_URL',
      url.optional(),
      "the backend decides each client's publish (and may replace its payload)",
    ),
  ),
  secret: omittable(
    s(
      'APIX_PROXY_SECRET',
      z.string().min(16, 'must be at least 16 characters').optional(),
      'signs proxy calls and RPC HTTP calls (`X-Apix-Signature`); required when one of their URLs is set',
    ),
  ),
  timeoutMs: s(
    'APIX_PROXY_TIMEOUT_MS',
    int(1, 600_000).default(3_000),
    'a proxy call not answered within this has failed (`APIX_PROXY_FAILURE_POLICY` decides)',
  ),
  failurePolicy: s(
    'APIX_PROXY_FAILURE_POLICY',
    z.enum(['deny', 'allow']).default('deny'),
    'when the backend is down, slow or answers garbage: `deny` refuses (`UNAVAILABLE`), `allow` lets it through',
  ),
  cacheMs: s(
    'APIX_PROXY_CACHE_MS',
    int(0, 600_000).default(5_000),
    "how long the backend's subscribe decisions are remembered per user and channel; 0: off",
  ),
  cacheSize: s(
    'APIX_PROXY_CACHE_SIZE',
    int(1, 10_000_000).default(10_000),
    'subscribe decisions remembered at most (the oldest go first)',
  ),
} satisfies Table;
