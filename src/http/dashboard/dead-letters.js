/* global document, fetch, setTimeout, clearTimeout */
// The dashboard's dead-letter card: the organization's dead letters on this node (GET
// /v1/admin/dead-letters), each with Replay and Purge, and both for all of them. Every replay and purge
// goes through the admin API, which audits it.
const POLL_MS = 5000;
const $ = (id) => document.getElementById(id);
let timer;
let getToken = () => undefined;

function button(text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.addEventListener('click', () => onClick(b));
  return b;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${getToken()}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.message ?? `HTTP ${res.status}`);
  return json;
}

/** Runs a replay or purge, shows its outcome, and refreshes the list. */
async function act(verb, selection, b) {
  b.disabled = true;
  try {
    const r = await api('POST', `/v1/admin/dead-letters/${verb}`, selection);
    const done = verb === 'purge' ? `${r.purged} purged` : `${r.replayed.length} replayed`;
    const failed = r.failed?.length ? `, ${r.failed.length} failed: ${r.failed[0].message}` : '';
    $('dead-letters-status').textContent = `${done}${failed}`;
  } catch (err) {
    $('dead-letters-status').textContent = `${verb} failed: ${err.message}`;
  }
  await refresh();
}

function render(entries, node) {
  const tbody = $('dead-letters').tBodies[0];
  tbody.replaceChildren();
  const card = $('dead-letters-card');
  card.dataset.count = String(entries.length);
  $('dead-letters-summary').textContent =
    `${entries.length} shown · node queue ${node.queued}, dropped when full ${node.dropped}`;
  if (entries.length === 0) {
    const tr = tbody.insertRow();
    tr.insertCell().textContent = 'no dead letters';
    return;
  }
  for (const d of entries) {
    const tr = tbody.insertRow();
    tr.dataset.eventId = d.eventId;
    for (const text of [d.failedAt.replace('T', ' ').slice(0, 19), d.channel, d.type, d.eventId, d.sessionId])
      tr.insertCell().textContent = text;
    tr.insertCell().textContent = String(d.attempts);
    const actions = tr.insertCell();
    actions.append(
      button('Replay', (b) => act('replay', { eventIds: [d.eventId] }, b)),
      button('Purge', (b) => act('purge', { eventIds: [d.eventId] }, b)),
    );
  }
}

async function refresh() {
  clearTimeout(timer);
  if (!getToken()) return;
  try {
    const r = await api('GET', '/v1/admin/dead-letters?limit=50');
    render(r.deadLetters, r.node);
  } catch (err) {
    $('dead-letters-summary').textContent = `cannot list: ${err.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

/** Starts the card; `token()` gives the admin token of the session (undefined once logged out). */
export function startDeadLetters(token) {
  getToken = token;
  const all = $('dead-letters-actions');
  if (all.childElementCount === 0)
    all.append(
      button('Replay all', (b) => act('replay', { all: true }, b)),
      button('Purge all', (b) => act('purge', { all: true }, b)),
    );
  return refresh();
}

export function stopDeadLetters() {
  clearTimeout(timer);
}
