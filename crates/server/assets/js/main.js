// The dashboard: loads the visible range from the API, then follows the
// live stream (bins, windows, Hurst points, flows) without reloading, and
// keeps its state (range, filters, sort) in the URL.
//
// Times on the page are capture times: a replayed capture shows its own
// day, and "last 5 min" means the last five minutes of data.

import './errors.js';
import * as api from './api.js';
import * as f from './fmt.js';
import * as P from './panels.js';
import * as st from './state.js';
import { FlowTable, load as loadFlows } from './flows.js';
import { axisSize } from './charts.js';

let S = st.read();
let info = null; // the service's settings (classes, bin, window, Hurst)
let summary = null;
let newest = 0; // newest capture time known, ns
let range = [0, 1]; // the visible range, ns
let data = null; // what the charts show, kept for live updates
let loadSeq = 0;
let disconnectedAt = null;
let pcapAvailable = false;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- panels --

const zoom = (a, b) => {
  S = { ...S, range: 'custom', live: false, from: a, to: b };
  st.write(S, true);
  reload();
};

const panels = {
  cls: new P.SeriesPanel('class', { kind: 'area', stacked: true, fmt: (v) => f.si(v, 'pkt/s'), onSelect: zoom }, { dim: 'class', onPick: pick }),
  proto: new P.SeriesPanel('protocol', { kind: 'line', fmt: (v) => f.si(v, 'B/s'), onSelect: zoom }, { dim: 'protocol', onPick: pick }),
  dir: new P.SeriesPanel('direction', { kind: 'area', stacked: true, fmt: (v) => f.si(v * 8, 'bit/s'), onSelect: zoom }, { dim: 'direction', onPick: pick }),
  rate: new P.SeriesPanel('rate', {
    kind: 'line',
    fmt: f.bits,
    onSelect: zoom,
    axes: [{ scale: 'pps', def: {}, axis: { scale: 'pps', side: 1, stroke: '#555', grid: { show: false }, size: axisSize, values: (u, sp) => sp.map((v) => f.si(v, 'pkt/s')) } }],
  }),
  flowrate: new P.SeriesPanel('flowrate', {
    kind: 'line',
    fmt: (v) => f.si(v, 'flows/s'),
    onSelect: zoom,
    axes: [{ scale: 'open', def: {}, axis: { scale: 'open', side: 1, stroke: '#555', grid: { show: false }, size: axisSize, values: (u, sp) => sp.map((v) => f.si(v, '')) } }],
  }),
  shares: new P.Panel('shares'),
  accuracy: new P.Panel('accuracy'),
  hurst: new P.Panel('hurst'),
  hvsm: new P.Panel('hvsm'),
  flows: new P.Panel('flows'),
  health: new P.Panel('health'),
};
const accuracyChart = P.accuracyChart(panels.accuracy.body, zoom);
const hurstChart = P.hurstChart(panels.hurst.body.querySelector('.chart'), zoom);
const hvsmChart = P.hvsmChart(panels.hvsm.body);
const flowTable = new FlowTable(panels.flows, {
  onSort: (s) => { S = { ...S, sort: s }; st.write(S, true); refreshFlows(); },
  onPick: pick,
  // The record's ISO times are exact to the ns (its ns numbers are not, in
  // JavaScript); with `flow`, the server takes `to` inclusive.
  pcap: (r) => downloadPcap({ flow: `${r.protocol},${r.src},${r.src_port},${r.dst},${r.dst_port}${r.vlan ? `,${r.vlan}` : ''}`, from: r.start, to: r.end }),
  canPcap: () => pcapAvailable,
});

// ------------------------------------------------------------ the range --

function spanNs() {
  return S.range === 'custom' ? S.to - S.from : f.parseSpan(S.range);
}

function currentRange() {
  if (S.range === 'custom') return [S.from, S.to];
  const end = Math.ceil(newest / info.bin_ns) * info.bin_ns;
  return [end - spanNs(), end];
}

/** The smallest multiple of `every` giving at most `n` steps over the span. */
function stepFor(span, every, n = 600) {
  const k = Math.max(1, Math.ceil(span / n / every));
  return `${Math.round((k * every) / 1e6)}ms`;
}

