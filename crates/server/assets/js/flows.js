// The top-flows table: finished flows of the visible range from the store,
// sorted by the server, filtered by class, application and address. Every
// name from the traffic (SNI, host, DNS query) is set as text.

import * as api from './api.js';
import * as f from './fmt.js';

const COLUMNS = [
  ['start', 'start (UTC)', 'start'],
  ['flow', 'five-tuple', null],
  ['app', 'application · server', null],
  ['class', 'class', null],
  ['confidence', 'conf.', null],
  ['truth', 'true class', null],
  ['packets', 'packets', 'packets'],
  ['bytes', 'bytes', 'bytes'],
  ['duration', 'duration', 'duration'],
  ['pcap', '', null],
];

const PROTO = { 1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };
export const protoName = (n) => PROTO[n] || `proto ${n}`;

/** The server name a flow is known by, whichever the decoder found. */
export function serverName(app) {
  if (!app) return '';
  return app.tls_sni || app.http_host || app.dns_query || app.tls_cert_name || '';
}

export class FlowTable {
  constructor(panel, { onSort, onPick, pcap, canPcap }) {
    this.panel = panel;
    this.onSort = onSort;
    this.onPick = onPick;
    this.pcap = pcap;
    this.canPcap = canPcap;
  }

  draw(page, sort) {
    const pcap = this.canPcap && this.canPcap();
    const head = f.el('tr', {}, ...COLUMNS.map(([key, label, s]) => f.el('th', {
      class: `${s ? 'sortable' : ''}${s === sort ? ' sorted' : ''}`,
      'data-col': key,
      title: s ? `sort by ${label}, largest first` : null,
      onclick: s ? () => this.onSort(s) : null,
      text: label + (s === sort ? ' ▾' : ''),
    })));
    const rows = page.flows.map((row) => {
      const r = row.record;
      const a = r.app || {};
      const name = serverName(a);
      const packets = r.fwd.packets + r.bwd.packets;
      const bytes = r.fwd.bytes + r.bwd.bytes;
      const pick = (dim, key) => f.el('button', { type: 'button', class: 'link', title: `filter by ${dim} ${key}`, onclick: () => this.onPick(dim, key), text: key });
      const cls = f.el('td', { 'data-col': 'class' }, f.el('span', { class: 'sw' }), pick('class', row.class));
      cls.querySelector('.sw').style.background = f.colour('class', row.class);
      return f.el('tr', { 'data-flow': `${r.src} ${r.src_port} ${r.dst} ${r.dst_port} ${protoName(r.protocol)}` },
        f.el('td', { 'data-col': 'start', text: f.utc(r.start_ns, true) }),
        f.el('td', { 'data-col': 'flow', class: 'mono' },
          pick('addr', r.src), f.el('span', { text: `:${r.src_port} → ` }), pick('addr', r.dst),
          f.el('span', { text: `:${r.dst_port} ${protoName(r.protocol)}` })),
        f.el('td', { 'data-col': 'app' }, a.detected ? pick('app', a.detected) : f.el('span', { class: 'dim', text: 'unrecognised' }),
          name ? f.el('span', { class: 'server', title: name, text: ` ${name}` }) : null),
        cls,
        f.el('td', { 'data-col': 'confidence', class: 'n', text: row.confidence == null ? '–' : row.confidence.toFixed(2) }),
        f.el('td', { 'data-col': 'truth', text: row.true_class || '–' }),
        f.el('td', { 'data-col': 'packets', class: 'n', 'data-raw': String(packets), text: f.count(packets) }),
        f.el('td', { 'data-col': 'bytes', class: 'n', 'data-raw': String(bytes), text: f.count(bytes) }),
        f.el('td', { 'data-col': 'duration', class: 'n', text: f.dur(r.end_ns - r.start_ns) }),
        f.el('td', { 'data-col': 'pcap' }, pcap ? f.el('button', {
          type: 'button', class: 'link', title: 'download this flow\'s packets (pcap)',
          onclick: () => this.pcap(r), text: 'pcap',
        }) : null));
    });
    const table = f.el('table', { class: 'flows' }, f.el('thead', {}, head), f.el('tbody', {}, ...rows));
    const more = page.total > page.flows.length ? `${f.count(page.flows.length)} of ${f.count(page.total)} flows` : `${f.count(page.total)} flows`;
    this.panel.setNote(`${more} ended in the range, largest ${sort} first`);
    this.panel.body.replaceChildren(page.flows.length ? table : f.el('p', { class: 'empty', text: 'no finished flow in this range matches' }));
  }
}

export async function load(range, filters, sort, limit = 25) {
  return api.get('/api/v1/flows', {
    from: f.apiTime(range[0]),
    to: f.apiTime(range[1]),
    class: filters.class,
    app: filters.app,
    addr: filters.addr,
    sort,
    order: 'desc',
    limit,
  });
}
