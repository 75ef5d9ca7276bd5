/**
 * A Jepsen-style delivery checker for fault tests.
 *
 * The test records a history of operations, then asks for a verdict:
 *
 * - every publish gets a unique id (`uid`) that the test puts in the event's payload, and ends as
 *   `ok` (the server answered `message.sent` / `message.queued`, or HTTP 200 with an event id), `failed`
 *   (a clean refusal: `message.failed`, HTTP 4xx/5xx) or `unknown` (no answer before a cut: the publish
 *   may or may not have taken effect);
 * - every delivery to the application is recorded per client (`uid` read back from the payload, with
 *   the server's event id);
 * - each client declares which channels it expects everything of (`expect`).
 *
 * `analyze()` then classifies, per client and per published event of an expected channel:
 *
 * - `delivered`: seen exactly once;
 * - `lost`: an `ok` publish never seen (a violation);
 * - `duplicated`: seen more than once (a violation of exactly-once to the application);
 * - `unexpected`: a delivery whose uid was never published (a violation: corruption or cross-talk);
 * - `failedButDelivered`: a publish answered `failed` that was seen anyway (reported; the publisher was
 *   told it did not happen, so it is a violation of clean failure);
 * - `unknownDelivered` / `unknownMissing`: an `unknown` publish seen / not seen (both allowed);
 *
 * and checks per-channel order: on each channel a client must see event ids (and, for a single
 * sequential publisher, publish sequence numbers) strictly increasing.
 */
import { compareEventIds, isEventId } from '@apix/protocol/event-id';

export type PublishStatus = 'pending' | 'ok' | 'failed' | 'unknown';

export interface PublishOp {
  readonly uid: string;
  readonly channel: string;
  /** Order of invocation on its channel (1, 2, ...). */
  readonly seq: number;
  status: PublishStatus;
  /** The server's event id, when the publish was acknowledged with one. */
  eventId: string | undefined;
  /** Why it failed (an error code or message). */
  reason: string | undefined;
  readonly invokedAt: number;
  completedAt: number | undefined;
}

export interface Delivery {
  readonly client: string;
  readonly channel: string;
  readonly uid: string;
  readonly eventId: string | undefined;
  readonly at: number;
}

export interface OrderViolation {
  readonly client: string;
  readonly channel: string;
  /** The delivery that came after `previous` but is not greater than it. */
  readonly uid: string;
  readonly previousUid: string;
  readonly kind: 'event-id' | 'publish-seq';
}

export interface ClientVerdict {
  readonly client: string;
  readonly expected: number;
  readonly deliveries: number;
  readonly delivered: number;
  readonly lost: string[];
  readonly duplicated: string[];
  readonly unexpected: string[];
  readonly failedButDelivered: string[];
  readonly unknownDelivered: string[];
  readonly unknownMissing: string[];
  readonly order: OrderViolation[];
}

export interface Verdict {
  readonly published: { total: number; ok: number; failed: number; unknown: number; pending: number };
  readonly clients: ClientVerdict[];
  /** Sums over clients. */
  readonly totals: {
    expected: number;
    deliveries: number;
    delivered: number;
    lost: number;
    duplicated: number;
    unexpected: number;
    failedButDelivered: number;
    orderViolations: number;
  };
  /** No lost, duplicated, unexpected, failed-but-delivered event and no order violation. */
  readonly valid: boolean;
}

export interface CheckerOptions {
  /** Also require publish sequence numbers to increase per channel (true for one sequential publisher per channel). */
  readonly checkPublishOrder?: boolean;
  readonly now?: () => number;
}

export class Checker {
  private readonly ops = new Map<string, PublishOp>();
  private readonly seqs = new Map<string, number>();
  private readonly deliveries: Delivery[] = [];
  private readonly expectations = new Map<string, Set<string>>();
  private readonly checkPublishOrder: boolean;
  private readonly now: () => number;
  private readonly runId = Math.random().toString(36).slice(2, 8);
  private counter = 0;

  constructor(options: CheckerOptions = {}) {
    this.checkPublishOrder = options.checkPublishOrder ?? true;
    this.now = options.now ?? Date.now;
  }

  /** Starts a publish on `channel`: returns its op, whose `uid` (and `seq`) go into the payload. */
  invoke(channel: string): PublishOp {
    const seq = (this.seqs.get(channel) ?? 0) + 1;
    this.seqs.set(channel, seq);
    const uid = `${this.runId}-${++this.counter}`;
    const op: PublishOp = {
      uid,
      channel,
      seq,
      status: 'pending',
      eventId: undefined,
      reason: undefined,
      invokedAt: this.now(),
      completedAt: undefined,
    };
    this.ops.set(uid, op);
    return op;
  }

