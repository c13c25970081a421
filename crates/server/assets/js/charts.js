// Charts: thin wrappers over uPlot (time series, stacked areas and bars,
// bands) and a few lines of SVG for shares. Every chart of the page shares
// one cursor (hover one, see the same instant in all) and drag-to-zoom
// sets the page's range.

import { alpha, el } from './fmt.js';

/* global uPlot */

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 210;
/** A solid colour between `hex` and white (f = 0: hex, 1: white). */
function tint(hex, f) {
  const n = parseInt(hex.slice(1), 16);
  const c = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((x) => Math.round(x + (255 - x) * f));
  return `rgb(${c.join(',')})`;
}
const utcDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');

/** UTC tick labels, 24 h: the time, and the date on the first tick and at midnight. */
function timeTicks(u, splits, axis, space, incr) {
  return splits.map((s, i) => {
    const iso = new Date(s * 1e3).toISOString();
    if (incr >= 86400) return iso.slice(0, 10);
    const t = incr < 60 ? iso.slice(11, 19) : iso.slice(11, 16);
    return i === 0 || iso.slice(11, 19) === '00:00:00' ? `${t}\n${iso.slice(0, 10)}` : t;
  });
}

/** Axis width that fits its longest label (uPlot calls it with the labels). */
export function axisSize(u, values) {
  if (!values) return 50;
  return Math.max(...values.map((v) => String(v).length)) * 7 + 16;
}

function sized(host, make) {
  const width = () => Math.max(280, host.clientWidth);
  const chart = make(width());
  const ro = new ResizeObserver(() => {
    const w = width();
    if (Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: chart.height });
  });
  ro.observe(host);
  return chart;
}

/**
 * A time chart. `opts`:
 *   fmt(v)      value → text with units (axis, legend)
 *   kind        'line' | 'area' | 'bars'
 *   stacked     stack the lines (areas or bars)
 *   extra       more uPlot series/scales/axes/bands for special panels
 *   onSelect(fromNs, toNs)  drag-to-zoom
 * Data: setData(timesNs, lines[{key, label, colour, values, dash, width, scale}], [fromNs, toNs]).
 */
export class TimeChart {
  constructor(host, opts) {
    this.host = host;
    this.opts = opts;
    this.keys = null;
    this.u = null;
    this.xr = [0, 1];
  }

  build(lines) {
    if (this.u) this.u.destroy();
    this.host.replaceChildren();
    const o = this.opts;
    const stacked = o.stacked && lines.length > 1;
    const series = [{ label: 'time (UTC)', value: (u, v) => (v == null ? '–' : utcDate(v).toISOString().slice(11, 23)) }];
    const bands = [];
    // Stacks are drawn top first, each filled solid down to zero, so the
    // next (lower) one covers the part below it: no band arithmetic.
    const drawn = stacked ? [...lines].reverse() : lines;
    drawn.forEach((l) => {
      const s = {
        label: l.label || l.key,
        stroke: l.colour,
        width: l.width ?? (o.kind === 'bars' ? 0 : 1.5),
        scale: l.scale || 'y',
        dash: l.dash,
        spanGaps: l.spanGaps,
        points: { show: false },
        value: (u, v, si, idx) => {
          const raw = this.raw && this.raw[si - 1] ? this.raw[si - 1][idx] : v;
          return raw == null ? '–' : (l.fmt || o.fmt)(raw);
        },
      };
      if (o.kind === 'bars' && !l.scale) {
        s.fill = tint(l.colour, 0.1);
        s.paths = uPlot.paths.bars({ size: [0.9, 40], align: 1 });
      } else if (o.kind === 'area' && !l.scale) {
        s.fill = stacked ? tint(l.colour, 0.25) : alpha(l.colour, 0.2);
      }
      if (l.band) {
        s.stroke = 'transparent';
        s.fill = undefined;
      }
      series.push(s);
    });
    for (const [a, b, colour] of o.bandPairs ? o.bandPairs(lines) : []) {
      bands.push({ series: [a + 1, b + 1], fill: alpha(colour, 0.18) });
    }
    const axes = [
      { stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' }, values: timeTicks },
      { stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' }, size: axisSize, values: (u, sp) => sp.map((v) => o.fmt(v)) },
    ];
    const scales = { x: { time: true, range: () => this.xr }, y: { range: o.yRange || ((u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1]) } };
    for (const a of o.axes || []) {
      axes.push(a.axis);
      scales[a.scale] = a.def;
    }
    const self = this;
    this.u = sized(this.host, (width) => new uPlot({
      width,
      height: o.height || HEIGHT,
      tzDate: utcDate,
      series,
      bands,
      axes,
      scales,
      legend: { live: true },
      cursor: {
        sync: { key: 'ts' },
        drag: { x: true, y: false, setScale: false },
      },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width > 4 && self.opts.onSelect) {
            const a = u.posToVal(u.select.left, 'x');
            const b = u.posToVal(u.select.left + u.select.width, 'x');
            self.opts.onSelect(Math.round(a * 1e3) * 1e6, Math.round(b * 1e3) * 1e6);
          }
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        }],
      },
    }, [[]], this.host));
    this.drawnOrder = drawn;
  }

  /** New data; the chart is rebuilt only when the set of lines changes. */
  setData(timesNs, lines, rangeNs) {
    const keys = lines.map((l) => `${l.key}|${l.colour}`).join(',');
    if (keys !== this.keys || !this.u) {
      this.keys = keys;
      this.build(lines);
    }
    this.xr = [rangeNs[0] / 1e9, rangeNs[1] / 1e9];
    const xs = timesNs.map((t) => t / 1e9);
    const o = this.opts;
    let ys = lines.map((l) => l.values);
    let raw = ys;
    if (o.stacked && lines.length > 1) {
      const stackable = lines.map((l) => !l.scale);
      const acc = new Array(xs.length).fill(0);
      const gap = new Array(xs.length).fill(true);
      ys = lines.map((l, i) => {
        if (!stackable[i]) return l.values;
        return l.values.map((v, k) => {
          if (v != null) { acc[k] += v; gap[k] = false; }
          return gap[k] ? null : acc[k];
        });
      });
      ys = [...ys].reverse();
      raw = [...raw].reverse();
    }
    this.raw = raw;
    this.u.setData([xs, ...ys]);
  }

  destroy() {
    if (this.u) this.u.destroy();
    this.u = null;
    this.keys = null;
  }
}

