/** The webhooks' settings: `webhooks` of {@link SETTINGS} (src/config.ts); docs/backend.md says more. */
import { bool, int, s } from './config-table.ts';

export const WEBHOOK_SETTINGS = {
  allowPrivate: s(
    'APIX_WEBHOOK_ALLOW_PRIVATE',
    bool.default(false),
    'webhook URLs may reach private, loopback and link-local addresses (off: refused, SSRF guard)',
  ),
  timeoutMs: s(
    'APIX_WEBHOOK_TIMEOUT_MS',
    int(100, 120_000).default(5000),
    'a webhook POST without an answer within this is a failed attempt',
  ),
  flushMs: s(
    'APIX_WEBHOOK_FLUSH_MS',
    int(10, 60_000).default(200),
    'events are batched this long, and due batches are looked for this often',
  ),
  batchMax: s('APIX_WEBHOOK_BATCH_MAX', int(1, 1000).default(100), 'events in one webhook POST at most'),
  maxAttempts: s(
    'APIX_WEBHOOK_MAX_ATTEMPTS',
    int(1, 1000).default(12),
    'attempts of a batch before it is a dead letter',
  ),
  retryBaseMs: s(
    'APIX_WEBHOOK_RETRY_BASE_MS',
    int(1, 3_600_000).default(1000),
    'full-jitter backoff of webhook retries: attempt n waits up to base * 2^n',
  ),
  retryMaxMs: s(
    'APIX_WEBHOOK_RETRY_MAX_MS',
    int(1, 86_400_000).default(300_000),
    'the longest wait between two attempts of a batch',
  ),
  bufferMax: s(
    'APIX_WEBHOOK_BUFFER_EVENTS',
    int(1, 10_000_000).default(10_000),
    "events waiting in a node's memory for the next batching round (more are dropped and counted)",
  ),
  queueMax: s(
    'APIX_WEBHOOK_QUEUE_MAX',
    int(1, 10_000_000).default(10_000),
    'batches waiting for delivery in the store, all endpoints (more are dropped and counted)',
  ),
  deadLetterMax: s(
    'APIX_WEBHOOK_DEAD_LETTERS_MAX',
    int(1, 10_000_000).default(10_000),
    'webhook dead letters kept (the oldest go first)',
  ),
  concurrency: s(
    'APIX_WEBHOOK_CONCURRENCY',
    int(1, 1000).default(8),
    'webhook batches one node sends at once',
  ),
  occupancyLeaseMs: s(
    'APIX_WEBHOOK_OCCUPANCY_LEASE_MS',
    int(300, 3_600_000).default(30_000),
    "Redis: a node's channel-occupancy lease, refreshed every third of it; a node silent this long is dead and its channels are swept (channel.vacated)",
  ),
  occupancySweepMs: s(
    'APIX_WEBHOOK_OCCUPANCY_SWEEP_MS',
    int(100, 3_600_000).default(10_000),
    'Redis: how often each node looks for dead nodes whose channel occupancy to sweep',
  ),
  endpointsPerOrg: s(
    'APIX_WEBHOOK_ENDPOINTS_MAX',
    int(1, 1000).default(20),
    'webhook endpoints per organization',
  ),
};
