"""Benchmark of the symbolic engine (a script, not a timed test).

    python -m derive.bench [--repeat K] [--write docs/benchmarks.md] [--format text|json]

For each computation, two figures:

* **cold**: the first call in a fresh Python process (a subprocess; imports
  excluded, so it is the engine's own time with empty caches);
* **warm**: the median of ``--repeat`` further calls in one process (sympy's
  and the engine's memo caches filled).

The computations are the moments the project's results stand on (4th and 6th
order Isserlis, the three-sum E[S A S B S]), the 12th- and 14th-order moments
E[(xᵀx)⁶], E[(xᵀx)⁷] and E[(xᵀAx)⁶], and the whole LSA chain of
``python -m derive.lsa_optimum``.  Targets: 12th order under 0.5 s warm, 14th
under 10 s.  ``--write`` replaces the section between
``<!-- derive.bench:start -->`` and ``<!-- derive.bench:end -->``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

from derive.cli import OneLineParser, UsageError, run

# (label, expression with x ~ N(0, Lambda), warm target in seconds or None, cold target or None)
MOMENTS = [
    ("E[x xᵀ A x xᵀ] (4th order)", "x @ x.T @ A @ x @ x.T", 0.05, None),
    ("E[x xᵀ A x xᵀ B x xᵀ] (6th order)", "x @ x.T @ A @ x @ x.T @ B @ x @ x.T", 0.3, None),
    ("E[S A S B S], three index sums", "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) @ B "
     "@ sum(k, x[k] @ x[k].T) / N**3", 1.0, None),
    ("E[(xᵀx)⁶] (12th order)", "(x.T @ x)**6", 0.5, None),
    ("E[(xᵀAx)⁶] (12th order, a matrix A)", "(x.T @ A @ x)**6", 0.5, None),
    ("E[(xᵀx)⁷] (14th order)", "(x.T @ x)**7", 10.0, 10.0),
]
LSA_LABEL = "LSA chain (all steps of python -m derive.lsa_optimum)"
LSA_TARGET = 5.0

_COLD_MOMENT = """
import time
from derive.engine.pipeline import expect
start = time.perf_counter()
expect({text!r}, gaussians={{"x": "Lambda"}})
print(time.perf_counter() - start)
"""
_COLD_LSA = """
import time
from derive import lsa_optimum
start = time.perf_counter()
for result in lsa_optimum.RESULTS:
    result.derive()
print(time.perf_counter() - start)
"""


def _fresh_process(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"})
    return float(out.stdout.strip().splitlines()[-1])


def _warm(fn, repeat: int) -> float:
    fn()  # fill the caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lsa_chain() -> None:
    """Every step of derive.lsa_optimum, its own caches cleared first (the engine's memo caches stay)."""
    from derive import lsa_optimum as lsa

    for cached in (lsa.prediction, lsa.full_loss, lsa.reduction, lsa.optimum, lsa.flow):
        cached.cache_clear()
    for result in lsa.RESULTS:
        result.derive()


def measure(repeat: int) -> list[dict]:
    from derive.engine.pipeline import expect

    rows = []
    for label, text, warm_target, cold_target in MOMENTS:
        cold = _fresh_process(_COLD_MOMENT.format(text=text))
        slow = cold > 2.0  # repeat slow ones less
        warm = _warm(lambda: expect(text, gaussians={"x": "Lambda"}), 1 if slow else repeat)
        rows.append({"label": label, "expression": text, "cold": cold, "warm": warm, "warm_target": warm_target,
                     "cold_target": cold_target})
    cold = _fresh_process(_COLD_LSA)
    warm = _warm(lsa_chain, max(1, repeat // 5))
    rows.append({"label": LSA_LABEL, "expression": None, "cold": cold, "warm": warm, "warm_target": LSA_TARGET,
                 "cold_target": LSA_TARGET})
    for row in rows:
        row["within_target"] = all(row[k] <= row[f"{k}_target"] for k in ("cold", "warm")
                                   if row[f"{k}_target"] is not None)
    return rows


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(rows: list[dict]) -> str:
    import sympy

    lines = ["<!-- derive.bench:start -->", "## Symbolic engine (`python -m derive.bench`)", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"sympy {sympy.__version__}. Cold: the first call in a fresh process (imports excluded); "
             "warm: the median of repeated calls in one process.", "",
             "| computation | cold (s) | warm (s) | target (s) | within target |", "|---|---|---|---|---|"]
    for row in rows:
        targets = ", ".join(f"{k} < {row[f'{k}_target']}" for k in ("warm", "cold") if row[f"{k}_target"] is not None)
        lines.append(f"| {row['label']} | {row['cold']:.4f} | {row['warm']:.4f} | {targets} | "
                     f"{'yes' if row['within_target'] else 'NO'} |")
    lines.append("<!-- derive.bench:end -->")
    return "\n".join(lines)


def write_section(path: str, section: str, start: str, end: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n\nMeasured numbers only; each section is written by the script it names.\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m derive.bench", description="Benchmark the symbolic engine.")
    parser.add_argument("--repeat", type=int, default=5, help="warm repetitions per computation")
    parser.add_argument("--write", metavar="PATH", help="update this Markdown file's derive.bench section")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    rows = measure(args.repeat)
    section = report(rows)
    print(json.dumps({"machine": cpu_name(), "cores": os.cpu_count(), "rows": rows}, indent=2)
          if args.format == "json" else section)
    if args.write:
        write_section(args.write, section, "<!-- derive.bench:start -->", "<!-- derive.bench:end -->")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
