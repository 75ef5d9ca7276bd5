/* global document, window, sessionStorage, WebSocket, fetch, setTimeout, clearTimeout, location */
// The APIX admin dashboard: log in with an admin JWT, then follow the node's live figures over the
// gateway's own WebSocket (channel org:apix-dashboard, one `apix.stats` event per second).
import { barList, lineChart } from './charts.js';
import { startDeadLetters, stopDeadLetters } from './dead-letters.js';
import { webhooksPanel } from './webhooks.js';

const TOKEN_KEY = 'apix.dashboard.token';
const CHANNEL = 'org:apix-dashboard';
const STATS_TYPE = 'apix.stats';
const MAX_SAMPLES = 180;
/** Close codes after which reconnecting with the same token is pointless. */
const FATAL_CLOSES = new Map([
  [4001, 'the token was rejected'],
  [4002, 'the token expired'],
  [4011, 'this session was suspended'],
]);

const $ = (id) => document.getElementById(id);
const state = {
  token: undefined,
  ws: undefined,
  samples: [],
  reconnectTimer: undefined,
  auditTimer: undefined,
  audit: undefined, // entries from GET /v1/audit (newest first); null when the server has none
  auditAfterSeq: undefined,
  renderQueued: false,
};

// ------------------------------------------------------------------ formatting

