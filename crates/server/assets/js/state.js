// The view's state lives in the URL's query so a view can be shared or
// bookmarked: range (5m, 1h, 24h, 7d, custom), live (follow the newest
// data), from/to (custom range, ISO UTC), and filters (class, app,
// protocol, addr). Unknown or malformed values fall back to defaults.

export const RANGES = ['5m', '15m', '1h', '6h', '24h', '7d'];
export const FILTERS = ['class', 'app', 'protocol', 'addr'];

export function read() {
  const q = new URLSearchParams(location.search);
  const s = {
    range: RANGES.includes(q.get('range')) ? q.get('range') : '5m',
    live: q.get('live') !== '0',
    from: null,
    to: null,
    filters: {},
    sort: ['bytes', 'packets', 'start', 'end', 'duration'].includes(q.get('sort')) ? q.get('sort') : 'bytes',
  };
  const from = Date.parse(q.get('from') || '');
  const to = Date.parse(q.get('to') || '');
  if (q.get('range') === 'custom' && Number.isFinite(from) && Number.isFinite(to) && from < to) {
    s.range = 'custom';
    s.live = false;
    s.from = from * 1e6;
    s.to = to * 1e6;
  }
  for (const f of FILTERS) {
    const v = q.get(f);
    if (v) s.filters[f] = v;
  }
  return s;
}

/** Writes `s` to the URL; `push` makes a history entry (user actions). */
export function write(s, push = false) {
  const q = new URLSearchParams();
  q.set('range', s.range);
  if (s.range === 'custom') {
    q.set('from', new Date(s.from / 1e6).toISOString());
    q.set('to', new Date(s.to / 1e6).toISOString());
  } else if (!s.live) {
    q.set('live', '0');
  }
  for (const f of FILTERS) if (s.filters[f]) q.set(f, s.filters[f]);
  if (s.sort !== 'bytes') q.set('sort', s.sort);
  const next = `${location.pathname}?${q}`;
  if (next === location.pathname + location.search) return;
  if (push) history.pushState(null, '', next);
  else history.replaceState(null, '', next);
}