  /** The publish was acknowledged (`message.sent` / `message.queued` / HTTP 200). */
  ok(uid: string, eventId?: string): void {
    const op = this.op(uid);
    op.status = 'ok';
    op.eventId = eventId;
    op.completedAt = this.now();
  }

  /** The publish was refused cleanly. */
  fail(uid: string, reason: string): void {
    const op = this.op(uid);
    op.status = 'failed';
    op.reason = reason;
    op.completedAt = this.now();
  }

  /** No answer (the link was cut, the process died): it may or may not have happened. */
  unknown(uid: string, reason = 'no answer'): void {
    const op = this.op(uid);
    op.status = 'unknown';
    op.reason = reason;
    op.completedAt = this.now();
  }

  /** Marks every publish still pending as unknown (call it when a fault cuts them off). */
  cutPending(reason = 'cut'): number {
    let n = 0;
    for (const op of this.ops.values())
      if (op.status === 'pending') {
        this.unknown(op.uid, reason);
        n++;
      }
    return n;
  }

  /**
   * Runs one publish and records its outcome: the function resolves with the event id (ok), or throws;
   * an error whose `checkerStatus` is 'unknown' (or a timeout) is recorded as unknown, any other as failed.
   */
  async record(channel: string, publish: (op: PublishOp) => Promise<string | undefined>): Promise<PublishOp> {
    const op = this.invoke(channel);
    try {
      this.ok(op.uid, await publish(op));
    } catch (err) {
      const e = err as { checkerStatus?: string; code?: string; message?: string };
      const reason = e.code ?? e.message ?? String(err);
      if (e.checkerStatus === 'unknown') this.unknown(op.uid, reason);
      else this.fail(op.uid, reason);
    }
    return op;
  }

  /** `client` must see every acknowledged publish of each of `channels`. */
  expect(client: string, channels: readonly string[]): void {
    const set = this.expectations.get(client) ?? new Set<string>();
    for (const c of channels) set.add(c);
    this.expectations.set(client, set);
  }

  /** The application of `client` was handed the event carrying `uid` (with the server's id). */
  deliver(client: string, channel: string, uid: string, eventId?: string): void {
    this.deliveries.push({ client, channel, uid, eventId, at: this.now() });
  }

  get published(): readonly PublishOp[] {
    return [...this.ops.values()];
  }

  /** Acknowledged publishes of `channel`. */
  okOn(channel: string): PublishOp[] {
    return [...this.ops.values()].filter((o) => o.channel === channel && o.status === 'ok');
  }

  /** Every delivery recorded, in order. */
  get deliveryLog(): readonly Delivery[] {
    return this.deliveries;
  }

  /** The publish of `uid`, if any. */
  opOf(uid: string): PublishOp | undefined {
    return this.ops.get(uid);
  }

  /**
   * The first delivery (to any client) of an event published at or after `since` (ms), e.g. to measure
   * when traffic resumed after a fault ended; undefined if none yet.
   */
  firstDeliveryOfPublishAfter(since: number): Delivery | undefined {
    return this.deliveries.find((d) => {
      const op = this.ops.get(d.uid);
      return op !== undefined && op.invokedAt >= since;
    });
  }

  deliveriesOf(client: string, channel?: string): Delivery[] {
    return this.deliveries.filter(
      (d) => d.client === client && (channel === undefined || d.channel === channel),
    );
  }

  /** Whether every client has seen every acknowledged publish of its channels (to wait on before `analyze`). */
  complete(): boolean {
    for (const [client, channels] of this.expectations) {
      const seen = new Set(this.deliveriesOf(client).map((d) => d.uid));
      for (const op of this.ops.values())
        if (channels.has(op.channel) && op.status === 'ok' && !seen.has(op.uid)) return false;
    }
    return true;
  }

