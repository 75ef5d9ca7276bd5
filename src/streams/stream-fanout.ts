/**
 * The subscriber side of streams on one node (docs/protocol.md §14). For each open stream of a channel
 * with local subscribers, the node keeps a mirror (its text and last seq, from the broker's live path,
 * repaired from the StreamStore when a live message was missed) and, per subscriber following it, how
 * far that subscriber was sent. What a subscriber is sent is always `mirror.text` past its position, as
 * one `stream.append` `fromSeq..seq`: a slow reader (send buffer over the threshold) is skipped and gets
 * everything it missed merged in one frame when it drains. A subscriber that arrives (subscribe, resume)
 * gets a `stream.snapshot` of every open stream after its history replay; one that followed a stream gets
 * `stream.end` instead of its compacted event.
 */
import type { BrokerEvent } from '../broker/broker.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Subscription } from '../connections/session.ts';
import { EventFrames } from '../gateway/frames.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import type { StreamStore, StreamState } from './stream-store.ts';
import type { StoredText, StreamHead } from './stream-frames.ts';
import { appendFrame, endFrame, parseLive, snapshotFrame, startFrame } from './stream-frames.ts';

export interface FanoutDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly hub: LocalHub;
  readonly store: StreamStore;
  readonly text: StoredText;
  /** Whether the channel's stored text is sealed (configured `encrypted`). */
  isEncrypted(key: string, channelName: string): boolean;
  readonly compressThreshold: number;
  /** Unsent bytes of a connection above which its stream appends wait (merged) until it drains. */
  readonly slowBytes: number;
}

interface Follower {
  seq: number;
  /** `mirror.text.length` when it was sent `seq`. */
  len: number;
  /** The connection it follows on: a resumed session's new connection gets a snapshot first. */
  readonly conn: unknown;
}

class Mirror implements StreamHead {
  text = '';
  seq = 0;
  ended = false;
  /** When the node last heard of it (live message or repair): the idle sweep looks at the store then. */
  heardAt: number;
  readonly followers = new Map<Subscription, Follower>();
  constructor(
    readonly key: string,
    readonly channel: string,
    readonly streamId: string,
    readonly id: string,
    readonly eventType: string,
    readonly dataJson: string,
    now: number,
  ) {
    this.heardAt = now;
  }
}

/** Every how many ticks the joined subscriptions are swept (5 s at the default 50 ms tick). */
const JOINED_SWEEP_TICKS = 100;

class ChannelStreams {
  readonly mirrors = new Map<string, Mirror>();
  /** Subscriptions that got their snapshots: they are sent live stream frames. */
  readonly joined = new Set<Subscription>();
  /** Streams whose compacted event this node has seen (a snapshot of them would come too late). */
  readonly ended = new Set<string>();
  loading: Promise<void> | undefined;
  loaded = false;
  constructor(
    readonly key: string,
    readonly name: string,
  ) {}
}

/** What a compacted event says (parsed once per event). */
interface Compacted {
  readonly streamId: string;
  readonly text: string;
  readonly seq: number;
  readonly status: string;
  readonly error: unknown;
}

export class StreamFanout {
  private readonly channels = new Map<string, ChannelStreams>();
  /** Mirrors with a follower left behind (slow reader): retried by `tick`. */
  private readonly lagging = new Set<Mirror>();
  private readonly repairing = new Set<Mirror | string>();
  private lastCompacted: { event: BrokerEvent; c: Compacted | undefined; end?: EventFrames } | undefined;
  /** Frames sent to subscribers (append, snapshot, start, end), since start. */
  framesSent = 0;
  /** Gaps in the live path repaired from the store, since start. */
  repairs = 0;
  private ticks = 0;

  constructor(private readonly deps: FanoutDeps) {}

  get mirrorCount(): number {
    let n = 0;
    for (const ch of this.channels.values()) n += ch.mirrors.size;
    return n;
  }

  get mirroredBytes(): number {
    let n = 0;
    for (const ch of this.channels.values()) for (const m of ch.mirrors.values()) n += m.text.length;
    return n;
  }

  get laggingCount(): number {
    return this.lagging.size;
  }

