"""Cold timings of the same Gaussian moments in two checkouts of the project (a benchmark script, not a test).

    git worktree add --detach /tmp/before 3b9f785     # the engine before derive/engine/
    python docs/compare_engines.py /tmp/before .

Each moment (x ~ N(0, Λ)) is computed three times per checkout, each time in a fresh process
(imports excluded from the timing), with ``derive.polynomial.expectation`` in the first checkout and
``derive.engine.pipeline.expect`` in the second; prints a Markdown table of the medians.
"""

import statistics
import subprocess
import sys

MOMENTS = [
    ("E[x xᵀ A x xᵀ] (4th order)", "x @ x.T @ A @ x @ x.T"),
    ("E[x xᵀ A x xᵀ B x xᵀ] (6th order)", "x @ x.T @ A @ x @ x.T @ B @ x @ x.T"),
    ("E[S A S B S], three index sums",
     "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) @ B @ sum(k, x[k] @ x[k].T) / N**3"),
    ("E[(xᵀx)⁶] (12th order)", "(x.T @ x)**6"),
    ("E[(xᵀAx)⁶] (12th order, a matrix A)", "(x.T @ A @ x)**6"),
    ("E[(xᵀx)⁷] (14th order)", "(x.T @ x)**7"),
]
PROGRAM = ("import time\nfrom {module} import {function} as expect\nstart = time.perf_counter()\n"
           "expect({text!r}, gaussians={{'x': 'Lambda'}})\nprint(time.perf_counter() - start)")
TIMEOUT = 300.0


def cold(checkout: str, module: str, function: str, text: str) -> float:
    program = PROGRAM.format(module=module, function=function, text=text)
    done = subprocess.run([sys.executable, "-c", program], cwd=checkout, capture_output=True, text=True,
                          timeout=TIMEOUT, env={"PYTHONPATH": checkout, "PATH": "/usr/bin:/bin"})
    if done.returncode:
        raise SystemExit(f"error: {checkout}: {done.stderr.strip().splitlines()[-1]}")
    return float(done.stdout.split()[-1])


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python docs/compare_engines.py BEFORE_CHECKOUT AFTER_CHECKOUT")
    before, after = sys.argv[1:]
    print("| computation | before: median of 3 (s) | after: median of 3 (s) | speed-up |")
    print("|---|---:|---:|---:|")
    for label, text in MOMENTS:
        old = statistics.median(cold(before, "derive.polynomial", "expectation", text) for _ in range(3))
        new = statistics.median(cold(after, "derive.engine.pipeline", "expect", text) for _ in range(3))
        print(f"| {label} | {old:.3g} | {new:.3g} | {old / new:.2g}× |", flush=True)


if __name__ == "__main__":
    main()