// -------------------------------------------------------------- loading --

// Stream events that arrive while a view loads wait here, and are applied
// to the new view once it has loaded (those its answers already hold are
// skipped): nothing between the query and the stream is lost.
let loading = false;
const buffered = [];

async function reload() {
  const my = ++loadSeq;
  loading = true;
  range = currentRange();
  drawControls();
  const t = { from: f.apiTime(range[0]), to: f.apiTime(range[1]) };
  const span = range[1] - range[0];
  const fineStep = span <= 15 * 60e9 ? `${info.hurst.fine_ns / 1e6}ms` : null;
  const q = (params) => api.get('/api/v1/series', { ...t, ...params });
  // Class, protocol, app and direction filter the store's answers (the
  // bins keep them together); the other panels show all traffic.
  const cf = crossFilter();
  const jobs = {
    cls: q({ metric: 'packets', by: 'class', ...cf }),
    proto: q({ metric: 'bytes', by: 'protocol', ...cf }),
    dir: q({ metric: 'bytes', by: 'direction', ...cf }),
    pk: q({ metric: 'packets', ...cf }),
    fine: q({ metric: 'fine_bytes', step: fineStep }),
    fStart: q({ metric: 'flows_started' }),
    fEnded: q({ metric: 'flows_ended' }),
    fActive: q({ metric: 'flows_active' }),
    totals: api.get('/api/v1/totals', { ...t, ...cf }),
    // Unfiltered, for what is not kept per key (flows, the 0.1 s series).
    totalsAll: Object.keys(cf).length ? api.get('/api/v1/totals', t) : null,
    windows: api.get('/api/v1/windows', { ...t, step: stepFor(span, info.window_ns) }),
    hurst: api.get('/api/v1/hurst', { ...t, series: 'total', step: stepFor(span, info.hurst.step_ns) }),
    flows: loadFlows(range, S.filters, S.sort),
  };
  const names = Object.keys(jobs);
  const settled = await Promise.allSettled(Object.values(jobs));
  if (my !== loadSeq) return; // a newer view superseded this one
  const got = {};
  const failed = {};
  names.forEach((n, i) => {
    if (settled[i].status === 'fulfilled') got[n] = settled[i].value;
    else failed[n] = settled[i].reason;
  });
  data = got;
  data.failed = failed;
  loading = false;
  for (const [kind, ev] of buffered.splice(0)) handlers[kind](ev);
  drawAll();
  refreshHvsm();
  if (!document.body.dataset.rendered) {
    // First full render, for the README's figure and the browser test.
    const ms = performance.now();
    performance.mark('trafficscope-first-render');
    document.body.dataset.rendered = ms.toFixed(0);
  }
  document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
}

async function refreshFlows() {
  try {
    const page = await loadFlows(range, S.filters, S.sort);
    if (data) data.flows = page;
    panels.flows.error(null);
    flowTable.draw(page, S.sort);
  } catch (e) {
    panels.flows.error(e);
  }
}

async function refreshTotals() {
  try {
    const r = { from: f.apiTime(range[0]), to: f.apiTime(range[1]) };
    const cf = crossFilter();
    const [t, all] = await Promise.all([
      api.get('/api/v1/totals', { ...r, ...cf }),
      Object.keys(cf).length ? api.get('/api/v1/totals', r) : null,
    ]);
    if (!data) return;
    data.totals = t;
    data.totalsAll = all;
    delete data.failed.totals;
    drawTotals();
  } catch (e) {
    panels.shares.error(e);
  }
}

async function refreshHvsm() {
  try {
    const end = S.range === 'custom' ? f.apiTime(range[1]) : null;
    const c = await api.get('/api/v1/hurst/hvsm', { series: 'total', end });
    panels.hvsm.error(null);
    if (!c.points.length) {
      panels.hvsm.setNote(c.note || 'no curve yet');
      hvsmChart.setData([], [{ label: 'H', colour: '#0072B2', values: [] }, { label: 'low', band: true, values: [] }, { label: 'high', band: true, values: [] }]);
      return;
    }
    panels.hvsm.setNote(`window of ${f.count(c.bins_used)} bins of 0.1 s ending ${f.utc(c.end_ns)}; band: 95 % interval 1.96 / (2√M). A flat stretch means H is well defined there.`);
    hvsmChart.setData(c.points.map((p) => p.m), [
      { label: 'Local Whittle H', colour: '#0072B2', values: c.points.map((p) => p.h) },
      { label: '95 % low', band: true, values: c.points.map((p) => p.h - p.ci_half) },
      { label: '95 % high', band: true, values: c.points.map((p) => p.h + p.ci_half) },
    ]);
  } catch (e) {
    panels.hvsm.error(e);
  }
}

