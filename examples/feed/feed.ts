/**
 * The live activity feed (examples/feed/index.html): one ApiXClient, the events of a few channels as they
 * happen, the connection's state and reconnection attempts, and denials shown as such.
 *
 * The gateway transpiles this file for the browser and resolves the SDK import below to its own
 * `/sdk/apix.js` bundle (src/http/examples.ts); the root tsconfig typechecks it against the SDK source.
 * Everything the page shows goes through `textContent`: event payloads are data, never markup.
 */
import { ApiXClient, isApiXError } from '../../packages/sdk/src/index.ts';
import type { AgentStream, ApiXError, ApiXEvent, ClientState } from '../../packages/sdk/src/index.ts';

const DEFAULT_CHANNELS = [
  'agent:research-bot',
  'tool:web_search',
  'tool:code_interpreter',
  'workflow:onboarding',
  'provider:openai',
];
const MAX_EVENTS = 500;
const MAX_LOG_LINES = 200;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

const view = {
  state: element('state'),
  attempts: element('attempts'),
  attemptDetail: element('attempt-detail'),
  rtt: element('rtt'),
  denials: element('denials'),
  settings: element<HTMLDetailsElement>('settings'),
  connectForm: element<HTMLFormElement>('connect-form'),
  url: element<HTMLInputElement>('url'),
  token: element<HTMLInputElement>('token'),
  channels: element<HTMLInputElement>('channels'),
  disconnect: element<HTMLButtonElement>('disconnect'),
  privateForm: element<HTMLFormElement>('private-form'),
  privateChannel: element<HTMLInputElement>('private-channel'),
  privateSubscribe: element<HTMLButtonElement>('private-subscribe'),
  events: element<HTMLOListElement>('events'),
  answers: element<HTMLOListElement>('answers'),
  eventCount: element('event-count'),
  agents: element<HTMLUListElement>('agents'),
  workflows: element<HTMLUListElement>('workflows'),
  providers: element<HTMLUListElement>('providers'),
  log: element<HTMLOListElement>('log'),
};

function make(tag: string, className: string | undefined, text?: string): HTMLElement {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function time(ms: number | undefined): string {
  return new Date(ms ?? Date.now()).toLocaleTimeString(undefined, { hour12: false });
}

function log(line: string, problem = false): void {
  const item = make('li', problem ? 'problem' : undefined, `${time(undefined)} ${line}`);
  view.log.prepend(item);
  while (view.log.children.length > MAX_LOG_LINES) view.log.lastElementChild?.remove();
}

// ------------------------------------------------------------------ settings from the address

/** `url`, `token` and `channels` from the fragment (never sent to a server) or the query string. */
function settingsFromAddress(): { url?: string; token?: string; channels?: string } {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  const pick = (name: string) => fragment.get(name) ?? query.get(name) ?? undefined;
  const settings = { url: pick('url'), token: pick('token'), channels: pick('channels') };
  if (query.has('token') || fragment.has('token')) {
    // Keep the token out of the address bar, the history and anything copied from it.
    query.delete('token');
    fragment.delete('token');
    const search = query.toString();
    const hash = fragment.toString();
    history.replaceState(
      null,
      '',
      `${location.pathname}${search ? `?${search}` : ''}${hash ? `#${hash}` : ''}`,
    );
  }
  return settings;
}

function defaultGatewayUrl(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
}

/** The token's `sub` (unverified: only to keep one resumable session per user in this tab). */
function tokenSubject(token: string): string {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : 'key';
  } catch {
    return 'key';
  }
}

/** Constant per user for this tab, so that a reload resumes the session instead of starting anew. */
function sessionIdFor(token: string): string {
  const key = `apix-feed-session:${tokenSubject(token)}`;
  let id = sessionStorage.getItem(key);
  if (!id) {
    id = crypto.randomUUID();
    sessionStorage.setItem(key, id);
  }
  return id;
}

// ------------------------------------------------------------------ rendering events

interface Summary {
  readonly kind: 'tool' | 'error' | 'agent' | 'workflow' | 'provider' | 'system' | 'other';
  readonly text: string;
}

