// Units, times and colours shared by every panel. Times are UTC: captures
// come from anywhere, and ISO 8601 UTC is what the API speaks.

const SI = ['', 'k', 'M', 'G', 'T', 'P'];

/** 1234567 → "1.23 M" (unit appended). */
export function si(v, unit = '', digits = 3) {
  if (v == null || !Number.isFinite(v)) return '–';
  let i = 0;
  let x = Math.abs(v);
  while (x >= 1000 && i < SI.length - 1) { x /= 1000; i++; }
  const n = (v < 0 ? -x : x);
  const s = i === 0 && Number.isInteger(n) ? String(n) : n.toPrecision(digits);
  return `${s} ${SI[i]}${unit}`.trim();
}

/** Bytes in binary-free SI (network engineers count kB = 1000 B). */
export const bytes = (v) => si(v, 'B');
export const bits = (v) => si(v, 'bit/s');
export const pps = (v) => si(v, 'pkt/s');

/** Exact integers with thin separators: what a tester compares. */
export function count(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  return Math.round(v).toLocaleString('en-US');
}

export function pct(v, digits = 1) {
  if (v == null || !Number.isFinite(v)) return '–';
  return `${(v * 100).toFixed(digits)} %`;
}

export function num(v, digits = 2) {
  if (v == null || !Number.isFinite(v)) return '–';
  return v.toFixed(digits);
}

/** ns → "2026-12-04 15:00:01Z" (UTC), to the second or the millisecond. */
export function utc(ns, ms = false) {
  if (ns == null) return '–';
  const iso = new Date(ns / 1e6).toISOString();
  return iso.slice(0, 10) + ' ' + iso.slice(11, ms ? 23 : 19) + 'Z';
}

/** ns → seconds with millisecond decimals, as the API accepts times. */
export function apiTime(ns) {
  return (ns / 1e9).toFixed(3);
}

/** A duration in ns → "4m 10s", "1.20 s", "350 ms". */
export function dur(ns) {
  if (ns == null || !Number.isFinite(ns)) return '–';
  const s = ns / 1e9;
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = Math.floor(s % 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${r}s`;
}

/** "5m", "1h", "24h", "7d", "100ms" → ns. */
export function parseSpan(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s || '');
  if (!m) return null;
  const unit = { ms: 1e6, s: 1e9, m: 60e9, h: 3600e9, d: 86400e9 }[m[2]];
  return Number(m[1]) * unit;
}

// Okabe–Ito for the classes (the page's main colour code), Paul Tol's
// muted scheme for every other key: both safe for colour-blind readers.
const CLASS = {
  web: '#0072B2', video: '#D55E00', voip: '#009E73', dns: '#E69F00',
  bulk: '#CC79A7', other: '#56B4E9', 'video-download': '#882255',
  'voip-icmp': '#44AA99', unknown: '#7f7f7f', pending: '#c7c7c7',
  unlabelled: '#a9a9a9',
};
const FIXED = {
  TCP: '#0072B2', UDP: '#E69F00', ICMP: '#009E73', ICMPv6: '#44AA99',
  ARP: '#CC79A7', other: '#a9a9a9', up: '#D55E00', down: '#0072B2',
  total: '#332288', tcp: '#0072B2', udp: '#E69F00',
  unrecognised: '#a9a9a9',
};
const MUTED = ['#332288', '#88CCEE', '#44AA99', '#117733', '#999933',
  '#DDCC77', '#CC6677', '#882255', '#AA4499', '#6699CC'];

function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
  return h >>> 0;
}

/** The colour of `key` in dimension `dim`: the same everywhere on the page. */
export function colour(dim, key) {
  if ((dim === 'class' || dim === 'true_class') && CLASS[key]) return CLASS[key];
  if (FIXED[key]) return FIXED[key];
  if (CLASS[key]) return CLASS[key];
  return MUTED[hash(String(key)) % MUTED.length];
}

/** #rrggbb → rgba with alpha, for fills. */
export function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

/** A DOM element with text only: traffic names never become markup. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c == null) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}