// ------------------------------------------------------------- drawing --

function drawAll() {
  drawParts(new Set(['series', 'windows', 'hurst', 'totals', 'flows']));
}

/** Draws the named parts only: a live bin redraws the time series, not the
 *  table or the shares (the page's CPU is the user's). */
function drawParts(parts) {
  if (!data) return;
  // For tests and the curious: the newest time drawn, and how long after
  // it (wall clock) the drawing happened; meaningful when live at speed 1.
  document.body.dataset.drawnTo = String(range[1]);
  document.body.dataset.drawLagMs = String(Date.now() - range[1] / 1e6);
  const fl = S.filters;
  const show = (panel, key, fn) => {
    if (data.failed[key]) panel.error(data.failed[key]);
    else fn(data[key]);
  };
  if (parts.has('series')) {
    show(panels.cls, 'cls', (s) => panels.cls.when(() => panels.cls.draw(s.times_ns, P.rateLines(s, 'class'), range, fl.class)));
    show(panels.proto, 'proto', (s) => panels.proto.when(() => panels.proto.draw(s.times_ns, P.rateLines(s, 'protocol'), range, fl.protocol)));
    show(panels.dir, 'dir', (s) => panels.dir.when(() => panels.dir.draw(s.times_ns, P.rateLines(s, 'direction'), range)));
    if (data.failed.fine || data.failed.pk) panels.rate.error(data.failed.fine || data.failed.pk);
    else panels.rate.when(drawRate);
    if (data.failed.fStart || data.failed.fActive || data.failed.fEnded) panels.flowrate.error(data.failed.fStart || data.failed.fActive || data.failed.fEnded);
    else panels.flowrate.when(drawFlowRate);
  }
  if (parts.has('windows')) show(panels.accuracy, 'windows', (w) => panels.accuracy.when(() => drawWindows(w)));
  if (parts.has('hurst')) show(panels.hurst, 'hurst', (h) => panels.hurst.when(() => drawHurst(h)));
  if (parts.has('flows')) show(panels.flows, 'flows', (p) => { panels.flows.error(null); flowTable.draw(p, S.sort); });
  if (parts.has('totals')) {
    if (data.failed.totals) panels.shares.error(data.failed.totals);
    else drawTotals();
  }
}

/** Bits per second at the 0.1 s bin (total, TCP, UDP) and packets per second. */
function drawRate() {
  const fine = data.fine;
  const pk = data.pk;
  const perS = 8 / (info.hurst.fine_ns / 1e9);
  // One x axis for both: the packet series (1 s or coarser) is placed on
  // the fine series' times, with gaps between its own points.
  const times = fine.times_ns;
  const pkAt = new Map(pk.times_ns.map((t, i) => [t, pk.lines[0] ? pk.lines[0].values[i] : null]));
  const pkStep = pk.step_ns / 1e9;
  const lines = fine.lines.map((l) => ({
    key: l.key === 'total' ? 'all' : l.key.toUpperCase(),
    colour: f.colour('series', l.key),
    values: l.values.map((v) => (v == null ? null : v * perS)),
  }));
  lines.push({
    key: 'packets/s',
    colour: '#999933',
    scale: 'pps',
    dash: [3, 3],
    spanGaps: true,
    fmt: (v) => f.si(v, 'pkt/s'),
    values: times.map((t) => { const v = pkAt.get(t); return v == null ? null : v / pkStep; }),
  });
  // More points than pixels: each drawn point is the peak of its group,
  // so bursts stay visible (the exact figures are in the line above).
  const k = Math.ceil(times.length / 1000);
  if (k > 1) {
    const keep = [];
    for (let i = 0; i < times.length; i += k) keep.push(i);
    const peak = (vals, i) => {
      let m = null;
      for (let j = i; j < Math.min(i + k, vals.length); j++) if (vals[j] != null && (m == null || vals[j] > m)) m = vals[j];
      return m;
    };
    for (const l of lines) l.values = keep.map((i) => peak(l.values, i));
    panels.rate.draw(keep.map((i) => times[i]), lines, range);
  } else {
    panels.rate.draw(times, lines, range);
  }
  const each = fine.step_ns === info.hurst.fine_ns ? 'each 0.1 s bin' : `the mean 0.1 s bin of each ${f.dur(fine.step_ns)} step`;
  panels.rate.setNote(k > 1 ? `Lines: the largest of every ${k} points (${each}).` : `Lines: ${each}.`);
}

