/** The streams' settings (docs/protocol.md §11): `streams` of {@link SETTINGS} (src/config.ts). */
import { int, s } from './config-table.ts';

export const STREAM_SETTINGS = {
  maxBytes: s(
    'APIX_STREAM_MAX_BYTES',
    int(1024, 64 * 1024 * 1024).default(1024 * 1024),
    "a stream's accumulated text, in UTF-8 bytes; an append past it is refused with `STREAM_TOO_LARGE`",
  ),
  maxOpenPerConnection: s(
    'APIX_MAX_OPEN_STREAMS',
    int(1, 100_000).default(100),
    'streams one connection may have open; a `stream.start` past it is refused with `STREAM_LIMIT`',
  ),
  idleTimeoutMs: s(
    'APIX_STREAM_IDLE_TIMEOUT_MS',
    int(1000, 86_400_000).default(60_000),
    'a stream with no append for this long is ended by the server with status `error`',
  ),
  flushMs: s(
    'APIX_STREAM_FLUSH_MS',
    int(0, 1000).default(40),
    'appends to one stream within this window are stored and fanned out together; 0: each at once',
  ),
};
