/**
 * `@apix/sdk/react`: React hooks over the APIX SDK (React is a peer dependency: imported, not bundled).
 * `useApiXClient` holds one connection for a component tree, `useApiXChannel` gives a component the
 * latest events of a channel and the subscription's status, and `useAgentStream` the streams of a channel
 * (docs/streams.md: an agent's answers as they build up).
 *
 *   const { client, state } = useApiXClient({ url, tokenProvider, clientType: 'WEB_APP' });
 *   const { events, status } = useApiXChannel(client, 'tool:web_search', {
 *     types: ['tool_call_start', 'tool_call_result'],   // narrows event.payload's type
 *   });
 *
 * The SDK already does the hard parts (reconnect, resume, one delivery per event, in order); the hooks
 * only tie its subscriptions to component lifetimes. Components that watch the same channel share one
 * subscription (reference counted), so two of them do not conflict, and React's StrictMode double
 * mount/unmount costs one unsubscribe/subscribe pair. No JSX here (nor in examples/react), so that the
 * repository's root tsconfig checks it without a JSX setting.
 */
import { useEffect, useState } from 'react';
import { ApiXClient } from './index.ts';
import type {
  AgentStream,
  AgentStreamStatus,
  ApiXClientOptions,
  ApiXError,
  ApiXEvent,
  ClientState,
  Subscription,
  SubscriptionStatus,
} from './index.ts';

// ------------------------------------------------------------------ useApiXClient

export interface ApiXClientHandle {
  /** Undefined until mounted; a new client when `options` identity changes. */
  readonly client: ApiXClient | undefined;
  readonly state: ClientState;
  /** The last error the client reported (a denial, a refused token, a handler failure...). */
  readonly error: ApiXError | undefined;
}

/**
 * One client for the component's lifetime: created and connected on mount, closed on unmount. Pass
 * memoized `options` (`useMemo`): a new options object means a new connection.
 */
export function useApiXClient(options: ApiXClientOptions): ApiXClientHandle {
  const [handle, setHandle] = useState<ApiXClientHandle>({
    client: undefined,
    state: 'idle',
    error: undefined,
  });
  useEffect(() => {
    const client = new ApiXClient(options);
    setHandle({ client, state: client.state, error: undefined });
    const offState = client.on('state', ({ state }) => setHandle((h) => ({ ...h, state })));
    const offError = client.on('error', (error) => setHandle((h) => ({ ...h, error })));
    // connect() rejects only when the server refuses for good; the `error` listener shows why.
    client.connect().catch(() => {});
    return () => {
      offState();
      offError();
      void client.close();
    };
  }, [options]);
  return handle;
}

// ------------------------------------------------------------------ shared subscriptions

interface SharedSubscription {
  readonly subscription: Subscription;
  refs: number;
  /** False when the application subscribed itself: the hooks then never unsubscribe it. */
  readonly owned: boolean;
}

const shared = new WeakMap<ApiXClient, Map<string, SharedSubscription>>();

function acquire(
  client: ApiXClient,
  channel: string,
  replayLast: number | undefined,
): { subscription: Subscription; release: () => void } {
  let byChannel = shared.get(client);
  if (!byChannel) shared.set(client, (byChannel = new Map()));
  let entry = byChannel.get(channel);
  if (!entry || entry.subscription.state === 'denied' || entry.subscription.state === 'unsubscribed') {
    const existing = client.subscription(channel);
    entry = existing
      ? { subscription: existing, refs: 0, owned: false }
      : {
          subscription: client.subscribe(channel, replayLast ? { replay: { last: replayLast } } : {}),
          refs: 0,
          owned: true,
        };
    byChannel.set(channel, entry);
  }
  const held = entry;
  held.refs += 1;
  let released = false;
  return {
    subscription: held.subscription,
    release() {
      if (released) return;
      released = true;
      held.refs -= 1;
      if (held.refs > 0) return;
      if (byChannel.get(channel) === held) byChannel.delete(channel);
      if (held.owned) void held.subscription.unsubscribe();
    },
  };
}