const REASON = { fin: '#009E73', rst: '#D55E00', idle: '#E69F00', active: '#CC79A7', evicted: '#882255', 'end-of-input': '#999999' };

function drawFlowRate() {
  const st = data.fStart;
  const div = st.step_ns / 1e9;
  const per = (s) => (s.lines[0] ? s.lines[0].values.map((v) => (v == null ? null : v / div)) : []);
  // Ended per second by end reason (the store's lines after the total).
  const ended = data.fEnded.lines.slice(1).map((l) => ({
    key: `ended ${l.key}/s`,
    colour: REASON[l.key] || f.colour('reason', l.key),
    values: l.values.map((v) => (v == null ? null : v / div)),
  }));
  panels.flowrate.draw(st.times_ns, [
    { key: 'started/s', colour: '#0072B2', width: 2, values: per(data.fStart) },
    ...ended,
    { key: 'open', colour: '#333333', scale: 'open', width: 2, fmt: (v) => f.si(v, 'flows'), values: data.fActive.lines[0] ? data.fActive.lines[0].values : [] },
  ], range);
}

function drawWindows(w) {
  panels.accuracy.error(null);
  const list = w.windows;
  accuracyChart.setData(list.map((x) => x.start_ns), P.windowLines(list), range);
  const t = P.windowTotals(list);
  const last = [...list].reverse().find((x) => x.accuracy != null);
  panels.accuracy.setNote(last
    ? `Newest window ${f.utc(last.start_ns)}: accuracy ${f.pct(last.accuracy)} (${f.count(last.hits)} of ${f.count(last.hits + last.misses + last.unknown + last.pending)} packets). Range: ${f.pct(t.accuracy)}. Bars: packets per ${f.dur(w.step_ns)}.`
    : 'No scored packet in this range: the traffic has no ground truth (give run --labels, --label or --rule).');
  const lastEl = panels.accuracy.el.querySelector('.last');
  lastEl.dataset.raw = last ? String(last.accuracy) : '';
  lastEl.dataset.start = last ? String(last.start_ns) : '';
  drawTiles();
}

function drawHurst(h) {
  panels.hurst.error(null);
  const pts = h.points;
  hurstChart.setData(pts.map((p) => p.end_ns), P.hurstLines(pts), range);
  const reading = panels.hurst.el.querySelector('.reading');
  reading.textContent = P.hurstReading(pts[pts.length - 1]);
}

function drawTotals() {
  const t = data.totals;
  panels.shares.error(null);
  const by = t.by || {};
  const host = (k) => panels.shares.el.querySelector(`.share-${k}`);
  P.shares(host('protocol'), by.protocol, 'protocol', { metric: 'bytes', selected: S.filters.protocol, onPick: pick });
  P.shares(host('app'), by.app, 'app', { metric: 'bytes', selected: S.filters.app, onPick: pick });
  P.shares(host('class'), by.class, 'class', { metric: 'packets', selected: S.filters.class, onPick: pick });
  drawTiles();
  // Burstiness over the visible range, pooled exactly by the server (of
  // all traffic: the 0.1 s series is not kept per key).
  const all = data.totalsAll || t;
  const fine = all.fine && all.fine.total;
  const perS = 8 / (all.fine_ns / 1e9);
  const stats = panels.rate.el.querySelector('.stats');
  stats.replaceChildren(...(fine ? [
    f.el('span', { 'data-stat': 'mean', 'data-raw': String(fine.mean), text: `mean ${f.bits(fine.mean * perS)}` }),
    f.el('span', { 'data-stat': 'cv', 'data-raw': String(fine.cv ?? ''), text: `σ/μ ${f.num(fine.cv, 2)}` }),
    f.el('span', { 'data-stat': 'peak', 'data-raw': String(fine.peak), text: `peak ${f.bits(fine.peak * perS)}` }),
    f.el('span', { class: 'dim', text: `over ${f.count(fine.fine_bins)} bins of 0.1 s` }),
  ] : [f.el('span', { class: 'dim', text: 'no traffic in this range' })]));
  const ended = (all.flows_ended || []).map((e) => `${e.reason} ${f.count(e.flows)}`).join(' · ');
  panels.flowrate.setNote(`Ended by reason: ${ended || 'none'}.`);
}

