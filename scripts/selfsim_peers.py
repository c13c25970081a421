#!/usr/bin/env python3
"""Times the Python peers on the same series as examples/bench_estimators.

Usage: selfsim_peers.py SERIES_FILE [--dfa]   (one value per line)
Peers: nolds.dfa (order 1), nolds.hurst_rs, hurst.compute_Hc (kind='change'),
and a plain numpy Local Whittle (M = N^0.65, Robinson 1995) written here.
Each is run once; nolds DFA (over a minute on 2^20 values) only with --dfa.
"""
import sys
import time

import numpy as np


def local_whittle(x, m_exp=0.65):
    n = len(x)
    m = int(n ** m_exp)
    per = np.abs(np.fft.rfft(x - x.mean())[1 : m + 1]) ** 2 / (2 * np.pi * n)
    lam = 2 * np.pi * np.arange(1, m + 1) / n
    z = np.log(lam) - np.log(lam).mean()
    grid = np.linspace(0.01, 1.49, 149)
    r = [np.log(np.mean(np.exp((2 * h - 1) * z) * per)) for h in grid]
    h0 = grid[int(np.argmin(r))]
    fine = np.linspace(h0 - 0.01, h0 + 0.01, 201)
    r = [np.log(np.mean(np.exp((2 * h - 1) * z) * per)) for h in fine]
    return fine[int(np.argmin(r))]


def timed(label, f):
    # Wall and process CPU time: on a shared machine wall time also counts
    # time other processes held the core.
    t = time.perf_counter()
    c = time.process_time()
    h = f()
    dc = time.process_time() - c
    dt = time.perf_counter() - t
    print(f"{label:<28} wall {dt * 1e3:>10.1f} ms   cpu {dc * 1e3:>10.1f} ms   H = {h:.4f}", flush=True)


def main():
    x = np.loadtxt(sys.argv[1])
    print(f"N = {len(x)}")
    import hurst
    import nolds

    timed("numpy local whittle", lambda: local_whittle(x))
    timed("nolds.hurst_rs", lambda: nolds.hurst_rs(x))
    timed("hurst.compute_Hc", lambda: hurst.compute_Hc(x, kind="change")[0])
    if "--dfa" in sys.argv:
        timed("nolds.dfa (order 1)", lambda: nolds.dfa(x, order=1))


if __name__ == "__main__":
    main()