  /** Open streams this node mirrors (for the idle sweep). */
  *openMirrors(): Iterable<{ key: string; channel: string; streamId: string; heardAt: number }> {
    for (const ch of this.channels.values()) for (const m of ch.mirrors.values()) if (!m.ended) yield m;
  }

  // ---------------------------------------------------------------- a subscriber arrives

  /**
   * After a subscription's history replay (subscribe, resume): a snapshot of each open stream of the
   * channel, then it follows them. `replayed`: what its replay sent (a stream compacted there is done).
   */
  async join(sub: Subscription, replayed: readonly BrokerEvent[]): Promise<void> {
    const ch = this.channel(sub.key, sub.name);
    ch.joined.delete(sub);
    for (const m of ch.mirrors.values()) m.followers.delete(sub);
    if (!ch.loaded) await this.load(ch);
    const conn = sub.session.connection;
    if (conn === undefined || !this.isCurrent(sub)) return;
    const done = this.compactedIn(replayed, ch);
    const now = this.deps.clock.now();
    for (const m of ch.mirrors.values()) {
      if (m.ended || done.has(m.streamId) || ch.ended.has(m.streamId) || !accepts(sub, m)) continue;
      conn.send(snapshotFrame(m, m.text, m.seq, now));
      this.framesSent++;
      m.followers.set(sub, { seq: m.seq, len: m.text.length, conn });
    }
    ch.joined.add(sub);
  }

  private channel(key: string, name: string): ChannelStreams {
    let ch = this.channels.get(key);
    if (!ch) this.channels.set(key, (ch = new ChannelStreams(key, name)));
    return ch;
  }

  /** The channel's open streams from the store, once (live messages keep the mirrors after that). */
  private load(ch: ChannelStreams): Promise<void> {
    ch.loading ??= this.deps.store
      .listOpen(ch.key)
      .then((states) => {
        for (const s of states) if (s.status === 'streaming') this.adopt(ch, s);
        ch.loaded = true;
      })
      .catch((err: unknown) => this.deps.log.warn({ err, key: ch.key }, 'stream snapshots unavailable'))
      .finally(() => (ch.loading = undefined));
    return ch.loading;
  }

  /** A stream as the store has it: a new mirror, or a mirror brought forward. */
  private adopt(ch: ChannelStreams, s: StreamState): Mirror | undefined {
    if (ch.ended.has(s.streamId)) return undefined;
    let m = ch.mirrors.get(s.streamId);
    const now = this.deps.clock.now();
    if (!m) {
      m = new Mirror(ch.key, ch.name, s.streamId, s.id, s.eventType, s.dataJson, now);
      ch.mirrors.set(s.streamId, m);
    }
    if (s.seq > m.seq) {
      m.text = this.deps.text.decode(ch.key, s.text, this.deps.isEncrypted(ch.key, ch.name));
      m.seq = s.seq;
    }
    m.heardAt = now;
    return m;
  }

  // ---------------------------------------------------------------- the live path

  /** A stream message of the broker's live path (LocalHub hands them here). */
  onLive(event: BrokerEvent): void {
    const msg = parseLive(event.frame);
    if (msg === undefined) return;
    const ch = this.channel(event.key, msg.channel);
    if (ch.ended.has(msg.streamId)) return;
    const m = ch.mirrors.get(msg.streamId);
    const now = this.deps.clock.now();
    if (msg.kind === 'start') {
      if (m) return;
      const created = new Mirror(ch.key, ch.name, msg.streamId, msg.id, msg.eventType, msg.dataJson, now);
      ch.mirrors.set(msg.streamId, created);
      this.announce(ch, created);
      return;
    }
    if (!m) return void this.repair(ch, msg.streamId);
    if (m.ended || msg.seq <= m.seq) return;
    m.heardAt = now;
    if (msg.fromSeq !== m.seq + 1) return void this.repair(ch, msg.streamId);
    m.text += msg.text;
    m.seq = msg.seq;
    this.push(m, msg);
  }