function drawTiles() {
  if (!data || !data.totals) return;
  const win = data.windows ? P.windowTotals(data.windows.windows) : {};
  P.tiles($('tiles'), data.totals, win);
}

function drawControls() {
  for (const b of document.querySelectorAll('[data-range]')) {
    b.classList.toggle('sel', b.dataset.range === S.range);
  }
  const live = $('live');
  live.textContent = S.live && S.range !== 'custom' ? '● live' : '❚❚ paused';
  live.classList.toggle('on', S.live && S.range !== 'custom');
  $('shown').textContent = `${f.utc(range[0])} → ${f.utc(range[1])}`;
  const chips = Object.entries(S.filters).map(([k, v]) => f.el('button', {
    type: 'button', class: 'chip sel', title: 'remove this filter',
    onclick: () => pick(k, v),
  }, `${k}: ${v} ✕`));
  $('filters').replaceChildren(...chips);
  $('filter-note').hidden = chips.length === 0;
  // Each panel says whether the filters apply to it.
  const list = (keys) => keys.filter((k) => S.filters[k]).map((k) => `${k} ${S.filters[k]}`).join(', ');
  for (const el of document.querySelectorAll('.panel[data-scope]')) {
    const scope = el.dataset.scope;
    let text = '';
    if (chips.length) {
      if (scope === 'all') {
        text = 'all traffic: not kept per class, protocol or application';
      } else {
        const on = list(scope === 'cross' ? CROSS : ['class', 'app', 'addr']);
        text = on ? `filtered: ${on}` : 'all traffic';
      }
    }
    const badge = el.querySelector('.scope');
    badge.textContent = text;
    badge.classList.toggle('on', Boolean(text));
  }
  $('from').value = new Date(range[0] / 1e6).toISOString().slice(0, 19) + 'Z';
  $('to').value = new Date(range[1] / 1e6).toISOString().slice(0, 19) + 'Z';
}

// Drawing is batched: a fast replay may close hundreds of bins a second.
const pending = new Set();
function scheduleDraw(part) {
  const first = pending.size === 0;
  pending.add(part);
  if (!first) return;
  setTimeout(() => {
    requestAnimationFrame(() => {
      const parts = new Set(pending);
      pending.clear();
      drawParts(parts);
      drawControls();
    });
  }, 200);
}

let totalsTimer = null;
let flowsTimer = null;
function later(kind, fn, ms) {
  if (kind === 'totals') { if (!totalsTimer) totalsTimer = setTimeout(() => { totalsTimer = null; fn(); }, ms); }
  if (kind === 'flows') { if (!flowsTimer) flowsTimer = setTimeout(() => { flowsTimer = null; fn(); }, ms); }
}

// ------------------------------------------------------------- filters --

/** The filters the store applies to series and totals (not `addr`). */
const CROSS = ['class', 'protocol', 'app', 'direction'];
function crossFilter() {
  const out = {};
  for (const k of CROSS) if (S.filters[k]) out[k] = S.filters[k];
  return out;
}

/** Packets or bytes of a live bin by one part of the cross key (or the
 *  total), counting only packets matching the filters. */