const num = (v) => (v >= 100 ? Math.round(v).toLocaleString('en') : (Math.round(v * 10) / 10).toString());
const ms = (v) => (v >= 100 ? `${Math.round(v)} ms` : `${(Math.round(v * 100) / 100).toString()} ms`);
function bytes(v) {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${num(v)} ${units[i]}`;
}
const time = (at) => new Date(at).toLocaleTimeString();

function setText(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

// ------------------------------------------------------------------ login

function showLogin(message) {
  $('login').hidden = false;
  $('main').hidden = true;
  $('logout').hidden = true;
  $('whoami').textContent = '';
  $('login-error').textContent = message ?? '';
  setLive(false, 'offline');
}

async function fetchStats(token) {
  const res = await fetch('/v1/admin/stats', { headers: { Authorization: `Bearer ${token}` } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) throw new Error(`token rejected: ${body.message ?? 'unauthorized'}`);
  if (res.status === 403) throw new Error('this token has no "admin" role');
  if (!res.ok) throw new Error(body.message ?? `HTTP ${res.status}`);
  return body;
}

async function login(token) {
  const stats = await fetchStats(token);
  sessionStorage.setItem(TOKEN_KEY, token);
  state.token = token;
  state.samples = [];
  addSample(stats);
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  render();
  connect();
  pollAudit();
  startDeadLetters(() => state.token);
  webhooks.refresh().catch(() => {});
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = undefined;
  state.audit = undefined;
  state.auditAfterSeq = undefined;
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.auditTimer);
  stopDeadLetters();
  const ws = state.ws;
  state.ws = undefined;
  if (ws) ws.close(1000, 'logout');
  showLogin(message);
}

// ------------------------------------------------------------------ live feed

function setLive(on, text) {
  const badge = $('live');
  badge.className = `badge ${on ? 'on' : 'off'}`;
  badge.textContent = text;
}

function send(ws, frame) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
}

function connect() {
  const token = state.token;
  if (!token) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
  const ws = new WebSocket(url, 'apix.v1.json');
  state.ws = ws;
  setLive(false, 'connecting…');
  ws.onopen = () =>
    send(ws, {
      type: 'connect',
      payload: {
        sessionId: `dashboard-${Math.random().toString(36).slice(2, 10)}`,
        clientType: 'WEB_APP',
        authentication: { token },
        subscriptions: [],
        metadata: { app: 'apix-dashboard' },
      },
    });
  ws.onmessage = (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    switch (frame.type) {
      case 'connection.established':
        send(ws, { type: 'subscribe', payload: { channels: [CHANNEL], replay: { last: 120 } } });
        return;
      case 'subscription.added':
        if (frame.payload.denied?.length) setLive(false, `denied: ${frame.payload.denied[0].message}`);
        else setLive(true, 'live');
        return;
      case 'heartbeat.ping':
        send(ws, { type: 'heartbeat.pong', payload: { ts: frame.payload.ts } });
        return;
      case STATS_TYPE:
        if (frame.channel === CHANNEL) {
          addSample(frame.payload);
          queueRender();
        }
        return;
      case 'connection.error':
        setLive(false, frame.payload.message);
        return;
      default:
    }
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = undefined;
    const fatal = FATAL_CLOSES.get(event.code);
    if (fatal) return logout(`Disconnected: ${fatal}. Log in again.`);
    setLive(false, 'reconnecting…');
    state.reconnectTimer = setTimeout(connect, 2000);
  };
}

function addSample(stats) {
  if (!stats || typeof stats.at !== 'number') return;
  const samples = state.samples;
  if (samples.length > 0 && samples[samples.length - 1].at >= stats.at) {
    if (samples.some((s) => s.at === stats.at)) return; // a replayed sample we already have
    samples.push(stats);
    samples.sort((a, b) => a.at - b.at);
  } else samples.push(stats);
  if (samples.length > MAX_SAMPLES) samples.splice(0, samples.length - MAX_SAMPLES);
}

// ------------------------------------------------------------------ audit (when the server has it)

/**
 * Follows GET /v1/audit (oldest first, paged by `afterSeq`): starts a minute back, then reads what
 * follows every 5 s, a few pages at a time, keeping the newest 25 entries.
 */
async function pollAudit() {
  clearTimeout(state.auditTimer);
  if (!state.token || state.audit === null) return;
  try {
    for (let page = 0; page < 5; page++) {
      const query =
        state.auditAfterSeq === undefined
          ? `since=${Date.now() - 60_000}&limit=1000`
          : `afterSeq=${state.auditAfterSeq}&limit=1000`;
      const res = await fetch(`/v1/audit?${query}`, { headers: { Authorization: `Bearer ${state.token}` } });
      if (res.status === 404) {
        state.audit = null; // no audit API on this server: show the stats' recent activity instead
        return;
      }
      if (!res.ok) break;
      const body = await res.json();
      const entries = body.entries ?? [];
      state.auditAfterSeq = body.nextAfterSeq;
      state.audit = [...entries.slice(-25).reverse(), ...(state.audit ?? [])].slice(0, 25);
      queueRender();
      if (entries.length < 1000) break;
    }
  } catch {
    // keep the last entries; try again later
  }
  state.auditTimer = setTimeout(pollAudit, 5000);
}

// ------------------------------------------------------------------ rendering

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  window.requestAnimationFrame(() => {
    state.renderQueued = false;
    render();
  });
}

function row(tbody, cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    if (cell instanceof window.Node) td.appendChild(cell);
    else {
      td.textContent = cell ?? '';
      td.title = cell ?? '';
    }
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
}

function table(id, rows, empty) {
  const tbody = $(id).tBodies[0];
  tbody.replaceChildren();
  if (rows.length === 0) row(tbody, [empty]);
  for (const cells of rows) row(tbody, cells);
}

async function kick(connectionId, button) {
  button.disabled = true;
  const res = await fetch(`/v1/admin/connections/${encodeURIComponent(connectionId)}/kick`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${state.token}` },
  });
  button.textContent = res.ok ? 'kicked' : `failed (${res.status})`;
}

