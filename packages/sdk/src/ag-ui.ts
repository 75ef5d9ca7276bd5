/**
 * AG-UI (the Agent-User Interaction protocol, `@ag-ui/core`) over APIX, both ways (docs/streams.md).
 *
 * `AgUiPublisher` takes the events an AG-UI agent emits and publishes them on one channel:
 * - RUN_STARTED / RUN_FINISHED / RUN_ERROR: plain events `agui.run_started`, `agui.run_finished`, `agui.run_error`;
 * - TEXT_MESSAGE_START / CONTENT / END: one stream (`agui.text_message`) per message, a delta per append;
 * - TOOL_CALL_START / ARGS / END: one stream (`agui.tool_call`) per call, the argument pieces as appends;
 * - STATE_SNAPSHOT / STATE_DELTA: one stream (`agui.state`) per run, a line of JSON per change
 *   (`{"snapshot":...}` or `{"delta":[JSON Patch]}`).
 *
 * `agUiEvents` turns the channel back into AG-UI events. Live subscribers get each piece as its AG-UI
 * event; a late joiner (reload, reconnect, replay) gets a message's text as one CONTENT, a tool call's
 * arguments as one ARGS, and the state with every delta applied here as ONE STATE_SNAPSHOT, then the rest
 * live. The SDK has no runtime dependency on `@ag-ui/core`: events are checked structurally here, and
 * the tests validate both directions with `@ag-ui/core`'s own schemas. Its own entry point
 * (`@apix/sdk/ag-ui`), so that applications without AG-UI do not carry it.
 */
import { ApiXError, ErrorCode } from '@apix/protocol/errors';
import { applyJsonPatch, type JsonPatchOperation } from './json-patch.ts';

export { applyJsonPatch, type JsonPatchOperation } from './json-patch.ts';
import type { StreamHandle, StreamOptions } from './stream-publisher.ts';
import type { AgentStream, StreamHandlers, StreamsOptions, StreamsSubscription } from './stream-reader.ts';
import type { ApiXEvent, EventHandler, PublishResult } from './types.ts';

/** An AG-UI event (`@ag-ui/core` `BaseEvent`): its `type` and its fields. */
export type AgUiEvent = { type: string } & Record<string, unknown>;

export const AGUI_TYPES = {
  runStarted: 'agui.run_started',
  runFinished: 'agui.run_finished',
  runError: 'agui.run_error',
  textMessage: 'agui.text_message',
  toolCall: 'agui.tool_call',
  state: 'agui.state',
} as const;

/** What the adaptors use of `ApiXClient`. */
export interface AgUiClient {
  publish(channel: string, type: string, payload: unknown): Promise<PublishResult>;
  stream(channel: string, options: StreamOptions): StreamHandle;
  subscribeStreams(channel: string, handlers: StreamHandlers, options?: StreamsOptions): StreamsSubscription;
}

const STREAM_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** A stream id for an AG-UI id: itself when it fits `[A-Za-z0-9_-]{1,64}`, else a readable stand-in. */
export function streamIdFor(prefix: string, id: string): string {
  const direct = `${prefix}${id}`;
  if (STREAM_ID_RE.test(direct)) return direct;
  let hash = 0;
  for (let i = 0; i < id.length; i++) hash = (Math.imul(hash, 31) + id.charCodeAt(i)) | 0;
  const safe = id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40);
  return `${prefix}${safe}-${(hash >>> 0).toString(36)}`;
}

const RUN_EVENTS: Record<string, string> = {
  RUN_STARTED: AGUI_TYPES.runStarted,
  RUN_FINISHED: AGUI_TYPES.runFinished,
  RUN_ERROR: AGUI_TYPES.runError,
};

/**
 * Publishes an AG-UI agent's events on `channel`, in order: `publish(event)` for each, or `pipe(events)`
 * for an async iterable of them. Settles (`flush()`) when everything before was accepted.
 */
export class AgUiPublisher {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly open = new Map<string, StreamHandle>();
  private state: StreamHandle | undefined;
  private failure: unknown;

  constructor(
    private readonly client: AgUiClient,
    readonly channel: string,
  ) {}