function crossCounts(bin, part, what) {
  const want = CROSS.map((k) => S.filters[k]);
  const out = {};
  for (const c of bin.counts) {
    if (c.dim !== 'cross') continue;
    const parts = c.key.split('|');
    if (!want.every((w, i) => !w || parts[i] === w)) continue;
    const key = part == null ? 'total' : parts[CROSS.indexOf(part)];
    if (key === '-') continue;
    out[key] = (out[key] || 0) + c[what];
  }
  return out;
}

function pick(dim, key) {
  const filters = { ...S.filters };
  if (filters[dim] === key) delete filters[dim];
  else filters[dim] = key;
  S = { ...S, filters };
  st.write(S, true);
  // Every filtered panel is read again from the store.
  reload();
}

// ---------------------------------------------------------------- live --

/**
 * Adds `kv` (key → value) of the bin starting at `t` into series `s`,
 * unless the store's answer already held it (`covered`: bins of
 * `covered_ns` per step, stored in order). `mean`: the step holds the mean
 * of its bins rather than their sum.
 */
function addTo(s, t, kv, mean = false) {
  if (!s) return;
  const step = s.step_ns;
  const slot = Math.floor(t / step) * step;
  let i = s.times_ns.length - 1;
  while (i >= 0 && s.times_ns[i] > slot) i--;
  if (i < 0 || s.times_ns[i] !== slot) {
    i += 1;
    s.times_ns.splice(i, 0, slot);
    for (const l of s.lines) l.values.splice(i, 0, 0);
    s.covered.splice(i, 0, 0);
  }
  const n = s.covered[i] || 0;
  if (Math.floor((t - slot) / s.covered_ns) < n) return; // already counted
  for (const [k, v] of Object.entries(kv)) {
    let line = s.lines.find((l) => l.key === k);
    if (!line) {
      line = { key: k, values: s.times_ns.map(() => null) };
      line.values[i] = 0;
      s.lines.push(line);
    }
    const old = line.values[i] ?? 0;
    line.values[i] = mean ? (old * n + v) / (n + 1) : old + v;
  }
  // Lines absent from this bin are zero in it (a present bin), not gaps.
  for (const l of s.lines) if (l.values[i] == null) l.values[i] = 0;
  s.covered[i] = n + 1;
}

function trim(s, from) {
  if (!s) return;
  const step = s.step_ns;
  let k = 0;
  while (k < s.times_ns.length && s.times_ns[k] + step <= from) k++;
  if (!k) return;
  s.times_ns.splice(0, k);
  for (const l of s.lines) l.values.splice(0, k);
  s.covered.splice(0, k);
}

function counts(bin, dim, what) {
  const out = {};
  for (const c of bin.counts) if (c.dim === dim) out[c.key] = c[what];
  return out;
}

/** Live events, buffered while a view loads. */
const handlers = { bin: applyBin, window: applyWindow, hurst: applyHurst };
function live(kind) {
  return (ev) => {
    if (loading || !data) {
      if (buffered.length < 3600) buffered.push([kind, ev]);
      else document.body.dataset.droppedEvents = String(Number(document.body.dataset.droppedEvents || 0) + 1);
      return;
    }
    handlers[kind](ev);
  };
}

function applyBin(bin) {
  newest = Math.max(newest, bin.start_ns + bin.width_ns);
  if (!S.live || S.range === 'custom' || !data) {
    $('newest').textContent = `newest data ${f.utc(newest)}`;
    return;
  }
  range = currentRange();
  const t = bin.start_ns;
  if (Object.keys(crossFilter()).length) {
    addTo(data.cls, t, crossCounts(bin, 'class', 'packets'));
    addTo(data.proto, t, crossCounts(bin, 'protocol', 'bytes'));
    addTo(data.dir, t, crossCounts(bin, 'direction', 'bytes'));
    addTo(data.pk, t, { total: 0, ...crossCounts(bin, null, 'packets') });
  } else {
    addTo(data.cls, t, counts(bin, 'class', 'packets'));
    addTo(data.proto, t, counts(bin, 'protocol', 'bytes'));
    addTo(data.dir, t, counts(bin, 'direction', 'bytes'));
    addTo(data.pk, t, { total: bin.packets });
  }
  addTo(data.fStart, t, { total: bin.flows_started });
  // flows_ended: [[reason, flows], …]
  const ended = { total: bin.flows_ended.reduce((a, e) => a + e[1], 0) };
  for (const [reason, n] of bin.flows_ended) ended[reason] = n;
  addTo(data.fEnded, t, ended);
  addTo(data.fActive, t, { total: bin.flows_active }, true);
  if (data.fine) {
    const names = ['total', 'tcp', 'udp'];
    if (data.fine.step_ns === bin.fine_width_ns) {
      bin.fine_bytes[0].forEach((_, j) => {
        const kv = {};
        names.forEach((n, k) => { kv[n] = bin.fine_bytes[k][j]; });
        addTo(data.fine, t + j * bin.fine_width_ns, kv);
      });
    } else {
      const kv = {};
      names.forEach((n, k) => { kv[n] = bin.fine[k].mean; });
      addTo(data.fine, t, kv, true);
    }
  }
  for (const k of ['cls', 'proto', 'dir', 'pk', 'fStart', 'fEnded', 'fActive', 'fine']) trim(data[k], range[0]);
  scheduleDraw('series');
  // Shares and totals of the range: from the store every few seconds.
  later('totals', refreshTotals, 3000);
}

