/**
 * A small React component on `useApiXChannel` (`@apix/sdk/react`): the tool calls of one tool, live, with the connection
 * state and any denial shown. Written with `createElement` (no JSX) so that the root tsconfig checks it;
 * in an application with JSX it reads:
 *
 *   <section>
 *     <ConnectionBadge state={state} />
 *     {status.state === 'denied' && <p role="alert">{status.error.code}: {status.error.message}</p>}
 *     <ol>{events.map((e) => <li key={e.id}>{describe(e)}</li>)}</ol>
 *   </section>
 *
 * Mount it with react-dom (`createRoot(el).render(createElement(ToolCallFeed, { url, tokenProvider }))`)
 * and bundle with esbuild or any bundler; `tokenProvider` fetches a short-lived JWT from your backend.
 */
import { createElement, useMemo } from 'react';
import type { ReactElement } from 'react';
import type { ApiXEvent, ClientState, TokenProvider } from '../../packages/sdk/src/index.ts';
import { useApiXChannel, useApiXClient } from '../../packages/sdk/src/react.ts';

const TOOL_CALL_TYPES = ['tool_call_start', 'tool_call_result', 'tool_call_error'] as const;
type ToolCallType = (typeof TOOL_CALL_TYPES)[number];

export interface ToolCallFeedProps {
  /** The gateway (`wss://apix.example.com`). */
  readonly url: string;
  readonly tokenProvider: TokenProvider;
  /** The tool whose calls to show (channel `tool:<toolName>`). */
  readonly toolName: string;
}

/** One line per event; payloads are typed per event type by the SDK. */
export function describeToolCall(event: ApiXEvent<ToolCallType>): string {
  switch (event.type) {
    case 'tool_call_start': {
      const p = (event as ApiXEvent<'tool_call_start'>).payload;
      return `${p.toolName} started (${p.toolCallId})${p.agentId ? ` by ${p.agentId}` : ''}`;
    }
    case 'tool_call_result': {
      const p = (event as ApiXEvent<'tool_call_result'>).payload;
      return `${p.toolCallId} returned${p.durationMs === undefined ? '' : ` in ${p.durationMs} ms`}`;
    }
    case 'tool_call_error': {
      const p = (event as ApiXEvent<'tool_call_error'>).payload;
      return `${p.toolCallId} failed: ${p.error.message}${p.retryable ? ' (retryable)' : ''}`;
    }
  }
}

function ConnectionBadge({ state }: { readonly state: ClientState }): ReactElement {
  return createElement('span', { className: `badge badge-${state}`, 'aria-live': 'polite' }, state);
}

export function ToolCallFeed({ url, tokenProvider, toolName }: ToolCallFeedProps): ReactElement {
  const options = useMemo(
    () => ({ url, tokenProvider, clientType: 'WEB_APP' as const }),
    [url, tokenProvider],
  );
  const { client, state } = useApiXClient(options);
  const { events, status } = useApiXChannel(client, `tool:${toolName}`, {
    types: TOOL_CALL_TYPES,
    replayLast: 20,
    limit: 50,
  });

  return createElement(
    'section',
    { className: 'tool-call-feed' },
    createElement('h2', null, `tool:${toolName} `, createElement(ConnectionBadge, { state })),
    status.state === 'denied' &&
      createElement('p', { role: 'alert' }, `${status.error.code}: ${status.error.message}`),
    status.state === 'subscribed' &&
      !status.recovered &&
      createElement('p', { role: 'status' }, 'Some earlier events are no longer available.'),
    createElement(
      'ol',
      null,
      events.map((event) =>
        createElement('li', { key: event.id, 'data-type': event.type }, describeToolCall(event)),
      ),
    ),
  );
}
