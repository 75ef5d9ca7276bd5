/** The rate limits' settings: `rateLimits` of {@link SETTINGS} (src/config.ts). */
import { bool, int, s, type Table } from './config-table.ts';

export const RATE_LIMIT_SETTINGS = {
  connection: {
    perSec: s(
      'APIX_RATE_CONNECTION_PER_SEC',
      int(0, 1_000_000).default(200),
      'inbound frames per connection (every frame, `connect` included)',
    ),
    burst: s('APIX_RATE_CONNECTION_BURST', int(1, 10_000_000).default(400), 'its burst'),
  },
  publish: {
    perSec: s('APIX_RATE_PUBLISH_PER_SEC', int(0, 1_000_000).default(100), 'publishes per connection'),
    burst: s('APIX_RATE_PUBLISH_BURST', int(1, 10_000_000).default(200), 'its burst'),
  },
  channel: {
    perSec: s(
      'APIX_RATE_CHANNEL_PER_SEC',
      int(0, 10_000_000).default(1000),
      'publishes into one channel of an organization, by all its publishers together (WebSocket and HTTP)',
    ),
    burst: s('APIX_RATE_CHANNEL_BURST', int(1, 100_000_000).default(2000), 'its burst'),
  },
  orgPublish: {
    perSec: s(
      'APIX_RATE_ORG_PUBLISH_PER_SEC',
      int(0, 10_000_000).default(5000),
      'publishes of one organization, all channels, WebSocket and HTTP (HTTP: 429 with `Retry-After`)',
    ),
    burst: s('APIX_RATE_ORG_PUBLISH_BURST', int(1, 100_000_000).default(10_000), 'its burst'),
  },
  orgSubscribe: {
    perSec: s(
      'APIX_RATE_ORG_SUBSCRIBE_PER_SEC',
      int(0, 10_000_000).default(2000),
      'channels subscribed by one organization (in `subscribe` and in `connect`)',
    ),
    burst: s('APIX_RATE_ORG_SUBSCRIBE_BURST', int(1, 100_000_000).default(10_000), 'its burst'),
  },
  rpc: {
    perSec: s(
      'APIX_RATE_RPC_PER_SEC',
      int(0, 1_000_000).default(50),
      'RPC calls per connection; a refused one answers `rpc.error` `RATE_LIMITED`',
    ),
    burst: s('APIX_RATE_RPC_BURST', int(1, 10_000_000).default(100), 'its burst'),
  },
  address: {
    perSec: s(
      'APIX_RATE_ADDRESS_PER_SEC',
      int(0, 1_000_000).default(50),
      'WebSocket connection attempts per remote address, checked first at the upgrade: HTTP 429 with `Retry-After`',
    ),
    burst: s('APIX_RATE_ADDRESS_BURST', int(1, 10_000_000).default(200), 'its burst'),
  },
  abuse: {
    refusals: s(
      'APIX_RATE_ABUSE_REFUSALS',
      int(1, 1_000_000).default(100),
      'refusals of one connection within `APIX_RATE_ABUSE_WINDOW_MS` that close it (4008)',
    ),
    windowMs: s(
      'APIX_RATE_ABUSE_WINDOW_MS',
      int(100, 3_600_000).default(10_000),
      "the window of `APIX_RATE_ABUSE_REFUSALS` (it starts at a connection's first refusal)",
    ),
    suspend: s(
      'APIX_SUSPEND_ON_ABUSE',
      bool.default(false),
      'on abuse, suspend the session instead (close 4011)',
    ),
  },
} satisfies Table;
