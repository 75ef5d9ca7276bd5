/**
 * The at-rest encryption seen from the engines: the broker and the offline queue are wrapped so that what
 * they store for encrypted channels stays sealed, and what they hand back is plaintext.
 *
 * - `AtRestBroker`: events whose stored frame is sealed (the router sealed it at publish) are opened once
 *   per node, when the engine hands them over (live, or read from history); the opened event keeps the
 *   sealed text in `sealed`, so that the offline queue and the dead letters store that, without encrypting
 *   again. Plain frames pass through untouched (one `startsWith` per event).
 * - `AtRestOfflineQueue`: pushes keep sealed frames sealed (and seal a plaintext frame of an encrypted
 *   channel, should one come without its sealed form); drains open them.
 */
import type {
  Broker,
  BrokerEvent,
  BrokerEventHandler,
  HistoryQuery,
  HistoryResult,
} from '../broker/broker.ts';
import { ForwardingBroker } from '../broker/forwarding-broker.ts';
import type { DrainResult, OfflineQueue, QueuedFrame } from '../queue/queue.ts';
import type { AtRestCipher } from './at-rest.ts';
import { isSealedFrame, openStoredFrame, orgOfChannelKey, sealedFrameText } from './at-rest.ts';

export type AtRestErrorHandler = (err: unknown, channelKey: string, eventId: string) => void;

/** Opens a broker event when its frame is sealed; undefined (after reporting) when it cannot be opened. */
export function openBrokerEvent(
  cipher: AtRestCipher | undefined,
  event: BrokerEvent,
  onError: AtRestErrorHandler,
): BrokerEvent | undefined {
  if (!isSealedFrame(event.frame)) return event;
  try {
    return { ...event, frame: openStoredFrame(cipher, event.key, event.frame), sealed: event.frame };
  } catch (err) {
    onError(err, event.key, event.id);
    return undefined;
  }
}

/** Publishes as the engine does (its result's frame is the stored, possibly sealed, text; callers use its id). */
export class AtRestBroker extends ForwardingBroker {
  constructor(
    inner: Broker,
    private readonly cipher: AtRestCipher | undefined,
    private readonly onError: AtRestErrorHandler,
  ) {
    super(inner);
  }

  override async history(key: string, query: HistoryQuery): Promise<HistoryResult> {
    const h = await this.inner.history(key, query);
    let sealed = 0;
    let lost = false;
    const events: BrokerEvent[] = [];
    for (const ev of h.events) {
      if (!isSealedFrame(ev.frame)) {
        events.push(ev);
        continue;
      }
      sealed++;
      const opened = openBrokerEvent(this.cipher, ev, this.onError);
      if (opened) events.push(opened);
      else lost = true;
    }
    if (sealed === 0) return h;
    // An entry that cannot be opened is not delivered: the reader is told it missed events.
    return { events, recovered: h.recovered && !lost, top: h.top };
  }

  override onEvent(handler: BrokerEventHandler): void {
    this.inner.onEvent((event) => {
      const opened = openBrokerEvent(this.cipher, event, this.onError);
      if (opened) handler(opened);
    });
  }
}

export class AtRestOfflineQueue implements OfflineQueue {
  constructor(
    private readonly inner: OfflineQueue,
    private readonly cipher: AtRestCipher | undefined,
    /** Whether the channel of this engine key is configured encrypted. */
    private readonly isEncrypted: (channelKey: string) => boolean,
    private readonly onError: AtRestErrorHandler,
  ) {}

  push(sessionId: string, item: QueuedFrame): Promise<boolean> {
    if (item.sealed !== undefined) {
      const { sealed, ...rest } = item;
      return this.inner.push(sessionId, { ...rest, frame: sealed });
    }
    if (this.cipher !== undefined && !isSealedFrame(item.frame) && this.isEncrypted(item.key)) {
      // A channel event frame: {"type":..,"channel":..,"id":"<id>",...} (type and channel cannot hold a quote).
      const at = item.frame.indexOf(`,"id":"${item.id}"`);
      if (at !== -1) {
        const cut = at + ',"id":"'.length;
        const box = this.cipher.sealFrame(
          item.key,
          item.frame.slice(0, cut),
          item.frame.slice(cut + item.id.length),
        );
        return this.inner.push(sessionId, { ...item, frame: sealedFrameText(box, item.id) });
      }
    }
    return this.inner.push(sessionId, item);
  }

  async drain(sessionId: string): Promise<DrainResult> {
    const r = await this.inner.drain(sessionId);
    let lost = 0;
    let opened = 0;
    const frames: QueuedFrame[] = [];
    for (const item of r.frames) {
      if (!isSealedFrame(item.frame)) {
        frames.push(item);
        continue;
      }
      opened++;
      try {
        frames.push({
          ...item,
          frame: openStoredFrame(this.cipher, item.key, item.frame),
          sealed: item.frame,
        });
      } catch (err) {
        this.onError(err, item.key, item.id);
        lost++;
      }
    }
    return opened === 0 ? r : { frames, overflowed: r.overflowed + lost };
  }

  size(sessionId: string): Promise<number> {
    return this.inner.size(sessionId);
  }
  clear(sessionId: string): Promise<void> {
    return this.inner.clear(sessionId);
  }
  totalSize(): number {
    return this.inner.totalSize();
  }
}

/** `<org>/<name>` -> [org, name] for a channel registry lookup. */
export function splitChannelKey(channelKey: string): [org: string, name: string] {
  const org = orgOfChannelKey(channelKey);
  return [org, channelKey.slice(org.length + 1)];
}
