"""Benchmark of the symbolic engine (a script, not a timed test).

    python -m derive.bench [--repeat K] [--write docs/benchmarks.md]

Times, in this process (interpreter start and imports excluded), the engine
targets of the project: the 4th-order Isserlis lemma (target < 0.05 s), the
6th-order moment E[x xᵀA x xᵀB x xᵀ] (< 0.3 s), the three-sum moment
E[S A S B S] with S = Σᵢ xᵢxᵢᵀ (< 1 s), and the whole LSA chain of
``python -m derive.lsa_optimum`` from scratch (< 5 s).  The first (cold) run
and the median of ``--repeat`` runs are reported; ``--write`` replaces the
section between ``<!-- derive.bench:start -->`` and ``<!-- derive.bench:end -->``.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time

from derive.cli import OneLineParser, run
from derive.polynomial import expectation

MOMENTS = [
    ("E[x xᵀ A x xᵀ]", "x @ x.T @ A @ x @ x.T", 0.05),
    ("E[x xᵀ A x xᵀ B x xᵀ]", "x @ x.T @ A @ x @ x.T @ B @ x @ x.T", 0.3),
    ("E[S A S B S], three index sums",
     "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) @ B @ sum(k, x[k] @ x[k].T) / N**3", 1.0),
]


def _time(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times)


def lsa_chain():
    """Every step of derive.lsa_optimum, caches cleared first."""
    from derive import lsa_optimum as lsa

    for cached in (lsa.prediction, lsa.full_loss, lsa.reduction, lsa.optimum, lsa.flow):
        cached.cache_clear()
    for result in lsa.RESULTS:
        result.derive()


def measure(repeat: int) -> list[tuple[str, float, float, float]]:
    rows = []
    for label, text, target in MOMENTS:
        cold, median = _time(lambda: expectation(text, gaussians={"x": "Lambda"}), repeat)
        rows.append((label, cold, median, target))
    cold, median = _time(lsa_chain, max(1, repeat // 5))
    rows.append(("LSA chain (python -m derive.lsa_optimum, all steps)", cold, median, 5.0))
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


def report(rows) -> str:
    import os

    lines = ["<!-- derive.bench:start -->", "## Symbolic engine (`python -m derive.bench`)", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"sympy {__import__('sympy').__version__}. Engine time in-process, imports excluded; later runs profit "
             "from sympy's cache, so the first run is the honest number.", "",
             "| computation | first run (s) | median (s) | target (s) | within target |", "|---|---|---|---|---|"]
    for label, cold, median, target in rows:
        lines.append(f"| {label} | {cold:.4f} | {median:.4f} | {target} | {'yes' if cold < target else 'NO'} |")
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
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--write", metavar="PATH", help="update this Markdown file's derive.bench section")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        raise ValueError("--repeat must be at least 1")
    section = report(measure(args.repeat))
    print(section)
    if args.write:
        write_section(args.write, section, "<!-- derive.bench:start -->", "<!-- derive.bench:end -->")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
