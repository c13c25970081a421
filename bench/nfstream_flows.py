#!/usr/bin/env python3
"""Flow metering of a capture with nfstream (statistical features on), as a
peer for bench/run.sh. Prints `flows=N packets=M seconds=S`."""
import sys
import time

from nfstream import NFStreamer


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: nfstream_flows.py FILE [n_meters]")
    n_meters = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    t0 = time.perf_counter()
    flows = packets = 0
    streamer = NFStreamer(source=sys.argv[1], statistical_analysis=True, n_meters=n_meters)
    for f in streamer:
        flows += 1
        packets += f.bidirectional_packets
    print(f"flows={flows} packets={packets} seconds={time.perf_counter() - t0:.3f}")


if __name__ == "__main__":
    main()