/** An x–y chart with a band (H against M). */
export class XYChart {
  constructor(host, opts) {
    this.host = host;
    this.opts = opts;
    this.u = null;
  }

  setData(x, lines) {
    if (!this.u) {
      const o = this.opts;
      this.u = sized(this.host, (width) => new uPlot({
        width,
        height: o.height || HEIGHT,
        series: [{ label: o.xLabel, value: (u, v) => (v == null ? '–' : String(Math.round(v))) },
          ...lines.map((l) => ({
            label: l.label, stroke: l.band ? 'transparent' : l.colour, width: l.width ?? 1.5,
            dash: l.dash, points: { show: !l.band && !l.dash, size: 4 },
            value: (u, v) => (v == null ? '–' : v.toFixed(3)),
          }))],
        bands: o.bands || [],
        scales: { x: { time: false, distr: 3 }, y: { range: o.yRange } },
        axes: [
          { label: o.xLabel, stroke: '#555', grid: { stroke: '#eee' } },
          { label: o.yLabel, stroke: '#555', grid: { stroke: '#eee' }, size: 50 },
        ],
        cursor: { drag: { x: false, y: false } },
      }, [[]], this.host));
    }
    this.u.setData([x, ...lines.map((l) => l.values)]);
  }
}

/**
 * Shares as a donut with a legend table: items [{key, value, colour}],
 * biggest first. `onPick(key)` on click of a slice or a legend row; the
 * selected key is drawn solid and the others faded.
 */
export function donut(host, items, { fmt, onPick, selected, total: given }) {
  host.replaceChildren();
  const total = given ?? items.reduce((a, b) => a + b.value, 0);
  if (!total) {
    host.append(el('p', { class: 'empty', text: 'no traffic in this range' }));
    return;
  }
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '-1.1 -1.1 2.2 2.2');
  svg.setAttribute('class', 'donut');
  let a0 = -Math.PI / 2;
  for (const it of items) {
    const frac = it.value / total;
    if (frac <= 0) continue;
    const a1 = a0 + frac * 2 * Math.PI;
    const path = document.createElementNS(SVG, 'path');
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const [r, r2] = [1, 0.58];
    const p = (ang, rad) => `${(rad * Math.cos(ang)).toFixed(4)} ${(rad * Math.sin(ang)).toFixed(4)}`;
    const d = frac >= 0.9999
      ? `M ${p(0, r)} A ${r} ${r} 0 1 1 ${p(Math.PI, r)} A ${r} ${r} 0 1 1 ${p(0, r)} M ${p(0, r2)} A ${r2} ${r2} 0 1 0 ${p(Math.PI, r2)} A ${r2} ${r2} 0 1 0 ${p(0, r2)} Z`
      : `M ${p(a0, r)} A ${r} ${r} 0 ${large} 1 ${p(a1, r)} L ${p(a1, r2)} A ${r2} ${r2} 0 ${large} 0 ${p(a0, r2)} Z`;
    path.setAttribute('d', d);
    path.setAttribute('fill', it.colour);
    path.setAttribute('fill-rule', 'evenodd');
    if (selected && selected !== it.key) path.setAttribute('opacity', '0.25');
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${it.key}: ${fmt(it.value)} (${(frac * 100).toFixed(1)} %)`;
    path.append(title);
    path.addEventListener('click', () => onPick && onPick(it.key));
    svg.append(path);
    a0 = a1;
  }
  const rows = items.map((it) => el('tr', {
    class: selected === it.key ? 'sel' : (selected ? 'faded' : null),
    'data-key': it.key,
    onclick: () => onPick && onPick(it.key),
  },
  el('td', {}, el('span', { class: 'sw', style: null }), it.key),
  el('td', { class: 'n', 'data-raw': String(it.value), text: fmt(it.value) }),
  el('td', { class: 'n', text: `${((it.value / total) * 100).toFixed(1)} %` })));
  // Swatch colours are set through the CSSOM, which the page's policy allows.
  rows.forEach((r, i) => { r.querySelector('.sw').style.background = items[i].colour; });
  host.append(el('div', { class: 'share' }, svg, el('table', { class: 'legend' }, el('tbody', {}, ...rows))));
}
