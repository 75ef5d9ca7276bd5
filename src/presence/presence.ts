/**
 * Who is in a room right now (collaborative workflows: `room:<id>` channels), across every node.
 *
 * Guarantees every implementation gives (tests/contracts/presence.contract.ts checks them):
 * - A member is one connection in one room, identified by `connectionId`; joining again replaces it.
 * - Entries expire: each has a deadline `ttlMs` after it was last written. The instance that joined a
 *   member re-writes it on `refresh()` (the node calls it on a timer, well within `ttlMs`), so members of a
 *   node that died disappear within `ttlMs` and never linger as zombies. `leave` removes at once.
 * - `list` answers only live members (deadline in the future), in no particular order.
 * - Memory is bounded: rooms nobody refreshes are dropped.
 */

export interface PresenceMember {
  /** Unique per member entry: the connection that joined. */
  readonly connectionId: string;
  /** The client's session id (stable across reconnects). */
  readonly clientId: string;
  readonly userId: string;
  /** The node that holds the connection (and refreshes the entry). */
  readonly nodeId: string;
  /** Free-form details shown to the other members (client type, display name...). */
  readonly info?: Readonly<Record<string, unknown>> | undefined;
}

export interface Presence {
  readonly name: string;
  /** Adds (or replaces) the member; this instance refreshes it until `leave` or `close`. */
  join(roomKey: string, member: PresenceMember): Promise<void>;
  /**
   * Removes the member now. Unknown members are ignored. Call it on the instance that joined the member: the
   * joining instance would otherwise write the member again on its next refresh.
   */
  leave(roomKey: string, connectionId: string): Promise<void>;
  /** The room's live members. */
  list(roomKey: string): Promise<PresenceMember[]>;
  /** Pushes the deadline of every member this instance joined (the node's presence heartbeat). */
  refresh(): Promise<void>;
  /** Stops refreshing; this instance's members then expire (they are not removed: the node may be dying). */
  close(): Promise<void>;
}

export interface PresenceOptions {
  /** A member not refreshed for this long is gone. Default 60000 ms. */
  readonly ttlMs?: number;
  /**
   * Refresh timer period (on the injected clock); 0 disables the timer (the owner calls `refresh()`).
   * Default ttlMs / 3, so that two refreshes can fail before a live member expires.
   */
  readonly refreshIntervalMs?: number;
}

export const DEFAULT_PRESENCE_TTL_MS = 60_000;
