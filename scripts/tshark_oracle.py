#!/usr/bin/env python3
"""Expected per-packet and per-flow results for a capture, produced by tshark.

Usage: tshark_oracle.py CAPTURE OUTDIR

Writes, from tshark's own dissection (never by hand):
  OUTDIR/packets.tsv  number, frame length, class, src, sport, dst, dport,
                      capture time (epoch seconds with nanoseconds),
                      TLS SNI, DNS query name, HTTP Host (when present)
                      (class: tcp, udp, sctp, icmp, icmpv6, arp, ip-other, other)
  OUTDIR/conv.tsv     proto, a, port_a, b, port_b, frames a->b, frames b->a
                      (from `tshark -q -z conv,tcp -z conv,udp -z conv,sctp`)
  OUTDIR/status       "ok", or "error: ..." when tshark could not read the file

Conventions chosen to match what trafficscope reports, each a principled choice:
  * IP reassembly is off (-o ip.defragment:FALSE): each fragment is its own
    frame; only the first carries transport ports.
  * The class is the innermost transport: tunnels (GRE, VXLAN, GTP-U, IP-in-IP,
    Teredo) are decoded to the inner packet; but ICMP stops the walk, because
    the IP header quoted inside an ICMP error is not a tunnel.
  * Addresses and ports are those of the IP layer that carries that transport.
"""

import os
import subprocess
import sys

TRANSPORTS = ("tcp", "udp", "sctp")
ICMPS = ("icmp", "icmpv6")

FIELDS = [
    "frame.number",
    "frame.len",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "sctp.srcport",
    "sctp.dstport",
    "frame.time_epoch",
    "tls.handshake.extensions_server_name",
    "dns.qry.name",
    "http.host",
    "frame.cb_pen",
]

PREFS = ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]


# Layers whose payload is data, not a tunnel, even when it holds frames.
STOP = ("icmp", "icmpv6", "openflow", "openflow_v1", "openflow_v4", "openflow_v5", "openflow_v6")


def classify(protocols):
    """Returns (class, ip_family, ip_index, transport_index) from frame.protocols.

    The innermost packet wins: each IP layer starts over (class ip-other until
    a transport follows); ICMP and OpenFlow stop the walk.
    """
    cls, fam, ipi, t_at = None, None, -1, None
    idx = {"ip": -1, "ipv6": -1}
    tidx = {"tcp": -1, "udp": -1, "sctp": -1}
    for layer in protocols.split(":"):
        if layer in ("ip", "ipv6"):
            idx[layer] += 1
            cls, fam, ipi, t_at = "ip-other", layer, idx[layer], None
        elif layer in TRANSPORTS and fam is not None:
            tidx[layer] += 1
            cls, t_at = layer, tidx[layer]
        elif layer in STOP:
            if layer in ICMPS and fam is not None:
                cls, t_at = layer, None
            break
        elif layer == "arp" and fam is None:
            return "arp", None, -1, None
    if cls is None:
        return "other", None, -1, None
    return cls, fam, ipi, t_at


def pick(value, i):
    vals = value.split(",") if value else []
    if i is None or i < 0 or i >= len(vals):
        return ""
    return vals[i]


def main():
    cap, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cmd = ["tshark", "-n", "-r", cap, *PREFS, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    # One run prints the per-packet fields, then the conversation tables.
    cmd += ["-z", "conv,tcp", "-z", "conv,udp", "-z", "conv,sctp"]
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    err = [l for l in res.stderr.strip().splitlines() if "Running as user" not in l and "dangerous" not in l]
    status = "ok" if res.returncode == 0 else "error: " + (err[-1] if err else "exit %d" % res.returncode)
    lines = res.stdout.splitlines()
    cut = next((i for i, l in enumerate(lines) if l.startswith("=====")), len(lines))
    rows = []
    layers = set()
    number = 0
    for line in lines[:cut]:
        p = line.split("\t")
        p += [""] * (len(FIELDS) - len(p))
        if p[len(FIELDS) - 1]:
            # A pcapng Custom Block, which tshark lists as a frame: not a packet.
            continue
        number += 1
        seq = p[2].split(":")
        layers.update(seq)
        # Adjacent pairs too ("udp>mpls"), to tell MPLS over UDP from MPLS over Ethernet.
        layers.update(a + ">" + b for a, b in zip(seq, seq[1:]))
        cls, fam, ipi, t_at = classify(p[2])
        src = dst = ""
        if fam == "ip":
            src, dst = pick(p[3], ipi), pick(p[4], ipi)
        elif fam == "ipv6":
            src, dst = pick(p[5], ipi), pick(p[6], ipi)
        sport = dport = ""
        if cls == "tcp":
            sport, dport = pick(p[7], t_at), pick(p[8], t_at)
        elif cls == "udp":
            sport, dport = pick(p[9], t_at), pick(p[10], t_at)
        elif cls == "sctp":
            sport, dport = pick(p[11], t_at), pick(p[12], t_at)
        # Application hints: first occurrence in the packet.
        hints = [v.split(",")[0] for v in (p[14], p[15], p[16])]
        rows.append("\t".join([str(number), p[1], cls, src, sport, dst, dport, p[13], *hints]))
    with open(os.path.join(out, "packets.tsv"), "w") as f:
        f.write("\n".join(rows) + ("\n" if rows else ""))
    with open(os.path.join(out, "layers"), "w") as f:
        f.write("\n".join(sorted(layers)) + "\n")

    proto = None
    out_rows = []
    for line in lines[cut:]:
        if line.startswith("TCP Conversations"):
            proto = "tcp"
        elif line.startswith("UDP Conversations"):
            proto = "udp"
        elif line.startswith("SCTP Conversations"):
            proto = "sctp"
        elif "<->" in line and proto:
            left, right = line.split("<->")
            a = left.strip()
            cols = right.split()
            b = cols[0]
            nums = cols[1:]

            # "<-" frames, bytes + unit, "->" frames, bytes + unit, ...
            def take(ns):
                frames = int(ns[0].replace(",", ""))
                skip = 2 if ns[2] in ("bytes", "kB", "MB", "GB") else 1
                return frames, ns[1 + skip:]

            back, rest = take(nums)
            fwd, rest = take(rest)
            ha, pa = a.rsplit(":", 1)
            hb, pb = b.rsplit(":", 1)
            out_rows.append("\t".join([proto, ha, pa, hb, pb, str(fwd), str(back)]))
    with open(os.path.join(out, "conv.tsv"), "w") as f:
        f.write("\n".join(out_rows) + ("\n" if out_rows else ""))
    with open(os.path.join(out, "status"), "w") as f:
        f.write(status + "\n")


if __name__ == "__main__":
    main()
