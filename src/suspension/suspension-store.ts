/**
 * Operator suspensions, shared by every node (issue 12): what a suspension covers is chosen explicitly,
 * as Centrifugo and Pusher do for disconnects and bans:
 * - a **session** (organization, user, session id): that session is refused; the user's other sessions,
 *   and a new session id, are not (one misbehaving device or tab);
 * - a **user** (organization, user): every session of the user, whatever its id;
 * - an **API key**: the key's user (`apikey:<keyId>`), every connection made with it.
 * A suspension is stored until it is lifted or its `expiresAt` (APIX_SUSPENSION_TTL_MS by default), checked
 * at `connect`, and broadcast as a control message so that every node cuts the connections it covers (4011).
 *
 * Implementations: MemorySuspensionStore (one process, or the nodes of one MemoryBrokerBus) and
 * RedisSuspensionStore (keys with PX expiry).
 */
import type { ControlMessage } from '../broker/broker.ts';

/** Who a suspension covers: a user's session, or (without `sessionId`) every session of the user. */
export interface SuspensionTarget {
  readonly orgId: string;
  /** The token's `sub`; for an API key, `apikey:<keyId>`. */
  readonly userId: string;
  /** Absent: the whole user (or key). */
  readonly sessionId?: string | undefined;
}

export interface Suspension extends SuspensionTarget {
  readonly reason: string;
  /** Ms since epoch after which the suspension lapses. */
  readonly expiresAt: number;
}

/** What a suspension found at `connect` says. */
export interface FoundSuspension {
  readonly scope: 'session' | 'user';
  readonly reason: string;
}

export interface SuspensionStore {
  /** Records the suspension until its `expiresAt` (replacing one of the same target). */
  suspend(suspension: Suspension): Promise<void>;
  /** Lifts the suspension of exactly this target (a user's lift leaves its sessions' own suspensions). */
  lift(target: SuspensionTarget): Promise<void>;
  /** The suspension covering a connect of `userId` with `sessionId`: the user's first, then the session's. */
  find(orgId: string, userId: string, sessionId: string): Promise<FoundSuspension | undefined>;
}

/** The user id of an API key's connections. */
export function apiKeyUser(keyId: string): string {
  return `apikey:${keyId}`;
}

/** An unambiguous map key for a target (any characters in the ids). */
export function targetKey(t: SuspensionTarget): string {
  return JSON.stringify(t.sessionId === undefined ? [t.orgId, t.userId] : [t.orgId, t.userId, t.sessionId]);
}

/** Whether `t` covers a connection of `userId` in `orgId` with `sessionId`. */
export function covers(t: SuspensionTarget, orgId: string, userId: string, sessionId: string): boolean {
  return t.orgId === orgId && t.userId === userId && (t.sessionId === undefined || t.sessionId === sessionId);
}

export const SUSPENSION_CONTROL_KIND = 'suspension';

export function suspensionControlMessage(
  from: string,
  target: SuspensionTarget,
  suspended: boolean,
  reason: string,
  expiresAt: number,
): ControlMessage {
  return { kind: SUSPENSION_CONTROL_KIND, from, ...target, suspended, reason, expiresAt };
}

/** The suspension a control message carries, checked field by field (it crossed the network). */
export function parseSuspensionControl(
  msg: ControlMessage,
): { suspension: Suspension; suspended: boolean } | undefined {
  if (msg.kind !== SUSPENSION_CONTROL_KIND) return undefined;
  const { orgId, userId, sessionId, suspended, reason, expiresAt } = msg;
  if (typeof orgId !== 'string' || typeof userId !== 'string' || typeof expiresAt !== 'number')
    return undefined;
  if (sessionId !== undefined && typeof sessionId !== 'string') return undefined;
  return {
    suspension: {
      orgId,
      userId,
      sessionId,
      reason: typeof reason === 'string' ? reason.slice(0, 200) : 'suspended',
      expiresAt,
    },
    suspended: suspended === true,
  };
}

/**
 * The suspensions this node made or heard of, checked synchronously after the store (a connect whose
 * store read raced a suspension is still refused) and when the store cannot be read. Bounded: past `max`
 * entries the oldest goes (the store stays the truth).
 */
export class HeardSuspensions {
  private readonly entries = new Map<string, Suspension>();
  constructor(
    private readonly now: () => number,
    private readonly max = 10_000,
  ) {}

  add(s: Suspension): void {
    const k = targetKey(s);
    this.entries.delete(k);
    this.entries.set(k, s);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }

  remove(t: SuspensionTarget): void {
    this.entries.delete(targetKey(t));
  }

  find(orgId: string, userId: string, sessionId: string): FoundSuspension | undefined {
    const user = this.live({ orgId, userId });
    if (user) return { scope: 'user', reason: user.reason };
    const session = this.live({ orgId, userId, sessionId });
    return session ? { scope: 'session', reason: session.reason } : undefined;
  }

  private live(t: SuspensionTarget): Suspension | undefined {
    const k = targetKey(t);
    const s = this.entries.get(k);
    if (s === undefined || s.expiresAt > this.now()) return s;
    this.entries.delete(k);
    return undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}