function render() {
  const last = state.samples[state.samples.length - 1];
  if (!last) return;
  const { node, organization: org } = last;
  document.body.dataset.samples = String(state.samples.length);
  setText('whoami', `organization ${org.id} · node ${last.nodeId}`);

  setText('kpi-node-connections', num(node.connections.total));
  setText('kpi-org-connections', `organization: ${num(org.connections.total)}`);
  setText('kpi-org-events', num(org.throughput.eventsPerSec));
  setText('kpi-node-events', `node: ${num(node.throughput.eventsPerSec)}`);
  setText('kpi-org-deliveries', num(org.throughput.deliveriesPerSec));
  setText('kpi-node-deliveries', `node: ${num(node.throughput.deliveriesPerSec)}`);
  setText('kpi-org-bytes', bytes(org.throughput.bytesPerSec));
  setText('kpi-node-bytes', `node: ${bytes(node.throughput.bytesPerSec)}`);
  setText('kpi-org-p99', ms(org.latency.publishToDeliver.p99));
  setText(
    'kpi-org-p50',
    `p50 ${ms(org.latency.publishToDeliver.p50)} · p95 ${ms(org.latency.publishToDeliver.p95)}`,
  );
  setText('kpi-org-rtt', org.latency.heartbeatRtt.count ? ms(org.latency.heartbeatRtt.p95) : '–');
  setText(
    'kpi-node-rtt',
    `node p95: ${node.latency.heartbeatRtt.count ? ms(node.latency.heartbeatRtt.p95) : '–'}`,
  );
  setText('kpi-org-ratelimited', num(org.rateLimitHits.perSec));
  setText('kpi-node-ratelimited', `node: ${num(node.rateLimited.perSec)} (${node.rateLimited.total} total)`);

  const pts = (pick) => state.samples.map((s) => [s.at, pick(s)]);
  lineChart(
    $('chart-throughput'),
    [
      { name: 'org events/s', color: '#4fb3ff', points: pts((s) => s.organization.throughput.eventsPerSec) },
      {
        name: 'org deliveries/s',
        color: '#3ecf8e',
        points: pts((s) => s.organization.throughput.deliveriesPerSec),
      },
      { name: 'node events/s', color: '#f5a623', points: pts((s) => s.node.throughput.eventsPerSec) },
    ],
    { format: num },
  );
  const deliver = (q) => pts((s) => s.organization.latency.publishToDeliver[q]);
  lineChart(
    $('chart-latency'),
    [
      { name: 'p50', color: '#3ecf8e', points: deliver('p50') },
      { name: 'p95', color: '#f5a623', points: deliver('p95') },
      { name: 'p99', color: '#ff6b6b', points: deliver('p99') },
    ],
    { format: (v) => (Math.round(v * 100) / 100).toString() },
  );
  lineChart(
    $('chart-rtt'),
    [
      { name: 'RTT p50', color: '#3ecf8e', points: pts((s) => s.organization.latency.heartbeatRtt.p50) },
      { name: 'RTT p95', color: '#f5a623', points: pts((s) => s.organization.latency.heartbeatRtt.p95) },
      { name: 'ack p95', color: '#c38fff', points: pts((s) => s.organization.latency.publishToAck.p95) },
    ],
    { format: (v) => (Math.round(v * 100) / 100).toString() },
  );

  const entries = (record) =>
    Object.entries(record)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([label, value]) => ({ label, value }));
  barList($('by-client'), entries(node.connections.byClientType), 'no connections');
  barList($('by-status'), entries(node.connections.byStatus), 'no connections');
  barList(
    $('busiest'),
    org.busiestChannels.map((c) => ({ label: c.channel, value: c.events, text: num(c.events) })),
    'no events published lately',
  );

  table(
    'slowest',
    org.slowestConnections.map((c) => {
      const button = document.createElement('button');
      button.className = 'small';
      button.type = 'button';
      button.textContent = 'kick';
      button.addEventListener('click', () => void kick(c.connectionId, button));
      return [c.connectionId, c.userId, c.clientType, ms(c.rttMs), button];
    }),
    'no heartbeat answered yet',
  );
  table(
    'ratelimits',
    org.rateLimitHits.recent.map((e) => [time(e.at), e.actor, e.action, e.detail]),
    'no rate-limit hits',
  );
  if (state.audit) {
    setText('activity-title', 'Recent audit entries');
    table(
      'activity',
      state.audit.map((e) => [
        time(Date.parse(e.createdAt)),
        e.action,
        e.actor,
        e.target,
        e.detail ? JSON.stringify(e.detail) : '',
      ]),
      'no audit entries in the last hour',
    );
  } else {
    setText('activity-title', 'Recent activity (admin actions, denials, rate limits, slow consumers)');
    table(
      'activity',
      org.recentActivity.map((e) => [time(e.at), `${e.kind}: ${e.action}`, e.actor, e.target, e.detail]),
      'nothing yet',
    );
  }
  setText(
    'footer',
    `${state.samples.length} samples · latency window ${Math.round(org.windowMs / 1000)} s · updated ${time(last.at)}`,
  );
}

// ------------------------------------------------------------------ start

const webhooks = webhooksPanel(() => state.token);

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  $('login-error').textContent = '';
  login(token).catch((err) => showLogin(err.message));
});
$('logout').addEventListener('click', () => logout());

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) login(saved).catch((err) => logout(err.message));
else showLogin();