function currentStatus(subscription: Subscription): SubscriptionStatus {
  switch (subscription.state) {
    case 'subscribed':
      return { state: 'subscribed', recovered: subscription.recovered ?? true };
    case 'unsubscribed':
      return { state: 'unsubscribed', reason: undefined };
    default:
      // A denied subscription is replaced in acquire(); its status arrives through onStatus.
      return { state: 'pending' };
  }
}

// ------------------------------------------------------------------ useApiXChannel

export interface ChannelOptions<T extends string> {
  /** Only these event types (filtered in the client; the server filters with `filters.types`). */
  readonly types?: readonly T[];
  /** Show the last `n` retained events on mount (late joiners). Default 0. */
  readonly replayLast?: number;
  /** How many events to keep, newest last. Default 100. */
  readonly limit?: number;
}

export interface ChannelView<T extends string> {
  /** Oldest first, at most `limit`; each event once, in channel order (the SDK guarantees it). */
  readonly events: ReadonlyArray<ApiXEvent<T>>;
  /** `pending`, `subscribed` (with `recovered: false` when events were missed), `denied` (with the error). */
  readonly status: SubscriptionStatus;
}

const PENDING: SubscriptionStatus = { state: 'pending' };

/** The latest events of `channel` and the subscription's status; nothing until `client` is defined. */
export function useApiXChannel<T extends string = string>(
  client: ApiXClient | undefined,
  channel: string,
  options: ChannelOptions<T> = {},
): ChannelView<T> {
  const { replayLast, limit = 100 } = options;
  // Compared by value, so that an inline `types: [...]` does not resubscribe on every render.
  const typesKey = options.types?.join(',') ?? '';
  const [view, setView] = useState<ChannelView<T>>({ events: [], status: PENDING });

  useEffect(() => {
    setView({ events: [], status: PENDING });
    if (!client) return;
    let acquired: ReturnType<typeof acquire>;
    try {
      acquired = acquire(client, channel, replayLast);
    } catch (err) {
      // An invalid channel name (BAD_REQUEST) or a closed client: show it as a denial.
      setView({ events: [], status: { state: 'denied', error: err as ApiXError } });
      return;
    }
    const { subscription, release } = acquired;
    setView((v) => ({ ...v, status: currentStatus(subscription) }));
    const append = (event: ApiXEvent<T>) =>
      setView((v) => ({ ...v, events: [...v.events, event].slice(-limit) }));
    const types = typesKey ? (typesKey.split(',') as T[]) : undefined;
    const offEvents = types
      ? types.map((type) => subscription.on<T>(type, append))
      : [subscription.on('*', (event) => append(event as ApiXEvent<T>))];
    const offStatus = subscription.onStatus((status) => setView((v) => ({ ...v, status })));
    return () => {
      for (const off of offEvents) off();
      offStatus();
      release();
    };
  }, [client, channel, typesKey, replayLast, limit]);

  return view;
}

// ------------------------------------------------------------------ useAgentStream

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

const NO_STREAMS: AgentStreamState = { streams: [], latest: undefined };

/**
 * The streams of `channel`, updated on every piece; nothing until `client` is defined. The SDK's
 * `subscribeStreams` does the work (the fromSeq rule, snapshots, compacted events, resume); it uses the
 * client's subscription of the channel when one exists (e.g. from `useApiXChannel`).
 *
 *   const { streams, latest } = useAgentStream(client, 'agent:research-bot');
 *   // latest?.text, latest?.status ('streaming' | 'complete' | 'cancelled' | 'error'), latest?.data
 */
export function useAgentStream(
  client: ApiXClient | undefined,
  channel: string,
  options: AgentStreamOptions = {},
): AgentStreamState {
  const { replayLast = 10, eventType } = options;
  const [state, setState] = useState<AgentStreamState>(NO_STREAMS);
  useEffect(() => {
    setState(NO_STREAMS);
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
