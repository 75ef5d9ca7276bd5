/**
 * Events that ran out of delivery attempts: dead-lettered, and their publisher told with `message.failed`
 * (on this node, or through the broker's control channel on the node it is connected to).
 */
import { channelNameFromKey } from '@apix/protocol';
import type { Clock } from '../clock.ts';
import type { Broker, BrokerEvent, ControlMessage } from '../broker/broker.ts';
import type { DeadLetterStore } from '../retry/dead-letter.ts';
import type { PendingEntry, PendingOwner } from '../pending/pending-store.ts';
import type { HookBus } from '../hooks.ts';
import { encodeControl } from '../gateway/frames.ts';
import { mayNotifyPublisher } from '../tenancy/scope-keys.ts';
import { Phase } from './session.ts';
import type { Connection } from './session.ts';
import type { Subscription } from './session.ts';

export interface DeliveryFailuresDeps {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly hooks: HookBus;
  readonly broker: Broker;
  readonly deadLetters: DeadLetterStore;
  /** The open connections of this node, by id (the publisher to tell may be one of them). */
  readonly connections: ReadonlyMap<string, Connection>;
  /** Counts a dead letter (the retry manager's counter). */
  countDeadLetter(): void;
}

export class DeliveryFailures {
  constructor(private readonly deps: DeliveryFailuresDeps) {}

  /** Dead-letters stored pending entries (their session expired, or they ran out of attempts). */
  deadLetterStored(owner: PendingOwner, entries: readonly PendingEntry[]): void {
    const now = this.deps.clock.now();
    for (const e of entries) {
      const channel = channelNameFromKey(e.key);
      this.deps.countDeadLetter();
      this.deps.deadLetters.add({
        orgId: owner.orgId,
        channel,
        eventId: e.id,
        type: e.type,
        sessionId: owner.sessionId,
        attempts: e.attempts,
        frame: e.frame,
        failedAt: now,
      });
      this.deps.hooks.emit('onDeadLetter', {
        orgId: owner.orgId,
        channel,
        eventId: e.id,
        sessionId: owner.sessionId,
        attempts: e.attempts,
      });
      const pub = e.publisher;
      if (!pub) continue;
      const message = `event ${e.id} was not acknowledged by session ${owner.sessionId} after ${e.attempts} attempts`;
      this.tellPublisher(pub, e.id, channel, message, owner.orgId);
    }
  }

  /** The retry manager gave up on an event of a live subscription (it dead-lettered it itself). */
  deadLettered(sub: Subscription, event: BrokerEvent, attempts: number): void {
    const channel = sub.name;
    this.deps.hooks.emit('onDeadLetter', {
      orgId: sub.session.orgId,
      channel,
      eventId: event.id,
      sessionId: sub.session.sessionId,
      attempts,
    });
    const pub = event.publisher;
    if (!pub) return;
    const message = `event ${event.id} was not acknowledged by session ${sub.session.sessionId} after ${attempts} attempts`;
    this.tellPublisher(pub, event.id, channel, message, sub.session.orgId);
  }

  private tellPublisher(
    pub: { nodeId: string; connectionId: string },
    id: string,
    channel: string,
    message: string,
    orgId: string,
  ): void {
    if (pub.nodeId === this.deps.nodeId) this.notifyFailed(pub.connectionId, id, channel, message, orgId);
    else
      this.deps.broker
        .publishControl({
          kind: 'message.failed',
          from: this.deps.nodeId,
          connectionId: pub.connectionId,
          id,
          channel,
          message,
          orgId,
        })
        .catch(() => {});
  }

  /** The `message.failed` control message another node sent for a publisher that may be here. */
  notifyFailedControl(msg: ControlMessage): void {
    const f = (k: string) => String(msg[k]);
    this.notifyFailed(f('connectionId'), f('id'), f('channel'), f('message'), f('orgId'));
  }

  /**
   * Tells a publisher its event was dead-lettered by a session of `subscriberOrgId`: only a publisher of
   * that organization (on a shared channel, another organization's publisher hears nothing of it).
   */
  notifyFailed(
    connectionId: string,
    id: string,
    channel: string,
    message: string,
    subscriberOrgId: string,
  ): void {
    const conn = this.deps.connections.get(connectionId);
    if (conn?.phase === Phase.CONNECTED && mayNotifyPublisher(conn.principal!.orgId, subscriberOrgId))
      conn.send(
        encodeControl('message.failed', { code: 'UNAVAILABLE', message, id, channel }, this.deps.clock.now()),
      );
  }
}
