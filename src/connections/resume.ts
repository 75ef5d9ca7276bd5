/**
 * Where a resumed session's subscriptions replay from (`connect.resume`): after the client's last id on
 * the channel when it sent one; else, when it asked for a replay there (a reloaded page has no position,
 * and the session's own position is where its previous page stopped), the last events it asked for;
 * else after the last event the session was sent.
 */
export interface ResumePoint {
  readonly since: string | undefined;
  readonly last: number | undefined;
}

export interface ResumePlan {
  from: (channel: string, sessionLastId: string | undefined) => ResumePoint;
  /** Whether the channel replays what the client asked for (those replays go out first). */
  asked: (channel: string) => boolean;
}

export function resumeFrom(
  lastEventIds: Readonly<Record<string, string>>,
  replay: Readonly<Record<string, { readonly last: number }>> | undefined,
): ResumePlan {
  const asked = (channel: string): boolean =>
    lastEventIds[channel] === undefined && replay !== undefined && Object.hasOwn(replay, channel);
  return {
    asked,
    from(channel, sessionLastId) {
      const since = lastEventIds[channel];
      if (since !== undefined) return { since, last: undefined };
      if (asked(channel)) return { since: undefined, last: replay![channel]!.last };
      return { since: sessionLastId, last: undefined };
    },
  };
}
