#!/usr/bin/env python3
"""Decode speed of upg.Model.stream against the command line's, on the same model.

    python3 python/tools/bench_stream.py --cli ./upg [--model M] [--tokens 512] [--repeats 5] [--threads N]

For each repeat (the two runs interleaved, so that drift affects both alike):
  - CLI: `upg run --temperature 0 --ignore-eos --max-tokens N PROMPT`; its own
    decode tok/s (generated-1 tokens over the time from the first token to the end);
  - Python: the same request through Model.stream, timed by the consumer
    (perf_counter from the first piece received to the last): what a Python
    program sees, every crossing of the C boundary included; the engine's own
    figure for that run is printed beside it.
Wall-clock rates need a quiet machine. The CPU time per decoded token does not:
it is measured as the CPU time (user + system, all threads) of a run of N tokens
minus that of a run of 1 token, over N-1, for the CLI (the child process) and for
Python (this process: Go's threads and the Python thread together).
Prints the medians and Python/CLI.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import time

import upg


def cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True, help="upg binary")
    ap.add_argument("--model", default=None, help="model path (default: the bundled demo model)")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--prompt", default="package main")
    a = ap.parse_args()
    model = a.model or str(upg.demo_model_path())
    def cli_args(n: int) -> list[str]:
        args = [a.cli, "run", "--model", model, "--temperature", "0", "--ignore-eos", "--max-tokens", str(n)]
        if a.threads:
            args += ["--threads", str(a.threads)]
        return [*args, a.prompt]

    cli_rates, py_rates, engine_rates, cli_cpu, py_cpu = [], [], [], [], []

    def cli_cpu_run(n: int) -> float:
        c = cpu(resource.RUSAGE_CHILDREN)
        subprocess.run(cli_args(n), capture_output=True, check=True)
        return cpu(resource.RUSAGE_CHILDREN) - c

    def py_cpu_run(m: upg.Model, n: int) -> float:
        c = cpu(resource.RUSAGE_SELF)
        for _ in m.stream(a.prompt, temperature=0, ignore_eos=True, max_tokens=n):
            pass
        return cpu(resource.RUSAGE_SELF) - c

    with upg.Model(model, threads=a.threads) as m:
        list(m.stream(a.prompt, temperature=0, ignore_eos=True, max_tokens=a.tokens))  # warm-up
        for r in range(a.repeats):
            p = subprocess.run(cli_args(a.tokens), capture_output=True, text=True, check=True)
            cli = float(re.search(r"decode ([0-9.]+) tok/s", p.stderr).group(1))  # type: ignore[union-attr]
            s = m.stream(a.prompt, temperature=0, ignore_eos=True, max_tokens=a.tokens)
            first = None
            text = []
            for piece in s:
                if first is None:
                    first = time.perf_counter()
                text.append(piece)
            end = time.perf_counter()
            assert s.stats is not None and first is not None
            assert "".join(text) == p.stdout, "Python and the CLI generated different text"
            py = (s.stats["generated_tokens"] - 1) / (end - first)
            cli_cpu.append((cli_cpu_run(a.tokens) - cli_cpu_run(1)) / (a.tokens - 1))
            py_cpu.append((py_cpu_run(m, a.tokens) - py_cpu_run(m, 1)) / (a.tokens - 1))
            cli_rates.append(cli)
            py_rates.append(py)
            engine_rates.append(s.stats["decode_tok_s"])
            print(f"repeat {r + 1}: CLI {cli:8.1f} tok/s   Python stream {py:8.1f} tok/s   "
                  f"(engine inside Python {s.stats['decode_tok_s']:.1f}; {s.stats['generated_tokens']} tokens)   "
                  f"CPU/token: CLI {1e3 * cli_cpu[-1]:.3f} ms, Python {1e3 * py_cpu[-1]:.3f} ms", flush=True)
        info = m.info
    c, p_, e = statistics.median(cli_rates), statistics.median(py_rates), statistics.median(engine_rates)
    print(f"\n{info['path']} ({info['threads']} threads, kv {info['kv_cache']}), {a.tokens} tokens, median of {a.repeats}:")
    print(f"  CLI decode           {c:8.1f} tok/s")
    print(f"  Python stream        {p_:8.1f} tok/s   ({100 * p_ / c:.1f}% of the CLI)")
    print(f"  engine inside Python {e:8.1f} tok/s")
    cc, pc = statistics.median(cli_cpu), statistics.median(py_cpu)
    print(f"  CPU time per decoded token: CLI {1e3 * cc:.3f} ms, Python stream {1e3 * pc:.3f} ms "
          f"({100 * (pc / cc - 1):+.1f}%)")


if __name__ == "__main__":
    main()
