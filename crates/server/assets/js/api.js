// The page's only way to the server: JSON GETs and the event stream, with
// the token (when the service needs one) kept for this browser session.

const TOKEN_KEY = 'trafficscope-token';
let token = sessionStorage.getItem(TOKEN_KEY);
const tokenWaiters = [];

/** An API answer that was not 2xx, with the server's message. */
export class ApiError extends Error {
  constructor(status, message, parameter) {
    super(message);
    this.status = status;
    this.parameter = parameter;
  }
}

/** Called with a resolver when the server asks for a token. */
let onTokenNeeded = () => {};
export function whenTokenNeeded(f) { onTokenNeeded = f; }

export function setToken(t) {
  token = t;
  sessionStorage.setItem(TOKEN_KEY, t);
  while (tokenWaiters.length) tokenWaiters.shift()();
}

export function headers() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function withToken(url) {
  if (!token) return url;
  const u = new URL(url, location.origin);
  u.searchParams.set('token', token);
  return u.pathname + u.search;
}

function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v != null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** GET a JSON endpoint; a 401 waits for a token and tries again. */
export async function get(path, params) {
  for (;;) {
    let res;
    try {
      res = await fetch(url(path, params), { headers: headers(), cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, `the server did not answer (${e.message})`);
    }
    if (res.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      const body = await res.json().catch(() => ({}));
      await new Promise((resolve) => {
        tokenWaiters.push(resolve);
        onTokenNeeded(body.error || 'a token is required', Boolean(token));
      });
      continue;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const msg = body && body.error ? body.error : `HTTP ${res.status}`;
      const hint = body && body.accepted ? ` (accepted: ${body.accepted})` : '';
      throw new ApiError(res.status, msg + hint, body && body.parameter);
    }
    return body;
  }
}

/** A file download that needs the token: fetched, then saved by the browser. */
export async function download(path, params, fallbackName) {
  const res = await fetch(url(path, params), { headers: headers() });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, body.error || `HTTP ${res.status}`, body.parameter);
  }
  const blob = await res.blob();
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename="?([^";]+)"?/.exec(cd);
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = m ? m[1] : fallbackName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return { bytes: blob.size, note: res.headers.get('X-Trafficscope-Note') };
}

/**
 * The live stream. `handlers` has one function per event name (hello, bin,
 * window, hurst, flow, lagged) plus `open` and `error`. EventSource
 * reconnects by itself; `error` tells the page it is disconnected.
 */
export function stream(kinds, handlers) {
  const es = new EventSource(withToken(url('/api/v1/stream', { kinds })));
  for (const name of ['hello', 'bin', 'window', 'hurst', 'flow', 'lagged']) {
    if (!handlers[name]) continue;
    es.addEventListener(name, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      handlers[name](data);
    });
  }
  es.onopen = () => handlers.open && handlers.open();
  es.onerror = () => handlers.error && handlers.error(es.readyState);
  return es;
}
