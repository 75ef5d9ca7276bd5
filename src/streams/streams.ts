/**
 * Streams on one node (docs/protocol.md §14): the publisher side (StreamPublisher) and the subscriber side
 * (StreamFanout) over one StreamStore, their periodic work (slow readers, the idle sweep) and metrics.
 * The gateway hands it stream frames, closed connections and control messages; the subscription paths
 * hand it each subscription after its history replay; the hub hands it live stream messages.
 */
import { gaugesOn } from '../metrics/read-gauge.ts';
import type { Registry } from 'prom-client';
import type { z } from 'zod';

import { CLIENT_STREAM_SCHEMAS, formatIssues } from '@apix/protocol';
import type { ClientStreamFrame, StreamType } from '@apix/protocol';
import type { Broker, BrokerEvent, ControlMessage } from '../broker/broker.ts';
import type { Clock, Random, TimerHandle } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Connection, Subscription } from '../connections/session.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { AtRestCipher } from '../crypto/at-rest.ts';
import { encodeControl } from '../gateway/frames.ts';
import type { StreamStore } from './stream-store.ts';
import { snapshotFrame, StoredText } from './stream-frames.ts';
import { StreamFanout } from './stream-fanout.ts';
import { StreamPublisher } from './stream-publisher.ts';

export interface StreamsDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly broker: Broker;
  readonly router: EventRouter;
  readonly channels: ChannelRegistry;
  readonly hub: LocalHub;
  readonly store: StreamStore;
  readonly atRest: AtRestCipher | undefined;
  /** Counts a rate-limit refusal against the connection (late-bound: the gateway's sanctions). */
  refused(conn: Connection, scope: 'publish'): boolean;
}

/** How often slow readers are retried and ended mirrors dropped, at most (ms). */
const TICK_MS = 50;

export class Streams {
  readonly publisher: StreamPublisher;
  readonly fanout: StreamFanout;
  private readonly timers: TimerHandle[] = [];
  private readonly text: StoredText;
  private sweeping = false;

  constructor(private readonly deps: StreamsDeps) {
    const text = (this.text = new StoredText(deps.atRest));
    this.publisher = new StreamPublisher({ ...deps, text });
    const qos = deps.config.qos.degradeBufferedBytes;
    this.fanout = new StreamFanout({
      ...deps,
      text,
      isEncrypted: (key, name) => this.publisher.isEncrypted(key, name),
      compressThreshold: deps.config.compression.thresholdBytes,
      slowBytes: qos > 0 ? qos : Math.floor(deps.config.maxBufferedBytes / 4),
    });
    deps.hub.attachStreams(this.fanout);
  }

  start(): void {
    const { clock, config } = this.deps;
    this.timers.push(clock.setInterval(() => this.fanout.tick(), Math.max(TICK_MS, config.streams.flushMs)));
    const sweepMs = Math.max(250, Math.min(5000, Math.floor(config.streams.idleTimeoutMs / 4)));
    this.timers.push(clock.setInterval(() => void this.sweepIdle(), sweepMs));
  }

  stop(): void {
    for (const t of this.timers.splice(0)) t.cancel();
  }

  /** A `stream.*` frame from a connected client (a publish attempt: its errors answer `message.failed`). */
  onFrame(conn: Connection, type: StreamType, frame: object, correlationId: string | undefined): void {
    const schema = (CLIENT_STREAM_SCHEMAS as Readonly<Record<string, z.ZodType>>)[type];
    if (schema === undefined) {
      const message = `"${type}" is sent by the server only`;
      return conn.send(
        encodeControl(
          'message.failed',
          { code: 'BAD_REQUEST', message },
          this.deps.clock.now(),
          correlationId,
        ),
      );
    }
    const r = schema.safeParse(frame);
    if (!r.success) {
      const channel = (frame as { channel?: unknown }).channel;
      const failed = {
        code: 'BAD_REQUEST' as const,
        message: formatIssues(r.error),
        ...(typeof channel === 'string' ? { channel: channel.slice(0, 200) } : {}),
      };
      return conn.send(encodeControl('message.failed', failed, this.deps.clock.now(), correlationId));
    }
    this.publisher.handle(conn, r.data as ClientStreamFrame, correlationId);
  }

  /** After a subscription's history replay (subscribe or resume): snapshots of the open streams. */
  joined(sub: Subscription, replayed: readonly BrokerEvent[]): void {
    this.fanout
      .join(sub, replayed)
      .catch((err: unknown) => this.deps.log.warn({ err }, 'stream join failed'));
  }

  /** The `stream.snapshot` frames of the channel's open streams (HTTP history's last page). */
  async snapshots(key: string, channelName: string): Promise<string[]> {
    const states = await this.deps.store.listOpen(key);
    const now = this.deps.clock.now();
    const encrypted = this.publisher.isEncrypted(key, channelName);
    return states
      .filter((s) => s.status === 'streaming')
      .map((s) =>
        snapshotFrame({ ...s, channel: channelName }, this.text.decode(key, s.text, encrypted), s.seq, now),
      );
  }

  connectionClosed(conn: Connection): void {
    this.publisher.connectionClosed(conn);
  }

  onControl(msg: ControlMessage): void {
    this.publisher.onControl(msg);
  }

  /**
   * Ends, with status `error`, the streams with no append for the idle timeout: those published here,
   * and those this node mirrors (their publisher's node may be gone); the store ends each once.
   */
  async sweepIdle(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const idleBefore = this.deps.clock.now() - this.deps.config.streams.idleTimeoutMs;
      const candidates = new Map<string, { key: string; streamId: string }>();
      for (const s of this.publisher.idleOwned(idleBefore)) candidates.set(`${s.key}\n${s.streamId}`, s);
      for (const m of this.fanout.openMirrors())
        if (m.heardAt < idleBefore) candidates.set(`${m.key}\n${m.streamId}`, m);
      for (const s of candidates.values())
        await this.publisher
          .endIdle(s.key, s.streamId, idleBefore)
          .catch((err: unknown) => this.deps.log.warn({ err, key: s.key }, 'idle stream not ended'));
    } finally {
      this.sweeping = false;
    }
  }

  registerMetrics(registry: Registry): void {
    const gauge = gaugesOn(registry);
    gauge('apix_streams_published', 'Open streams published from this node', () => this.publisher.ownedCount);
    gauge(
      'apix_stream_mirrors',
      'Open streams mirrored on this node for its subscribers',
      () => this.fanout.mirrorCount,
    );
    gauge(
      'apix_stream_mirrored_chars',
      'Text held by the stream mirrors (UTF-16 units)',
      () => this.fanout.mirroredBytes,
    );
    gauge(
      'apix_stream_lagging',
      'Stream mirrors with a slow subscriber waiting for merged appends',
      () => this.fanout.laggingCount,
    );
    gauge(
      'apix_stream_appends_accepted',
      'Stream appends stored (since start)',
      () => this.publisher.appendsAccepted,
    );
    gauge(
      'apix_stream_flushes',
      'Stream append windows stored and fanned out (since start)',
      () => this.publisher.flushes,
    );
    gauge(
      'apix_stream_refusals',
      'Stream frames refused with message.failed (since start)',
      () => this.publisher.refusals,
    );
    gauge(
      'apix_stream_frames_sent',
      'Stream frames sent to subscribers (since start)',
      () => this.fanout.framesSent,
    );
    gauge(
      'apix_stream_repairs',
      'Missed live stream messages repaired from the store (since start)',
      () => this.fanout.repairs,
    );
  }
}