  analyze(): Verdict {
    const ops = [...this.ops.values()];
    const published = {
      total: ops.length,
      ok: ops.filter((o) => o.status === 'ok').length,
      failed: ops.filter((o) => o.status === 'failed').length,
      unknown: ops.filter((o) => o.status === 'unknown').length,
      pending: ops.filter((o) => o.status === 'pending').length,
    };
    const clientNames = new Set<string>([
      ...this.expectations.keys(),
      ...this.deliveries.map((d) => d.client),
    ]);
    const clients: ClientVerdict[] = [];
    for (const client of clientNames) clients.push(this.analyzeClient(client, ops));
    const sum = (f: (c: ClientVerdict) => number) => clients.reduce((n, c) => n + f(c), 0);
    const totals = {
      expected: sum((c) => c.expected),
      deliveries: sum((c) => c.deliveries),
      delivered: sum((c) => c.delivered),
      lost: sum((c) => c.lost.length),
      duplicated: sum((c) => c.duplicated.length),
      unexpected: sum((c) => c.unexpected.length),
      failedButDelivered: sum((c) => c.failedButDelivered.length),
      orderViolations: sum((c) => c.order.length),
    };
    const valid =
      totals.lost === 0 &&
      totals.duplicated === 0 &&
      totals.unexpected === 0 &&
      totals.failedButDelivered === 0 &&
      totals.orderViolations === 0;
    return { published, clients, totals, valid };
  }

  private analyzeClient(client: string, ops: readonly PublishOp[]): ClientVerdict {
    const channels = this.expectations.get(client) ?? new Set<string>();
    const mine = this.deliveriesOf(client);
    const counts = new Map<string, number>();
    const unexpected: string[] = [];
    for (const d of mine) {
      const op = this.ops.get(d.uid);
      if (op === undefined || op.channel !== d.channel) {
        unexpected.push(d.uid);
        continue;
      }
      counts.set(d.uid, (counts.get(d.uid) ?? 0) + 1);
    }
    const lost: string[] = [];
    const duplicated: string[] = [];
    const failedButDelivered: string[] = [];
    const unknownDelivered: string[] = [];
    const unknownMissing: string[] = [];
    let expected = 0;
    let delivered = 0;
    for (const op of ops) {
      const n = counts.get(op.uid) ?? 0;
      if (n > 1) duplicated.push(op.uid);
      if (!channels.has(op.channel)) continue;
      if (n >= 1) delivered++;
      if (op.status === 'ok') {
        expected++;
        if (n === 0) lost.push(op.uid);
      } else if (op.status === 'failed') {
        if (n > 0) failedButDelivered.push(op.uid);
      } else if (op.status === 'unknown' || op.status === 'pending') {
        (n > 0 ? unknownDelivered : unknownMissing).push(op.uid);
      }
    }
    return {
      client,
      expected,
      deliveries: mine.length,
      delivered,
      lost,
      duplicated,
      unexpected,
      failedButDelivered,
      unknownDelivered,
      unknownMissing,
      order: this.orderViolations(client, mine),
    };
  }

  private orderViolations(client: string, mine: readonly Delivery[]): OrderViolation[] {
    const out: OrderViolation[] = [];
    const last = new Map<string, Delivery>();
    for (const d of mine) {
      const prev = last.get(d.channel);
      last.set(d.channel, d);
      if (prev === undefined) continue;
      if (
        d.eventId !== undefined &&
        prev.eventId !== undefined &&
        isEventId(d.eventId) &&
        isEventId(prev.eventId) &&
        compareEventIds(d.eventId, prev.eventId) <= 0
      ) {
        out.push({ client, channel: d.channel, uid: d.uid, previousUid: prev.uid, kind: 'event-id' });
        continue;
      }
      if (this.checkPublishOrder) {
        const a = this.ops.get(prev.uid);
        const b = this.ops.get(d.uid);
        if (a && b && b.seq <= a.seq)
          out.push({ client, channel: d.channel, uid: d.uid, previousUid: prev.uid, kind: 'publish-seq' });
      }
    }
    return out;
  }

  private op(uid: string): PublishOp {
    const op = this.ops.get(uid);
    if (!op) throw new Error(`checker: no publish with uid ${uid}`);
    return op;
  }
}

/** One line for a test's output: the figures of a verdict. */
export function summarize(v: Verdict, label = 'checker'): string {
  const p = v.published;
  const t = v.totals;
  return (
    `${label}: published ${p.total} (ok ${p.ok}, failed ${p.failed}, unknown ${p.unknown}` +
    `${p.pending ? `, pending ${p.pending}` : ''}); ` +
    `clients ${v.clients.length}: expected ${t.expected}, delivered ${t.delivered} ` +
    `(${t.deliveries} deliveries), lost ${t.lost}, duplicated ${t.duplicated}, unexpected ${t.unexpected}, ` +
    `failed-but-delivered ${t.failedButDelivered}, order violations ${t.orderViolations}`
  );
}

/** An error for `Checker.record` that records the publish as unknown rather than failed. */
export class UnknownOutcome extends Error {
  readonly checkerStatus = 'unknown';
}
