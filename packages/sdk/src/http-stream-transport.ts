/**
 * HTTP streaming (PROTOCOL 1.1 §14): the `connect` frame opens `POST /v1/stream`, whose response carries
 * the server's frames, one JSON text per line, for as long as the connection lives; the client's frames go
 * out as `POST /v1/frames` naming the stream by the `sessionToken` of `connection.established`, in order
 * (one request at a time; frames written meanwhile go together as an array). Works wherever `fetch` can
 * read a response body as a stream (browsers, Node 18+), through proxies that refuse WebSocket upgrades.
 * `SseTransport` (sse-transport.ts) changes only how the stream is opened and read.
 */
import { WS_PATH } from '@apix/protocol/constants';
import type { ClientTransport, IncomingMessage } from './transport.ts';

/** The `fetch` the SDK needs (the global one by default). */
export type FetchLike = (
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<{
  readonly status: number;
  readonly body: ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
}>;

export function defaultFetch(): FetchLike | undefined {
  const f = (globalThis as { fetch?: unknown }).fetch;
  return typeof f === 'function' ? (f.bind(globalThis) as FetchLike) : undefined;
}

/** The gateway's HTTP base from its WebSocket URL: `wss://h/v1/ws` -> `https://h`. */
export function httpBaseOf(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  const path = u.pathname.endsWith(WS_PATH) ? u.pathname.slice(0, -WS_PATH.length) : u.pathname;
  return `${u.protocol}//${u.host}${path.replace(/\/$/, '')}`;
}

const ESTABLISHED = '{"type":"connection.established"';
const DISCONNECTED = '{"type":"connection.disconnected"';

export class HttpStreamTransport implements ClientTransport {
  onOpen: (() => void) | null = null;
  onMessage: ((message: IncomingMessage) => void) | null = null;
  onClose: ((code: number, reason: string) => void) | null = null;
  protected base = '';
  private readonly abort = new AbortController();
  private started = false;
  private ended = false;
  private sessionToken: string | undefined;
  /** Frames waiting for the session token or for the request before them. */
  private outbox: string[] = [];
  private outboxBytes = 0;
  private posting = false;
  /** The final `connection.disconnected` says the close code (`closeCode`) and why. */
  private closeCode = 1006;
  private closeReason = 'the stream ended';

  constructor(protected readonly fetchImpl: FetchLike) {}

  connect(url: string): void {
    this.base = httpBaseOf(url);
    // Nothing to open before the connect frame: it is the body of the stream's request.
    void Promise.resolve().then(() => {
      if (!this.ended) this.onOpen?.();
    });
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  get bufferedAmount(): number {
    return this.outboxBytes;
  }

  send(text: string): void {
    if (this.ended) return;
    if (!this.started) {
      this.started = true;
      void this.run(text);
      return;
    }
    this.outbox.push(text);
    this.outboxBytes += text.length;
    void this.flush();
  }

  close(code: number, reason: string): void {
    if (this.ended) return;
    this.closeCode = code;
    this.closeReason = reason;
    this.abort.abort();
    if (!this.started) this.finish();
  }

  /** Opens the stream with the connect frame: the response whose body is the stream. */
  protected async open(connectText: string, signal: AbortSignal) {
    return this.fetchImpl(`${this.base}/v1/stream`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: connectText,
      signal,
    });
  }

  /** The frames in `buffered` (complete ones), passed to `frame`; answers what is left. */
  protected parse(buffered: string, frame: (text: string) => void): string {
    let end: number;
    while ((end = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (line !== '') frame(line);
    }
    return buffered;
  }

  private async run(connectText: string): Promise<void> {
    try {
      const res = await this.open(connectText, this.abort.signal);
      if (res.status !== 200 || !res.body) {
        this.closeReason = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffered = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered = this.parse(buffered + decoder.decode(value, { stream: true }), (t) => this.frame(t));
      }
    } catch {
      // aborted by close(), or the connection dropped: the close code says which
    } finally {
      this.finish();
    }
  }

  private frame(text: string): void {
    if (this.ended) return;
    if (text.startsWith(ESTABLISHED)) {
      const token = (JSON.parse(text) as { payload?: { sessionToken?: unknown } }).payload?.sessionToken;
      if (typeof token === 'string') this.sessionToken = token;
    } else if (text.startsWith(DISCONNECTED)) {
      const p = (JSON.parse(text) as { payload?: { closeCode?: unknown; reason?: unknown } }).payload;
      if (typeof p?.closeCode === 'number') this.closeCode = p.closeCode;
      if (typeof p?.reason === 'string') this.closeReason = p.reason;
    }
    this.onMessage?.(text);
    if (this.sessionToken !== undefined) void this.flush();
  }

  /** One `POST /v1/frames` at a time, with every frame written meanwhile: the server reads them in order. */
  private async flush(): Promise<void> {
    if (this.posting || this.sessionToken === undefined || this.outbox.length === 0 || this.ended) return;
    this.posting = true;
    const batch = this.outbox;
    this.outbox = [];
    this.outboxBytes = 0;
    try {
      const res = await this.fetchImpl(`${this.base}/v1/frames`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Apix-Session-Token': this.sessionToken },
        body: batch.length === 1 ? batch[0]! : `[${batch.join(',')}]`,
      });
      // 404: the stream is gone (its end follows on the stream); anything else unanswered is lost as on a
      // dropped socket, and the session's resume recovers it.
      if (res.status >= 400) this.abort.abort();
    } catch {
      this.abort.abort();
    } finally {
      this.posting = false;
    }
    void this.flush();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    const onClose = this.onClose;
    const { closeCode, closeReason } = this;
    // Never from inside close(): the seam's events arrive asynchronously.
    void Promise.resolve().then(() => onClose?.(closeCode, closeReason));
  }
}