function applyWindow(w) {
  if (!S.live || S.range === 'custom' || !data || !data.windows) return;
  const list = data.windows.windows;
  const step = data.windows.step_ns;
  const slot = Math.floor(w.start_ns / step) * step;
  const last = list[list.length - 1];
  // Held by the store's answer already (windows are stored in order).
  if (last && w.end_ns <= last.end_ns) return;
  if (last && Math.floor(last.start_ns / step) * step === slot) {
    for (const k of ['hits', 'misses', 'unknown', 'pending', 'unlabelled']) last[k] += w[k];
    last.end_ns = w.end_ns;
    const n = last.hits + last.misses + last.unknown + last.pending;
    last.accuracy = n ? last.hits / n : null;
  } else {
    const n = w.hits + w.misses + w.unknown + w.pending;
    list.push({ ...w, accuracy: n ? w.hits / n : null });
  }
  while (list.length && list[0].end_ns <= range[0]) list.shift();
  scheduleDraw('windows');
}

function applyHurst(p) {
  if (p.series !== 'total' || !S.live || S.range === 'custom' || !data || !data.hurst) return;
  const pts = data.hurst.points;
  const step = data.hurst.step_ns;
  if (pts.length && p.end_ns <= pts[pts.length - 1].end_ns) return; // held already
  if (pts.length && Math.floor(pts[pts.length - 1].end_ns / step) === Math.floor(p.end_ns / step)) pts[pts.length - 1] = p;
  else pts.push(p);
  while (pts.length && pts[0].end_ns < range[0]) pts.shift();
  scheduleDraw('hurst');
  refreshHvsm();
}

function banner(text, kind) {
  const b = $('banner');
  b.textContent = text || '';
  b.hidden = !text;
  b.className = kind || '';
}

const helloWaiters = [];
function openStream() {
  const es = api.stream(null, {
    hello: (h) => {
      info = h.info;
      while (helloWaiters.length) helloWaiters.shift()();
      if (disconnectedAt) {
        const gone = ((Date.now() - disconnectedAt) / 1000).toFixed(0);
        banner(`Reconnected at ${f.utc(Date.now() * 1e6)}: the connection to the server was lost for ${gone} s (the service restarted or the network dropped). The view was reloaded from the store; data the service did not see while it was down shows as a gap.`, 'info');
        disconnectedAt = null;
        document.body.dataset.reconnects = String(Number(document.body.dataset.reconnects || 0) + 1);
        refreshNewest().then(reload);
      }
      $('conn').textContent = 'connected';
      $('conn').className = 'ok';
    },
    bin: live('bin'),
    window: live('window'),
    hurst: live('hurst'),
    flow: () => { if (S.live && S.range !== 'custom') later('flows', refreshFlows, 5000); },
    lagged: () => reload(),
    error: (state) => {
      if (!disconnectedAt) disconnectedAt = Date.now();
      $('conn').textContent = 'disconnected';
      $('conn').className = 'bad';
      banner(`Disconnected from the server at ${f.utc(disconnectedAt * 1e6)}; reconnecting…`, 'warn');
      document.body.dataset.disconnects = String(Number(document.body.dataset.disconnects || 0) + 1);
      if (state === 2) {
        // Closed for good (the server refused the stream): retry ourselves.
        es.close();
        setTimeout(openStream, 3000);
      }
    },
  });
}

