/* global document, fetch */
// The dashboard's webhooks card: the organization's endpoints (add, test, remove; the secret is shown
// once, when an endpoint is made) and its dead letters (replay). Speaks the admin API with the
// dashboard's token; builds the DOM with textContent only (nothing from the server is parsed as HTML).

const EVENT_TYPES = [
  'connection.opened',
  'connection.closed',
  'subscription.added',
  'subscription.removed',
  'channel.occupied',
  'channel.vacated',
  'presence.join',
  'presence.leave',
  'stream.ended',
  'message.failed',
];

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function emptyRow(text) {
  const tr = el('tr');
  tr.append(el('td', text, 'muted'));
  return tr;
}

async function call(ctx, method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${ctx.getToken()}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.message ?? `HTTP ${res.status}`);
  return json;
}

function say(text, isError = false) {
  const p = $('webhooks-message');
  p.textContent = text;
  p.className = isError ? 'error' : 'muted';
}

/** A button that runs `action`, then refreshes the card (or says what failed). */
function button(ctx, label, action) {
  const b = el('button', label);
  b.type = 'button';
  b.addEventListener('click', () => {
    b.disabled = true;
    action()
      .then(ctx.refresh)
      .catch((err) => say(err.message, true))
      .finally(() => (b.disabled = false));
  });
  return b;
}

function renderEndpoints(ctx, webhooks) {
  const list = $('webhooks-list');
  list.replaceChildren();
  for (const w of webhooks) {
    const tr = el('tr');
    tr.append(el('td', w.url), el('td', w.events.join(', ')));
    const actions = el('td');
    const path = `/v1/admin/webhooks/${encodeURIComponent(w.id)}`;
    actions.append(
      button(ctx, 'Test', async () => {
        const r = await call(ctx, 'POST', `${path}/test`);
        say(r.delivered ? `test event delivered to ${w.url}` : `test failed: ${r.error}`, !r.delivered);
      }),
      button(ctx, 'Remove', () => call(ctx, 'DELETE', path)),
    );
    tr.append(actions);
    list.append(tr);
  }
  if (webhooks.length === 0) list.append(emptyRow('no endpoints'));
}

function renderDeadLetters(ctx, deadLetters) {
  const dead = $('webhooks-dead');
  dead.replaceChildren();
  for (const d of deadLetters) {
    const tr = el('tr');
    tr.append(
      el('td', new Date(d.failedAt).toLocaleTimeString()),
      el('td', `${d.events.length} events`),
      el('td', d.lastError ?? ''),
    );
    const actions = el('td');
    const path = `/v1/admin/webhooks/dead-letters/${encodeURIComponent(d.id)}/replay`;
    actions.append(button(ctx, 'Replay', () => call(ctx, 'POST', path)));
    tr.append(actions);
    dead.append(tr);
  }
  if (deadLetters.length === 0) dead.append(emptyRow('none'));
}

function initForm(ctx) {
  const boxes = $('webhooks-events');
  for (const t of EVENT_TYPES) {
    const label = el('label');
    const box = el('input');
    box.type = 'checkbox';
    box.value = t;
    label.append(box, ` ${t}`);
    boxes.append(label);
  }
  $('webhooks-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const url = $('webhooks-url').value.trim();
    const events = [...boxes.querySelectorAll('input:checked')].map((b) => b.value);
    call(ctx, 'POST', '/v1/admin/webhooks', { url, events })
      .then((made) => {
        say(`endpoint ${made.id} made; its secret (shown only now): ${made.secret}`);
        $('webhooks-url').value = '';
        return ctx.refresh();
      })
      .catch((err) => say(err.message, true));
  });
}

/** The card, given how to read the dashboard's token; `refresh()` reloads it from the admin API. */
export function webhooksPanel(getToken) {
  const ctx = {
    getToken,
    async refresh() {
      if (!getToken()) return;
      const [{ webhooks }, { deadLetters }] = await Promise.all([
        call(ctx, 'GET', '/v1/admin/webhooks'),
        call(ctx, 'GET', '/v1/admin/webhooks/dead-letters'),
      ]);
      renderEndpoints(ctx, webhooks);
      renderDeadLetters(ctx, deadLetters);
    },
  };
  initForm(ctx);
  return { refresh: ctx.refresh };
}