  /** `stream.start` to the channel's joined subscribers. */
  private announce(ch: ChannelStreams, m: Mirror): void {
    const frames = new EventFrames(startFrame(m, this.deps.clock.now()), this.deps.compressThreshold);
    for (const sub of ch.joined) {
      const conn = sub.session.connection;
      if (conn === undefined || !this.isCurrent(sub) || !accepts(sub, m)) continue;
      conn.sendEvent(frames);
      this.framesSent++;
      m.followers.set(sub, { seq: 0, len: 0, conn });
    }
  }

  /** A live message was missed: the stream as the store has it, then what the followers lack. */
  private repair(ch: ChannelStreams, streamId: string): void {
    const tag = `${ch.key}\n${streamId}`;
    if (this.repairing.has(tag)) return;
    this.repairing.add(tag);
    this.repairs++;
    this.deps.store
      .get(ch.key, streamId)
      .then((s) => {
        if (!s || s.status !== 'streaming') return;
        const known = ch.mirrors.has(streamId);
        const m = this.adopt(ch, s);
        if (!m) return;
        // Joined subscribers that never heard of the stream get what it has so far, as a snapshot.
        if (!known) this.snapshotJoined(ch, m);
        this.push(m);
      })
      .catch((err: unknown) => this.deps.log.warn({ err, key: ch.key, streamId }, 'stream repair failed'))
      .finally(() => this.repairing.delete(tag));
  }

  private snapshotJoined(ch: ChannelStreams, m: Mirror): void {
    const now = this.deps.clock.now();
    for (const sub of ch.joined) {
      const conn = sub.session.connection;
      if (conn === undefined || !this.isCurrent(sub) || !accepts(sub, m) || m.followers.has(sub)) continue;
      conn.send(snapshotFrame(m, m.text, m.seq, now));
      this.framesSent++;
      m.followers.set(sub, { seq: m.seq, len: m.text.length, conn });
    }
  }

  /**
   * Sends each follower what it lacks, merged; a follower whose connection is backed up waits. `last`: the
   * append just applied, which is all that a follower that was up to date lacks (no slice of the text).
   */
  private push(m: Mirror, last?: { readonly fromSeq: number; readonly text: string }): void {
    let behind = false;
    let frames: Map<number, EventFrames> | undefined;
    const now = this.deps.clock.now();
    for (const [sub, f] of m.followers) {
      if (f.seq >= m.seq) continue;
      const conn = sub.session.connection;
      if (conn === undefined || conn !== f.conn || !this.isCurrent(sub)) {
        m.followers.delete(sub);
        continue;
      }
      if (conn.bufferedBytes > this.deps.slowBytes) {
        behind = true;
        continue;
      }
      frames ??= new Map();
      let fr = frames.get(f.seq);
      if (!fr) {
        const lacks = last !== undefined && f.seq + 1 === last.fromSeq ? last.text : m.text.slice(f.len);
        const text = appendFrame(m, f.seq + 1, m.seq, lacks, now);
        frames.set(f.seq, (fr = new EventFrames(text, this.deps.compressThreshold)));
      }
      conn.sendEvent(fr);
      this.framesSent++;
      f.seq = m.seq;
      f.len = m.text.length;
    }
    if (behind) this.lagging.add(m);
    else this.lagging.delete(m);
  }

  // ---------------------------------------------------------------- the end: compacted events

  /** Whether the hub should ask `replace` about the channel's events (it has streams here). */
  watches(key: string): boolean {
    const ch = this.channels.get(key);
    return ch !== undefined && ch.mirrors.size > 0;
  }

  /**
   * For a channel event going to `sub`: when it is the compacted event of a stream `sub` follows, what it
   * still lacks is sent now, and the `stream.end` frame to send instead is answered.
   */
  replace(sub: Subscription, event: BrokerEvent): EventFrames | undefined {
    const ch = this.channels.get(event.key);
    if (!ch) return undefined;
    const c = this.compactedOf(event, ch);
    if (!c) return undefined;
    const m = ch.mirrors.get(c.streamId);
    if (!m) return undefined;
    if (!m.ended) this.ended(ch, m, c);
    const f = m.followers.get(sub);
    const conn = sub.session.connection;
    if (!f || conn === undefined || conn !== f.conn) return undefined;
    m.followers.delete(sub);
    const now = this.deps.clock.now();
    // Nothing is dropped: the rest of the text goes out before the end, whatever the buffer holds.
    if (f.seq < c.seq) conn.send(appendFrame(m, f.seq + 1, c.seq, c.text.slice(f.len), now));
    const cache = this.lastCompacted!;
    cache.end ??= new EventFrames(
      endFrame(
        ch.name,
        event.id,
        { streamId: c.streamId, seq: c.seq, status: c.status, error: c.error },
        now,
      ),
      this.deps.compressThreshold,
    );
    this.framesSent++;
    return cache.end;
  }

