/**
 * `useAgentStream`: a component's view of the streams of a channel (docs/streams.md): an agent's answers
 * and tool-call arguments as they build up, piece by piece live, whole after a reload or a late join.
 *
 *   const { client } = useApiXClient(options);                    // use-apix-channel.ts
 *   const { streams, latest } = useAgentStream(client, 'agent:research-bot');
 *   // latest?.text, latest?.status ('streaming' | 'complete' | 'cancelled' | 'error'), latest?.data
 *
 * The SDK's `subscribeStreams` does the work (the fromSeq rule, snapshots, compacted events, resume); the
 * hook ties it to the component's lifetime and gives React a new array on every change. It uses the
 * client's subscription of the channel when one exists (e.g. from `useApiXChannel`), so both can watch
 * the same channel. No JSX, like use-apix-channel.ts.
 */
import { useEffect, useState } from 'react';
import type { AgentStream, AgentStreamStatus, ApiXClient } from '../../packages/sdk/src/index.ts';

/** One stream as a component shows it. */
export interface AgentStreamView {
  readonly streamId: string;
  readonly eventType: string;
  readonly text: string;
  readonly status: AgentStreamStatus;
  readonly data: unknown;
}

export interface AgentStreamState {
  /** Every stream of the channel seen since mount (late joiners: those the replay brought), oldest first. */
  readonly streams: readonly AgentStreamView[];
  /** The most recently started stream. */
  readonly latest: AgentStreamView | undefined;
}

export interface AgentStreamOptions {
  /** Streams ended before mount to show (their compacted events, replayed). Default 10. */
  readonly replayLast?: number;
  /** Only streams of this event type (e.g. `agent_message`). */
  readonly eventType?: string;
}

function view(s: AgentStream): AgentStreamView {
  return { streamId: s.streamId, eventType: s.eventType, text: s.text, status: s.status, data: s.data };
}

const EMPTY: AgentStreamState = { streams: [], latest: undefined };

/** The streams of `channel`, updated on every piece; nothing until `client` is defined. */
export function useAgentStream(
  client: ApiXClient | undefined,
  channel: string,
  options: AgentStreamOptions = {},
): AgentStreamState {
  const { replayLast = 10, eventType } = options;
  const [state, setState] = useState<AgentStreamState>(EMPTY);
  useEffect(() => {
    setState(EMPTY);
    if (!client) return;
    const reader = client.subscribeStreams(
      channel,
      {
        onUpdate: () => {
          const streams = [...reader.streams.values()]
            .filter((s) => eventType === undefined || s.eventType === eventType)
            .map(view);
          setState({ streams, latest: streams.at(-1) });
        },
      },
      { replay: { last: replayLast } },
    );
    return () => void reader.close();
  }, [client, channel, replayLast, eventType]);
  return state;
}
