#!/usr/bin/env python3
"""Two models generating on two threads versus one after the other (no global lock).

    python3 python/tools/parallel.py [--tokens 300] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

import upg


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    kw = dict(temperature=0, max_tokens=a.tokens, ignore_eos=True)
    with upg.Model(threads=a.threads) as x, upg.Model(threads=a.threads) as y:
        want = [x.generate("package main", **kw), y.generate("package main", **kw)]
        for _ in range(a.repeats):
            c, t = cpu(), time.perf_counter()
            x.generate("package main", **kw)
            y.generate("package main", **kw)
            seq, seq_cpu = time.perf_counter() - t, cpu() - c
            out = [None, None]

            def go(i, m):
                out[i] = m.generate("package main", **kw)

            ths = [threading.Thread(target=go, args=(i, m)) for i, m in enumerate((x, y))]
            c, t = cpu(), time.perf_counter()
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            par, par_cpu = time.perf_counter() - t, cpu() - c
            assert out == want
            print(f"sequential {seq:.3f}s (CPU {seq_cpu:.3f}s)   two threads {par:.3f}s (CPU {par_cpu:.3f}s)   "
                  f"ratio {par / seq:.2f}", flush=True)


if __name__ == "__main__":
    main()