function summarize(event: ApiXEvent): Summary {
  const p = (event.payload ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
  switch (event.type) {
    case 'tool_call_start':
      return {
        kind: 'tool',
        text: `${str(p.toolName)} started${p.agentId ? ` by ${str(p.agentId)}` : ''} (${str(p.toolCallId)})`,
      };
    case 'tool_call_result':
      return {
        kind: 'tool',
        text:
          `${str(p.toolName) || str(p.toolCallId)} returned` +
          (typeof p.durationMs === 'number' ? ` in ${p.durationMs} ms` : '') +
          `: ${JSON.stringify(p.output ?? null).slice(0, 120)}`,
      };
    case 'tool_call_error': {
      const error = (p.error ?? {}) as { message?: unknown; code?: unknown };
      return {
        kind: 'error',
        text:
          `${str(p.toolName) || str(p.toolCallId)} failed: ${str(error.message)}` +
          (error.code ? ` [${str(error.code)}]` : '') +
          (p.retryable ? ' (retryable)' : ''),
      };
    }
    case 'agent_status_update':
      return {
        kind: 'agent',
        text: `${str(p.agentId)} is ${str(p.status)}${p.message ? `: ${str(p.message)}` : ''}`,
      };
    case 'workflow_state_change':
      return {
        kind: 'workflow',
        text:
          `${str(p.workflowId)}${p.runId ? ` run ${str(p.runId)}` : ''}: ` +
          `${p.from ? `${str(p.from)} → ` : ''}${str(p.to)}${p.step ? ` (${str(p.step)})` : ''}`,
      };
    case 'provider_health_update':
      return {
        kind: 'provider',
        text:
          `${str(p.providerId)} is ${str(p.status)}` +
          (typeof p.latencyMs === 'number' ? `, ${p.latencyMs} ms` : '') +
          (typeof p.errorRate === 'number' ? `, ${Math.round(p.errorRate * 100)}% errors` : ''),
      };
    case 'system_notification':
      return {
        kind: 'system',
        text: `[${str(p.level)}] ${p.title ? `${str(p.title)}: ` : ''}${str(p.message)}`,
      };
    default:
      return { kind: 'other', text: JSON.stringify(event.payload ?? null).slice(0, 200) };
  }
}

const TONE: Record<string, 'good' | 'busy' | 'warn' | 'bad' | undefined> = {
  idle: undefined,
  thinking: 'busy',
  running: 'busy',
  waiting: 'warn',
  completed: 'good',
  failed: 'bad',
  offline: 'bad',
  healthy: 'good',
  degraded: 'warn',
  down: 'bad',
};

/** The latest status per agent / workflow / provider, one row each. */
function showStatus(list: HTMLElement, key: string, status: string): void {
  let row = Array.from(list.children).find((li) => (li as HTMLElement).dataset.key === key) as
    HTMLElement | undefined;
  if (!row) {
    row = make('li', undefined);
    row.dataset.key = key;
    row.append(make('span', undefined, key), make('span', 'pill'));
    list.append(row);
  }
  const pill = row.lastElementChild as HTMLElement;
  pill.textContent = status;
  pill.className = `pill ${TONE[status] ?? ''}`.trim();
}

const MAX_ANSWERS = 20;

/**
 * A streamed answer (docs/streams.md), one row per stream, its text as it builds up: piece by piece live,
 * whole after a reload or a late join (the SDK's `subscribeStreams` applies snapshots and appends).
 */
function showStream(stream: AgentStream): void {
  const key = `${stream.channel} ${stream.streamId}`;
  let row = Array.from(view.answers.children).find((li) => (li as HTMLElement).dataset.key === key) as
    HTMLElement | undefined;
  if (!row) {
    row = make('li', 'answer');
    row.dataset.key = key;
    row.dataset.streamId = stream.streamId;
    row.dataset.channel = stream.channel;
    row.append(make('span', 'event-channel', stream.channel), make('span', 'pill'), make('p', 'answer-text'));
    view.answers.prepend(row);
    while (view.answers.children.length > MAX_ANSWERS) view.answers.lastElementChild?.remove();
  }
  row.dataset.status = stream.status;
  row.dataset.seq = String(stream.seq);
  const pill = row.children[1] as HTMLElement;
  pill.textContent = stream.status;
  pill.className = `pill ${stream.status === 'streaming' ? 'busy' : stream.status === 'complete' ? 'good' : 'bad'}`;
  (row.children[2] as HTMLElement).textContent = stream.text;
}

let eventCount = 0;

function showEvent(event: ApiXEvent): void {
  // A stream's frames build its answer row (showStream), not rows of their own.
  if (event.type.startsWith('stream.')) return;
  const { kind, text } = summarize(event);
  const item = make('li', `kind-${kind}`);
  item.dataset.id = event.id;
  item.dataset.channel = event.channel;
  item.dataset.type = event.type;
  const body = make('span', 'event-text');
  body.append(make('span', 'event-type', event.type), document.createTextNode(text));
  item.append(
    make('span', 'event-time', time(event.metadata.timestamp)),
    make('span', 'event-channel', event.channel),
    body,
  );
  view.events.prepend(item);
  while (view.events.children.length > MAX_EVENTS) view.events.lastElementChild?.remove();
  view.eventCount.textContent = String(++eventCount);

  const p = (event.payload ?? {}) as Record<string, unknown>;
  if (event.type === 'agent_status_update') showStatus(view.agents, String(p.agentId), String(p.status));
  if (event.type === 'workflow_state_change') showStatus(view.workflows, String(p.workflowId), String(p.to));
  if (event.type === 'provider_health_update')
    showStatus(view.providers, String(p.providerId), String(p.status));
}

// ------------------------------------------------------------------ denials and warnings

function showDenial(channel: string, error: ApiXError | Error): void {
  const code = isApiXError(error) ? error.code : 'ERROR';
  const box = make('div', 'denial');
  box.dataset.channel = channel;
  box.dataset.code = code;
  box.append(
    make('strong', undefined, code === 'FORBIDDEN' ? 'Permission denied' : `Refused (${code})`),
    document.createTextNode(` — you may not subscribe to ${channel}. `),
    make('span', 'muted', `${code}: ${error.message}`),
  );
  view.denials.prepend(box);
  log(`denied ${channel}: ${code} ${error.message}`, true);
}

function showWarning(text: string): void {
  view.denials.prepend(make('div', 'denial warning', text));
}

// ------------------------------------------------------------------ the client

let client: ApiXClient | undefined;
let attempts = 0;

function showState(state: ClientState): void {
  view.state.textContent = state;
  view.state.dataset.state = state;
  const live = state !== 'idle' && state !== 'closed';
  view.disconnect.disabled = !live;
  view.privateSubscribe.disabled = !live;
}

function subscribe(c: ApiXClient, channel: string): void {
  try {
    const sub = c.subscribe(channel, { replay: { last: 20 } });
    sub.on('*', showEvent);
    c.subscribeStreams(channel, { onUpdate: showStream });
    sub.ready.then(
      ({ recovered }) => log(`subscribed ${channel}${recovered ? '' : ' (history incomplete)'}`),
      () => {}, // denials are shown by the client's subscription.denied listener
    );
  } catch (err) {
    showDenial(channel, err as Error);
  }
}

async function connect(url: string, token: string, channels: readonly string[]): Promise<void> {
  await client?.close();
  attempts = 0;
  view.attempts.textContent = '0';
  view.attemptDetail.textContent = '';
  // WebSocket first; where it is missing or a proxy refuses it, HTTP streaming, then SSE (docs/transports.md).
  const c = new ApiXClient({
    url,
    token,
    clientType: 'WEB_APP',
    sessionId: sessionIdFor(token),
    transports: ['websocket', 'http-stream', 'sse'],
  });
  client = c;
  c.on('state', ({ state }) => showState(state));
  c.on('connection.established', (info) => {
    log(`connected ${info.connectionId} over ${c.transport}${info.resumed ? ', session resumed' : ''}`);
    if (attempts > 0) view.attemptDetail.textContent = `back after ${attempts} attempts`;
  });
  c.on('connection.disconnected', ({ code, serverCode, willReconnect }) =>
    log(
      `disconnected (close ${code}${serverCode ? `, ${serverCode}` : ''})${willReconnect ? ', will reconnect' : ''}`,
      !willReconnect,
    ),
  );
  c.on('reconnection.attempt', ({ attempt, delayMs }) => {
    attempts += 1;
    view.attempts.textContent = String(attempts);
    view.attemptDetail.textContent = `attempt ${attempt} in ${delayMs} ms`;
    log(`reconnection attempt ${attempt} in ${delayMs} ms`);
  });
  c.on('subscription.added', ({ channel, recovered }) => {
    if (!recovered) showWarning(`Some events of ${channel} were missed: older than the gateway keeps.`);
  });
  c.on('subscription.denied', ({ channel, error }) => showDenial(channel, error));
  c.on('heartbeat.rtt', ({ rttMs }) => (view.rtt.textContent = String(Math.round(rttMs))));
  c.on('error', (err) => log(`error ${err.code}: ${err.message}`, true));

  for (const channel of channels) subscribe(c, channel);
  view.settings.open = false;
  try {
    await c.connect();
  } catch (err) {
    const error = isApiXError(err) ? err : new Error(String(err));
    view.settings.open = true;
    view.denials.prepend(
      make(
        'div',
        'denial',
        `Could not connect: ${isApiXError(error) ? `${error.code} ` : ''}${error.message}`,
      ),
    );
  }
}

function parseChannels(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((c) => c.trim())
    .filter(Boolean);
}

view.connectForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const token = view.token.value.trim();
  if (!token) {
    view.token.focus();
    return;
  }
  void connect(view.url.value.trim() || defaultGatewayUrl(), token, parseChannels(view.channels.value));
});

view.disconnect.addEventListener('click', () => {
  const c = client;
  client = undefined;
  void c?.close().then(() => log('disconnected by you'));
  view.settings.open = true;
});

view.privateForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const channel = view.privateChannel.value.trim();
  const c = client;
  if (!c || !channel) return;
  if (c.subscription(channel)) {
    log(`already subscribed to ${channel}`);
    return;
  }
  subscribe(c, channel);
});

const initial = settingsFromAddress();
view.url.value = initial.url ?? defaultGatewayUrl();
view.token.value = initial.token ?? '';
view.channels.value = initial.channels ?? DEFAULT_CHANNELS.join(', ');
if (initial.token) void connect(view.url.value, initial.token, parseChannels(view.channels.value));
