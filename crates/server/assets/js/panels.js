// The panels: each owns its section of the page, draws what main.js hands
// it, and shows an API error as a message in place of its chart (never a
// blank chart).

import { TimeChart, XYChart, axisSize, donut } from './charts.js';
import * as f from './fmt.js';

/** A section of the page: `#p-NAME` in index.html. */
export class Panel {
  constructor(name) {
    this.el = document.getElementById(`p-${name}`);
    this.body = this.el.querySelector('.body');
    this.msg = this.el.querySelector('.msg');
    this.note = this.el.querySelector('.note');
    // A panel out of sight is drawn when it scrolls into view, not on
    // every live update (the page's CPU is the user's).
    this.visible = true;
    this.deferred = null;
    new IntersectionObserver((entries) => {
      this.visible = entries[entries.length - 1].isIntersecting;
      if (this.visible && this.deferred) {
        const f = this.deferred;
        this.deferred = null;
        f();
      }
    }, { rootMargin: '200px' }).observe(this.el);
  }

  /** Runs `draw` now if the panel is in view, else when it comes into view. */
  when(draw) {
    if (this.visible) {
      this.deferred = null;
      draw();
    } else {
      this.deferred = draw;
    }
  }

  error(e) {
    this.msg.textContent = e ? `Cannot show this panel: ${e.message || e}` : '';
    this.msg.hidden = !e;
    this.el.classList.toggle('failed', Boolean(e));
  }

  setNote(text) {
    if (this.note) this.note.textContent = text || '';
  }
}

/** Lines of an API series (per step) as rates per second. */
export function rateLines(series, dim, perSecond = true) {
  const div = perSecond ? series.step_ns / 1e9 : 1;
  return series.lines.map((l) => ({
    key: l.key,
    colour: f.colour(dim, l.key),
    values: l.values.map((v) => (v == null ? null : v / div)),
  }));
}

/** A panel with one time chart and a row of clickable keys. */
export class SeriesPanel extends Panel {
  constructor(name, chartOpts, { dim, onPick } = {}) {
    super(name);
    this.chart = new TimeChart(this.body, chartOpts);
    this.dim = dim;
    this.onPick = onPick;
    this.keysEl = this.el.querySelector('.keys');
  }

  draw(times, lines, range, selected) {
    this.error(null);
    const shown = selected ? lines.filter((l) => l.key === selected) : lines;
    this.chart.setData(times, shown.length ? shown : lines, range);
    if (this.keysEl && this.dim) this.drawKeys(lines, selected);
  }

  drawKeys(lines, selected) {
    const chips = lines.map((l) => {
      const b = f.el('button', {
        type: 'button',
        class: `chip${selected === l.key ? ' sel' : ''}`,
        'data-key': l.key,
        title: selected === l.key ? `show every ${this.dim}` : `filter the page by ${this.dim} ${l.key}`,
        onclick: () => this.onPick && this.onPick(this.dim, l.key),
      }, f.el('span', { class: 'sw' }), l.key);
      b.querySelector('.sw').style.background = l.colour;
      return b;
    });
    this.keysEl.replaceChildren(...chips);
  }
}

/** Hits, misses, unknown and pending per window, with the accuracy line. */
export function accuracyChart(host, onSelect) {
  return new TimeChart(host, {
    kind: 'bars',
    stacked: true,
    fmt: (v) => f.si(v, 'pkt'),
    onSelect,
    axes: [{
      scale: '%',
      def: { range: [0, 1] },
      axis: { scale: '%', side: 1, stroke: '#555', grid: { show: false }, size: axisSize, values: (u, sp) => sp.map((v) => `${Math.round(v * 100)} %`) },
    }],
  });
}

export function windowLines(windows) {
  const pick = (k) => windows.map((w) => w[k]);
  return [
    { key: 'hits', colour: '#009E73', values: pick('hits') },
    { key: 'misses', colour: '#D55E00', values: pick('misses') },
    { key: 'unknown', colour: '#7f7f7f', values: pick('unknown') },
    { key: 'pending', colour: '#c7c7c7', values: pick('pending') },
    { key: 'accuracy', colour: '#000000', scale: '%', width: 2, fmt: f.pct, values: windows.map((w) => w.accuracy) },
  ];
}

/** Sums of a window list: the accuracy over the visible range. */
export function windowTotals(windows) {
  const t = { hits: 0, misses: 0, unknown: 0, pending: 0, unlabelled: 0 };
  for (const w of windows) for (const k of Object.keys(t)) t[k] += w[k] || 0;
  const n = t.hits + t.misses + t.unknown + t.pending;
  t.accuracy = n ? t.hits / n : null;
  return t;
}

/** The Hurst estimates with their 95 % bands. */
export function hurstChart(host, onSelect) {
  return new TimeChart(host, {
    kind: 'line',
    fmt: (v) => v.toFixed(2),
    yRange: (u, min, max) => [Math.min(0.3, min ?? 0.3), Math.max(1.1, max ?? 1.1)],
    onSelect,
    bandPairs: () => [[2, 1, '#0072B2'], [5, 4, '#D55E00']],
  });
}

export function hurstLines(points) {
  const v = (k, i) => points.map((p) => (p[k] == null ? null : (i == null ? p[k] : p[k][i])));
  return [
    { key: 'Local Whittle', colour: '#0072B2', width: 2, values: v('local_whittle') },
    { key: 'LW 95 % low', colour: '#0072B2', band: true, values: v('local_whittle_ci', 0) },
    { key: 'LW 95 % high', colour: '#0072B2', band: true, values: v('local_whittle_ci', 1) },
    { key: 'wavelet', colour: '#D55E00', width: 2, values: v('wavelet') },
    { key: 'wav. 95 % low', colour: '#D55E00', band: true, values: v('wavelet_ci', 0) },
    { key: 'wav. 95 % high', colour: '#D55E00', band: true, values: v('wavelet_ci', 1) },
    { key: 'H = 0.5', colour: '#999999', dash: [4, 4], width: 1, values: points.map(() => 0.5) },
  ];
}

