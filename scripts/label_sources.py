#!/usr/bin/env python3
"""Where the classes of ../shared/data/labelled/labels.csv come from.

Each row is a flow with nDPI's verdict (`ndpi`: "master.app" or one
protocol, e.g. `91.133/TLS.NetFlix`) and the class the label set's README
maps it to. This splits the flows by what a classifier that never sees the
held-out capture needs to know to get the class right:

- by protocol: the class is what the master protocol alone gives under the
  README's mapping (a listed VoIP or video protocol, else HTTP/TLS/QUIC ->
  web, else other), so detecting the protocol is enough;
- service seen in another capture: the class depends on the service (the
  part after the dot), and the same service has that class in some other
  capture, so a model held out by capture file can learn it;
- service in this capture only: the class depends on a service no other
  capture holds; only prior knowledge of that service (a catalogue, or
  nDPI's own host lists) can get it right.

Usage: python3 scripts/label_sources.py [labels.csv]
"""
import collections
import csv
import sys

VOIP = set("RTP RTCP SIP Skype Teams Zoom Webex GoogleCall WhatsAppCall Discord "
           "Signal Viber H323 IAX MGCP STUN".split())
VIDEO = set("YouTube NetFlix Twitch DAZN HLS RTMP RTSP Zattoo iQIYI AmazonVideo Disney".split())


def by_protocol(master):
    if master in VOIP:
        return "voip"
    if master in VIDEO:
        return "video"
    if master in ("HTTP", "TLS", "QUIC"):
        return "web"
    return "other"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/labelled/labels.csv"
    rows = list(csv.DictReader(open(path)))
    seen = collections.defaultdict(set)  # (service, class) -> captures
    parsed = []
    for r in rows:
        name = r["ndpi"].split("/", 1)[1]
        master, _, app = name.partition(".")
        service = app or master
        parsed.append((r["pcap"], master, service, r["class"], name))
        seen[(service, r["class"])].add(r["pcap"])
    kinds = ["by protocol", "service seen in another capture", "service in this capture only"]
    counts = collections.Counter()
    only = collections.Counter()
    for pcap, master, service, cls, name in parsed:
        if by_protocol(master) == cls:
            kind = kinds[0]
        elif seen[(service, cls)] - {pcap}:
            kind = kinds[1]
        else:
            kind = kinds[2]
            only[(pcap, name, cls)] += 1
        counts[(kind, cls)] += 1
    classes = sorted({p[3] for p in parsed})
    print(f"{len(parsed)} labelled flows")
    print(f"{'':34}" + "".join(f"{c:>8}" for c in classes) + f"{'all':>8}")
    for k in kinds:
        n = [counts[(k, c)] for c in classes]
        print(f"{k:34}" + "".join(f"{v:>8}" for v in n) + f"{sum(n):>8}")
    print("\nservices in one capture only, by flows:")
    for (pcap, name, cls), n in only.most_common():
        print(f"{n:5}  {pcap:36} {name:28} {cls}")


if __name__ == "__main__":
    main()