  private ended(ch: ChannelStreams, m: Mirror, c: Compacted): void {
    m.ended = true;
    m.text = c.text;
    m.seq = c.seq;
    ch.ended.add(m.streamId);
    this.lagging.delete(m);
  }

  /** The stream a channel event compacts, if it is one of a stream mirrored here. */
  private compactedOf(event: BrokerEvent, ch: ChannelStreams): Compacted | undefined {
    if (this.lastCompacted?.event === event) return this.lastCompacted.c;
    let c: Compacted | undefined;
    let candidate = false;
    for (const m of ch.mirrors.values()) if (m.eventType === event.type) candidate = true;
    if (candidate) c = parseCompacted(event.frame);
    this.lastCompacted = { event, c };
    return c;
  }

  private compactedIn(events: readonly BrokerEvent[], ch: ChannelStreams): Set<string> {
    const out = new Set<string>();
    if (events.length === 0 || ch.mirrors.size === 0) return out;
    const types = new Set([...ch.mirrors.values()].map((m) => m.eventType));
    for (const e of events) {
      if (!types.has(e.type)) continue;
      const c = parseCompacted(e.frame);
      if (c) out.add(c.streamId);
    }
    return out;
  }

  // ---------------------------------------------------------------- housekeeping

  /**
   * Periodic: slow readers that drained get what they lack; ended mirrors, channels without local
   * subscribers and subscriptions that are gone are dropped (what bounds the maps).
   */
  tick(): void {
    for (const m of [...this.lagging]) this.push(m);
    // The joined sets hold every subscriber of the node (10,000 at 10,000 connections): checking them all
    // at every tick (20 a second) was most of an idle node's CPU. A gone subscription left in a set costs
    // nothing but its slot meanwhile (every send checks isCurrent), so they are swept every 100th tick.
    const sweepJoined = this.ticks++ % JOINED_SWEEP_TICKS === 0;
    for (const [key, ch] of this.channels) {
      if (!this.deps.hub.has(key) && ch.loading === undefined) {
        for (const m of ch.mirrors.values()) this.lagging.delete(m);
        this.channels.delete(key);
        continue;
      }
      for (const [id, m] of ch.mirrors) if (m.ended) ch.mirrors.delete(id);
      if (sweepJoined) for (const sub of ch.joined) if (!this.isCurrent(sub)) ch.joined.delete(sub);
      // Ended ids are only needed while a late live message or snapshot could still name them.
      if (ch.ended.size > 10_000) ch.ended.clear();
    }
  }

  private isCurrent(sub: Subscription): boolean {
    return (
      sub.session.subscriptions.get(sub.key) === sub && this.deps.hub.subscribers(sub.key)?.has(sub) === true
    );
  }
}

/** Whether the subscription's filter lets the stream's frames through (by its event type and data). */
function accepts(sub: Subscription, m: Mirror): boolean {
  if (sub.filter === undefined) return true;
  return sub.filter({ type: m.eventType, payload: () => safeParse(m.dataJson) });
}

function safeParse(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}

function parseCompacted(frame: string): Compacted | undefined {
  const f = safeParse(frame) as
    { payload?: Record<string, unknown>; metadata?: { stream?: unknown } } | undefined;
  const p = f?.payload;
  const streamId = f?.metadata?.stream;
  if (!p || typeof streamId !== 'string' || p.streamId !== streamId) return undefined;
  if (typeof p.text !== 'string' || typeof p.seq !== 'number' || typeof p.status !== 'string')
    return undefined;
  return { streamId, text: p.text, seq: p.seq, status: p.status, error: p.error };
}