async function refreshNewest() {
  const [s, e] = await Promise.all([api.get('/api/v1/summary'), api.get('/api/v1/extent')]);
  summary = s;
  info = s.info;
  newest = Math.max(s.last_packet_ns || 0, e.last_ns || 0) || Date.now() * 1e6;
  pcapAvailable = Boolean(s.pcap && s.pcap.available);
}

async function pollHealth() {
  try {
    const [s, h] = await Promise.all([api.get('/api/v1/summary'), api.get('/api/v1/health')]);
    summary = s;
    panels.health.error(null);
    P.health(panels.health.body, s, h);
    $('source').textContent = s.source;
    pcapAvailable = Boolean(s.pcap && s.pcap.available);
    $('pcap-range').hidden = !pcapAvailable;
  } catch (e) {
    panels.health.error(e);
  }
}

async function downloadPcap(params) {
  const out = $('pcap-msg');
  out.textContent = 'preparing the capture…';
  try {
    const r = await api.download('/api/v1/pcap', params, 'trafficscope.pcap');
    out.textContent = `downloaded ${f.bytes(r.bytes)}${r.note ? ` (${r.note})` : ''}`;
  } catch (e) {
    out.textContent = `no capture: ${e.message}`;
  }
}

// ------------------------------------------------------------- controls --

let wired = false;
function wireControls() {
  if (wired) return;
  wired = true;
  for (const b of document.querySelectorAll('[data-range]')) {
    b.addEventListener('click', () => {
      S = { ...S, range: b.dataset.range, live: true, from: null, to: null };
      st.write(S, true);
      reload();
    });
  }
  $('live').addEventListener('click', () => {
    if (S.range === 'custom') S = { ...S, range: '5m', from: null, to: null, live: true };
    else S = { ...S, live: !S.live };
    st.write(S, true);
    if (S.live) refreshNewest().then(reload);
    else drawControls();
  });
  $('custom').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const a = Date.parse($('from').value);
    const b = Date.parse($('to').value);
    if (!Number.isFinite(a) || !Number.isFinite(b) || a >= b) {
      $('custom-msg').textContent = 'give two UTC times, the first earlier (2026-12-04T15:00:00Z)';
      return;
    }
    $('custom-msg').textContent = '';
    zoom(a * 1e6, b * 1e6);
  });
  $('pcap-range').addEventListener('click', () => downloadPcap({ from: f.apiTime(range[0]), to: f.apiTime(range[1]) }));
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token').value.trim();
    if (!v) return;
    $('token-dialog').hidden = true;
    $('token').value = '';
    api.setToken(v);
  });
  api.whenTokenNeeded((msg, wasWrong) => {
    $('token-why').textContent = wasWrong ? `The token was refused (${msg}).` : 'This service needs a token (run --token).';
    $('token-dialog').hidden = false;
    $('token').focus();
  });
  window.addEventListener('popstate', () => { S = st.read(); reload(); });
}

async function start() {
  wireControls();
  try {
    await refreshNewest();
  } catch (e) {
    banner(`Cannot reach the service: ${e.message}. Retrying…`, 'warn');
    setTimeout(start, 3000);
    return;
  }
  $('version').textContent = `trafficscope ${info.version}`;
  $('classes').textContent = `model classes: ${info.classes.join(', ')}`;
  st.write(S);
  // The stream first, and its `hello` (the server has subscribed it) before
  // the first query: what closes while the view loads is then buffered, not
  // lost between the answer and the stream.
  await new Promise((resolve) => {
    helloWaiters.push(resolve);
    setTimeout(resolve, 4000);
    openStream();
  });
  // The hello came once the store held every bin sent before the stream
  // began; the newest time read again so the range covers them all.
  await refreshNewest().catch(() => {});
  await reload();
  pollHealth();
  setInterval(pollHealth, 5000);
}

// What the page holds, for the browser tests and the curious (console).
window.trafficscope = { state: () => ({ S, range, newest, data, info }) };

start();