  /** Publishes one event (after those before it). Throws BAD_REQUEST for an event it cannot map. */
  publish(event: AgUiEvent): void {
    if (this.failure !== undefined) throw this.failure;
    const step = this.step(event);
    this.chain = this.chain.then(step).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  /** Publishes every event of `events`, then waits for them to be accepted. */
  async pipe(events: AsyncIterable<AgUiEvent> | Iterable<AgUiEvent>): Promise<void> {
    for await (const event of events) this.publish(event);
    await this.flush();
  }

  /** Settles when every event so far was accepted; rejects with the first failure. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }

  /** What publishing `event` takes, run in order on the chain. */
  private step(event: AgUiEvent): () => unknown {
    const { type, ...fields } = event;
    const runType = RUN_EVENTS[type];
    if (runType !== undefined) {
      if (type === 'RUN_STARTED') return () => this.client.publish(this.channel, runType, fields);
      // The run's state stream ends with the run (its compacted event is the final state).
      return async () => {
        await this.state?.end(type === 'RUN_ERROR' ? 'error' : 'complete');
        this.state = undefined;
        return this.client.publish(this.channel, runType, fields);
      };
    }
    switch (type) {
      case 'TEXT_MESSAGE_START':
        return this.startStream('m', str(fields.messageId), AGUI_TYPES.textMessage, fields);
      case 'TOOL_CALL_START':
        return this.startStream('t', str(fields.toolCallId), AGUI_TYPES.toolCall, fields);
      case 'TEXT_MESSAGE_CONTENT':
      case 'TOOL_CALL_ARGS':
        return this.appendTo(type === 'TOOL_CALL_ARGS' ? 't' : 'm', fields);
      case 'TEXT_MESSAGE_END':
      case 'TOOL_CALL_END':
        return this.endStream(type === 'TOOL_CALL_END' ? 't' : 'm', fields);
      case 'STATE_SNAPSHOT':
        return this.stateLine({ snapshot: fields.snapshot });
      case 'STATE_DELTA':
        return this.stateLine({ delta: fields.delta });
      default:
        throw new ApiXError(ErrorCode.BAD_REQUEST, `AG-UI event ${type} has no APIX mapping`);
    }
  }

  private startStream(
    kind: string,
    id: string,
    eventType: string,
    data: Record<string, unknown>,
  ): () => unknown {
    if (id === '') throw new ApiXError(ErrorCode.BAD_REQUEST, `AG-UI ${eventType}: missing id`);
    return () => {
      const handle = this.client.stream(this.channel, { eventType, streamId: streamIdFor(kind, id), data });
      this.open.set(kind + id, handle);
      return handle.started;
    };
  }

  private appendTo(kind: string, fields: Record<string, unknown>): () => unknown {
    const id = str(kind === 't' ? fields.toolCallId : fields.messageId);
    const delta = str(fields.delta);
    return () => {
      const handle = this.open.get(kind + id);
      if (!handle) throw new ApiXError(ErrorCode.BAD_REQUEST, `AG-UI: no open message or tool call ${id}`);
      handle.append(delta);
    };
  }

  private endStream(kind: string, fields: Record<string, unknown>): () => unknown {
    const id = str(kind === 't' ? fields.toolCallId : fields.messageId);
    return () => {
      const handle = this.open.get(kind + id);
      if (!handle) throw new ApiXError(ErrorCode.BAD_REQUEST, `AG-UI: no open message or tool call ${id}`);
      this.open.delete(kind + id);
      return handle.end('complete');
    };
  }

  private stateLine(line: { snapshot?: unknown; delta?: unknown }): () => unknown {
    return () => {
      const opening = this.state === undefined;
      this.state ??= this.client.stream(this.channel, { eventType: AGUI_TYPES.state });
      this.state.append(`${JSON.stringify(line)}\n`);
      // The first line goes out with the start's answer: what follows waits for it, to keep the order.
      return opening ? this.state.started : undefined;
    };
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** The state after the lines of an `agui.state` stream's text (snapshots replace, deltas patch). */
export function foldStateLines(state: unknown, text: string): unknown {
  let current = state;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const parsed = JSON.parse(line) as { snapshot?: unknown; delta?: JsonPatchOperation[] };
    if ('snapshot' in parsed) current = parsed.snapshot;
    else if (Array.isArray(parsed.delta)) current = applyJsonPatch(current ?? {}, parsed.delta);
  }
  return current;
}

export interface AgUiSubscription {
  /** The state folded so far (what a STATE_SNAPSHOT now would carry). */
  readonly state: () => unknown;
  close(): Promise<void>;
}

/**
 * Emits the AG-UI events of `channel` to `onEvent`, in order: live pieces as they come, and whatever a
 * late joiner missed as one event per message, tool call and state (see the file comment). Streams are
 * append-only, so what to emit is always the part of a stream's text not emitted yet.
 */
export function agUiEvents(
  client: AgUiClient,
  channel: string,
  onEvent: (event: AgUiEvent) => void,
  options: StreamsOptions = {},
): AgUiSubscription {
  let state: unknown;
  /** Per open stream: how much of its text was emitted (bounded by the streams the reader keeps). */
  const emitted = new Map<string, number>();
  const onStateText = (s: AgentStream, from: number | undefined): void => {
    if (from === undefined) {
      // First seen with text already (late join, reload, replay): every line folded, ONE STATE_SNAPSHOT.
      if (s.text === '') return;
      state = foldStateLines(undefined, s.text);
      onEvent({ type: 'STATE_SNAPSHOT', snapshot: state ?? {} });
      return;
    }
    for (const line of s.text.slice(from).split('\n')) {
      if (line === '') continue;
      const parsed = JSON.parse(line) as { snapshot?: unknown; delta?: JsonPatchOperation[] };
      state = foldStateLines(state, line);
      if ('snapshot' in parsed) onEvent({ type: 'STATE_SNAPSHOT', snapshot: parsed.snapshot ?? {} });
      else onEvent({ type: 'STATE_DELTA', delta: parsed.delta ?? [] });
    }
  };
  const onMessageText = (s: AgentStream, from: number | undefined): void => {
    const d = (s.data ?? {}) as Record<string, unknown>;
    const isTool = s.eventType === AGUI_TYPES.toolCall;
    const id = isTool ? { toolCallId: str(d.toolCallId) } : { messageId: str(d.messageId) };
    if (from === undefined)
      onEvent(
        isTool
          ? {
              type: 'TOOL_CALL_START',
              ...id,
              toolCallName: str(d.toolCallName),
              ...(d.parentMessageId !== undefined ? { parentMessageId: d.parentMessageId } : {}),
            }
          : { type: 'TEXT_MESSAGE_START', ...id, role: d.role ?? 'assistant' },
      );
    const delta = s.text.slice(from ?? 0);
    if (delta !== '') onEvent({ type: isTool ? 'TOOL_CALL_ARGS' : 'TEXT_MESSAGE_CONTENT', ...id, delta });
    if (s.status !== 'streaming') onEvent({ type: isTool ? 'TOOL_CALL_END' : 'TEXT_MESSAGE_END', ...id });
  };
  const handlers: StreamHandlers = {
    onUpdate: (s) => {
      const from = emitted.get(s.streamId);
      if (s.eventType === AGUI_TYPES.state) onStateText(s, from);
      else if (s.eventType === AGUI_TYPES.textMessage || s.eventType === AGUI_TYPES.toolCall)
        onMessageText(s, from);
      else return;
      if (s.status === 'streaming') emitted.set(s.streamId, s.text.length);
      else emitted.delete(s.streamId);
    },
  };
  const streams = client.subscribeStreams(channel, handlers, options);
  const runHandler: EventHandler = (event: ApiXEvent) => {
    const type = Object.keys(RUN_EVENTS).find((k) => RUN_EVENTS[k] === event.type);
    if (type !== undefined) onEvent({ type, ...(event.payload as Record<string, unknown>) });
  };
  const offs = Object.values(RUN_EVENTS).map((t) => streams.subscription.on(t, runHandler));
  return {
    state: () => state,
    close: async () => {
      for (const off of offs) off();
      await streams.close();
    },
  };
}
