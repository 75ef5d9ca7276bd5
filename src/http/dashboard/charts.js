/* global document */
// Tiny SVG charts for the dashboard: no library, no inline style (the page runs under a strict CSP;
// colors are SVG presentation attributes, bar widths are set through the CSSOM).

const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * p) return m * p;
  return 10 * p;
}

/**
 * Draws time series into an <svg> with a viewBox: `series` is [{ name, color, points: [[t, v], ...] }].
 * The x axis spans the points' time range; the y axis starts at 0.
 */
export function lineChart(svg, series, { format = (v) => String(v) } = {}) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const [, , width, height] = svg.getAttribute('viewBox').split(' ').map(Number);
  const pad = { left: 52, right: 12, top: 22, bottom: 20 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    el('text', { x: pad.left, y: pad.top + h / 2 }, svg).textContent = 'waiting for data…';
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]), t0 + 1000);
  const yMax = niceMax(Math.max(...all.map((p) => p[1])));
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => pad.top + h - (v / yMax) * h;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    el('line', { class: 'grid-line', x1: pad.left, x2: pad.left + w, y1: y(v), y2: y(v) }, svg);
    el('text', { x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, svg).textContent = format(v);
  }
  const seconds = Math.round((t1 - t0) / 1000);
  el('text', { x: pad.left, y: height - 4 }, svg).textContent = `−${seconds}s`;
  el('text', { x: pad.left + w, y: height - 4, 'text-anchor': 'end' }, svg).textContent = 'now';
  let legendX = pad.left;
  for (const s of series) {
    if (s.points.length > 0) {
      const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
      el('path', { class: 'series', d: d.join(' '), stroke: s.color }, svg);
    }
    el('rect', { x: legendX, y: 6, width: 10, height: 10, fill: s.color }, svg);
    const label = el('text', { x: legendX + 14, y: 15 }, svg);
    label.textContent = s.name;
    legendX += 24 + s.name.length * 6.5;
  }
}

/** Horizontal bars: items are [{ label, value, text? }], scaled to the largest value. */
export function barList(container, items, emptyText = 'nothing yet') {
  container.replaceChildren();
  if (items.length === 0) {
    const p = document.createElement('div');
    p.className = 'empty';
    p.textContent = emptyText;
    container.appendChild(p);
    return;
  }
  const max = Math.max(...items.map((i) => i.value), 1);
  for (const item of items) {
    const row = document.createElement('div');
    row.className = 'row';
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = item.label;
    label.title = item.label;
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${Math.max(1, (item.value / max) * 100).toFixed(1)}%`;
    track.appendChild(fill);
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = item.text ?? String(item.value);
    row.append(label, track, value);
    container.appendChild(row);
  }
}