/** One line saying what the newest estimate means. */
export function hurstReading(p) {
  if (!p) return 'No estimate yet: the first comes once a full window of 0.1 s bins has been seen.';
  const h = p.local_whittle ?? p.wavelet;
  const ci = p.local_whittle != null ? p.local_whittle_ci : p.wavelet_ci;
  if (h == null) return `No estimate for the newest window: ${(p.errors || []).join('; ') || 'the estimators gave nothing'}.`;
  const span = ci ? ` (95 %: ${ci[0].toFixed(2)}–${ci[1].toFixed(2)})` : '';
  const head = `H ≈ ${h.toFixed(2)}${span}, window ending ${f.utc(p.end_ns)}: `;
  if (ci && ci[0] <= 0.5 && ci[1] >= 0.5) return `${head}not distinguishable from 0.5: short memory, bursts average out quickly as in Poisson-like traffic.`;
  if (h >= 1) return `${head}at or above 1: the window looks non-stationary (a trend or a level shift), not self-similar.`;
  if (h > 0.5) return `${head}long-range dependent: bursts persist across time scales, so aggregating traffic smooths it much less than Poisson models predict (size buffers and links for it).`;
  return `${head}below 0.5: anti-persistent, the rate alternates around its mean more than random traffic would.`;
}

export function hvsmChart(host) {
  return new XYChart(host, {
    xLabel: 'M (frequencies)',
    yLabel: 'H',
    yRange: (u, min, max) => [Math.min(0.3, min), Math.max(1.1, max)],
    bands: [{ series: [3, 2], fill: f.alpha('#0072B2', 0.18) }],
  });
}

/** Shares of one dimension from totals. */
export function shares(host, list, dim, { selected, onPick, metric }) {
  const items = (list || [])
    .map((x) => ({ key: x.key, value: x[metric], colour: f.colour(dim, x.key) }))
    .filter((x) => x.value > 0)
    .sort((a, b) => b.value - a.value);
  donut(host, items, {
    fmt: metric === 'bytes' ? f.bytes : (v) => f.si(v, 'pkt'),
    selected,
    onPick: (k) => onPick(dim, k),
  });
}

/** The numbers at the top: exact counts over the visible range. */
export function tiles(host, totals, win) {
  const t = (name, label, value, text, title) => f.el('div', { class: 'tile', 'data-tile': name, title },
    f.el('span', { class: 'label', text: label }),
    f.el('span', { class: 'value', 'data-raw': value == null ? '' : String(value), text }));
  const ended = (totals.flows_ended || []).reduce((a, b) => a + b.flows, 0);
  host.replaceChildren(
    t('packets', 'packets', totals.packets, f.count(totals.packets), 'wire packets in the range'),
    t('bytes', 'bytes', totals.bytes, f.bytes(totals.bytes), `${f.count(totals.bytes)} bytes on the wire`),
    t('flows', 'flows started', totals.flows_started, f.count(totals.flows_started), `${f.count(ended)} ended`),
    t('accuracy', 'accuracy', win.accuracy, f.pct(win.accuracy),
      `per packet, over the range's evaluation windows: ${f.count(win.hits)} hits, ${f.count(win.misses)} misses, ${f.count(win.unknown)} unknown, ${f.count(win.pending)} pending, ${f.count(win.unlabelled)} unlabelled (not scored)`),
  );
}

/** The health panel, from /api/v1/summary and /api/v1/health. */
export function health(host, s, h) {
  const row = (k, v, name, bad) => f.el('tr', { class: bad ? 'bad' : null },
    f.el('th', { text: k }), f.el('td', { 'data-health': name, text: v }));
  const d = s.drops || {};
  host.replaceChildren(f.el('table', { class: 'kv' }, f.el('tbody', {},
    row('status', h.status + (h.reasons && h.reasons.length ? ` — ${h.reasons.join('; ')}` : ''), 'status', h.status !== 'ok' && !s.source_done),
    row('source', s.source + (s.source_done ? ' (ended)' : ''), 'source'),
    row('packets in', `${f.pps(s.rates.packets_per_s)} · ${f.bits(s.rates.bytes_per_s * 8)}`, 'rate'),
    row('drops', `kernel ${f.count(d.kernel)} · queue ${f.count(d.queue)} · store ${f.count(d.store)}${d.flows_to ? ` · flows to Kafka ${f.count(d.flows_to)}` : ''}`, 'drops', (d.kernel || d.queue || d.store || d.flows_to) > 0),
    row('queue', `${f.count(s.queue.len)} of ${f.count(s.queue.capacity)} (${f.pct(s.queue.fill_ratio)})`, 'queue', s.queue.fill_ratio > 0.5),
    row('store', s.store.failing ? `FAILING: ${s.store.last_error}` : `commit lag ${f.num(s.store.commit_lag_s, 2)} s · ${f.count(s.store.pending)} pending · ${f.bytes(s.store.size_bytes)}`, 'store', s.store.failing),
    ...(s.kafka ? [row('kafka', `${f.count(s.kafka.partitions)} partitions · lag ${s.kafka.lag_messages == null ? 'not known yet' : `${f.count(s.kafka.lag_messages)} messages`}`, 'kafka', s.kafka.lag_messages > 10000)] : []),
    row('uptime', f.dur(h.uptime_s * 1e9), 'uptime'),
    row('last packet', s.last_packet_ns ? f.utc(s.last_packet_ns, true) : 'none yet', 'last'),
  )));
}
