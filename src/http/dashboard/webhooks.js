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

export function webhooksPanel(getToken) {
  async function call(method, path, body) {
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

  function say(text, isError = false) {
    const p = $('webhooks-message');
    p.textContent = text;
    p.className = isError ? 'error' : 'muted';
  }

  function button(label, action) {
    const b = el('button', label);
    b.type = 'button';
    b.addEventListener('click', () => {
      b.disabled = true;
      action()
        .then(refresh)
        .catch((err) => say(err.message, true))
        .finally(() => (b.disabled = false));
    });
    return b;
  }

  async function refresh() {
    if (!getToken()) return;
    const [{ webhooks }, { deadLetters }] = await Promise.all([
      call('GET', '/v1/admin/webhooks'),
      call('GET', '/v1/admin/webhooks/dead-letters'),
    ]);
    const list = $('webhooks-list');
    list.replaceChildren();
    for (const w of webhooks) {
      const tr = el('tr');
      tr.append(el('td', w.url), el('td', w.events.join(', ')));
      const actions = el('td');
      actions.append(
        button('Test', async () => {
          const r = await call('POST', `/v1/admin/webhooks/${encodeURIComponent(w.id)}/test`);
          say(r.delivered ? `test event delivered to ${w.url}` : `test failed: ${r.error}`, !r.delivered);
        }),
        button('Remove', () => call('DELETE', `/v1/admin/webhooks/${encodeURIComponent(w.id)}`)),
      );
      tr.append(actions);
      list.append(tr);
    }
    if (webhooks.length === 0) list.append(emptyRow('no endpoints'));
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
      actions.append(
        button('Replay', () => call('POST', `/v1/admin/webhooks/dead-letters/${encodeURIComponent(d.id)}/replay`)),
      );
      tr.append(actions);
      dead.append(tr);
    }
    if (deadLetters.length === 0) dead.append(emptyRow('none'));
  }

  function init() {
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
      call('POST', '/v1/admin/webhooks', { url, events })
        .then((made) => {
          say(`endpoint ${made.id} made; its secret (shown only now): ${made.secret}`);
          $('webhooks-url').value = '';
          return refresh();
        })
        .catch((err) => say(err.message, true));
    });
  }

  init();
  return { refresh };
}
