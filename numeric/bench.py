r"""Throughput of the Monte Carlo estimators, torch against a plain numpy version.

Usage::

    python -m numeric.bench [--device auto|cpu|cuda] [--seed S] [--format text|json] [--seconds S]
                            [--confirm] [--output docs/benchmarks.md] [--no-write]

Measured, in one run, on the CPU and (``auto`` with a GPU present, or ``cuda``)
on CUDA, each against a straightforward vectorized numpy implementation of the
same math timed in the same run:

* the Isserlis estimator of ``numeric.gaussian_moments`` (per sample
  ``(x^T A x) x x^T``, ``x ~ N(0, Lambda)``, d = 4), in samples per second;
* the LSA-loss estimator at d = 8, N = 16: per sample, a task ``w ~ N(0, I_d)``,
  a prompt ``x_1..x_N, x_q ~ N(0, I_d)`` with ``y_i = w^T x_i`` (noiseless), the
  linear-self-attention prediction ``yhat = x_q^T Gamma^{-1} (1/N) sum_i y_i x_i``
  at the optimum ``Gamma = (1 + 1/N) Lambda + tr(Lambda)/N I`` (Lambda = I), and
  the loss ``(yhat - w^T x_q)^2 / 2`` (mean ``tr(Lambda)/2 - tr(Lambda^2 Gamma^{-1})/2``,
  1.44 here).  Timed: :func:`lsa_loss_samples` here (direct, the same math as the
  numpy version), and, when ``numeric/lsa_optimum.py`` provides a usable
  ``lsa_loss_samples(d, N, batch, generator, device)``, its full forward pass
  (``method="brute"``) and its default conditional (variance-reduced) estimator;
* the wall time for the streaming mean of the LSA loss to reach relative
  standard error ``1e-3`` (``stderr / |mean|``), with the samples it took;
* the estimators the checks use: the sixth moment with the radius integrated
  out (``numeric.gaussian_moments.sample_isserlis_6``, d = 3, samples/s) and the
  LSA loss given the context (``numeric.lsa_optimum.context_loss_samples``,
  d = 3, N = 4, prompts/s: each sample integrates a prompt's task and query out);
* with ``--confirm``: ``python -m numeric.confirm`` (defaults) in a child
  process, its wall time and peak resident memory (``getrusage`` of the child),
  with ``--device`` passed on (``cpu`` for ``auto`` on a machine without a GPU).

Rates are medians over repeats of about ``--seconds`` of batches each, after a
warm-up batch; CUDA timings synchronize the device.  The Markdown report is
printed and written into ``docs/benchmarks.md`` between the markers
``<!-- numeric.bench:start -->`` and ``<!-- numeric.bench:end -->`` (the file
is created if missing; everything outside the markers is kept).
"""

from __future__ import annotations

import functools
import json
import subprocess
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from numeric.device import resolve_device
from numeric.montecarlo import StreamingMoments

START_MARKER = "<!-- numeric.bench:start -->"
END_MARKER = "<!-- numeric.bench:end -->"
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
LSA_D, LSA_N = 8, 16
TARGET_REL_STDERR = 1e-3
ISSERLIS_D = 4


# ------------------------------------------------------------------ estimators
def isserlis_instance(d: int = ISSERLIS_D, seed: int = 0) -> dict[str, np.ndarray]:
    from numeric.gaussian_moments import make_instance

    return make_instance(d)(np.random.default_rng(seed))


def isserlis_torch(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The plain per-draw estimator (the same math as :func:`isserlis_numpy`; the check itself integrates
    the radius out, timed separately in :func:`check_estimators`)."""
    from numeric.gaussian_moments import BRUTE_SAMPLERS

    return BRUTE_SAMPLERS["gaussian.isserlis_4"](instance, batch, generator, device)


def isserlis_numpy(instance, batch: int, rng: np.random.Generator) -> np.ndarray:
    """The same estimator written directly in numpy: ``(x^T A x) x x^T`` per sample."""
    chol = np.linalg.cholesky(instance["Lambda"])
    x = rng.standard_normal((batch, chol.shape[0])) @ chol.T
    q = np.einsum("bi,ij,bj->b", x, instance["A"], x)
    return q[:, None, None] * x[:, :, None] * x[:, None, :]


def lsa_optimal_gamma_inverse(d: int, N: int) -> np.ndarray:
    """``Gamma^{-1}`` with ``Gamma = (1 + 1/N) I + (d/N) I`` (Lambda = I)."""
    return np.eye(d) / (1.0 + 1.0 / N + d / N)


def lsa_loss_samples(d: int, N: int, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Per-prompt squared-error loss of the optimal LSA predictor, shape ``(batch,)``, float64.

    ``w ~ N(0, I_d)``, ``x_i, x_q ~ N(0, I_d)``, ``y_i = w^T x_i``;
    ``loss = (x_q^T Gamma^{-1} (1/N) sum_i y_i x_i - w^T x_q)^2 / 2``.
    """
    gamma_inv = torch.as_tensor(lsa_optimal_gamma_inverse(d, N), dtype=torch.float64, device=device)
    w = torch.randn((batch, d), generator=generator, device=device, dtype=torch.float64)
    x = torch.randn((batch, N + 1, d), generator=generator, device=device, dtype=torch.float64)
    x_context, x_query = x[:, :N, :], x[:, N, :]
    y_context = torch.einsum("bnd,bd->bn", x_context, w)
    h = torch.einsum("bn,bnd->bd", y_context, x_context) / N
    prediction = torch.einsum("bd,de,be->b", x_query, gamma_inv, h)
    loss = 0.5 * (prediction - (x_query * w).sum(dim=1)) ** 2
    assert loss.shape == (batch,)
    return loss


def lsa_loss_numpy(d: int, N: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`lsa_loss_samples` written directly in numpy."""
    gamma_inv = lsa_optimal_gamma_inverse(d, N)
    w = rng.standard_normal((batch, d))
    x = rng.standard_normal((batch, N + 1, d))
    x_context, x_query = x[:, :N, :], x[:, N, :]
    y_context = np.einsum("bnd,bd->bn", x_context, w)
    h = np.einsum("bn,bnd->bd", y_context, x_context) / N
    prediction = np.einsum("bd,de,be->b", x_query, gamma_inv, h)
    return 0.5 * (prediction - (x_query * w).sum(axis=1)) ** 2


def _usable(sampler: Callable[..., torch.Tensor], **options) -> bool:
    """Whether a two-sample call with this module's signature returns a float64 tensor of shape (2,)."""
    try:
        probe = sampler(LSA_D, LSA_N, 2, torch.Generator().manual_seed(0), torch.device("cpu"), **options)
    except Exception:
        return False
    return isinstance(probe, torch.Tensor) and tuple(probe.shape) == (2,) and probe.dtype == torch.float64


def lsa_estimators() -> list[tuple[str, Callable[..., torch.Tensor], bool]]:
    """(label, sampler, time it to the 1e-3 target) for every torch LSA-loss estimator to benchmark.

    Always this module's direct implementation (the same math as the numpy
    one); plus, when ``numeric.lsa_optimum`` provides a usable
    ``lsa_loss_samples``, its full forward pass (``method="brute"``,
    throughput only) and its default (conditional, variance-reduced) estimator.
    """
    found = [("torch, direct (`numeric.bench`)", lsa_loss_samples, True)]
    try:
        from numeric import lsa_optimum  # type: ignore[attr-defined]
    except ImportError:
        return found
    sampler = getattr(lsa_optimum, "lsa_loss_samples", None)
    if not callable(sampler):
        return found
    if _usable(sampler, method="brute"):
        found.append(("torch, full forward pass (`numeric.lsa_optimum`, brute)",
                      functools.partial(sampler, method="brute"), False))
    if _usable(sampler):
        found.append(("torch, conditional estimator (`numeric.lsa_optimum`)", sampler, True))
    return found


CHECK_BATCH = 20_000


def check_estimators(generator: torch.Generator, device: torch.device):
    """(estimator, implementation, draw(batch)) for the estimators the checks of numeric.confirm use."""
    from numeric import gaussian_moments, lsa_optimum

    sixth = gaussian_moments.make_instance(3, with_b=True)(np.random.default_rng(0))
    lsa_instance = lsa_optimum.instance_maker("full")(np.random.default_rng(0))
    return [
        ("Isserlis 6th moment (d = 3), radius integrated out", "torch (`gaussian_moments.sample_isserlis_6`)",
         lambda batch: gaussian_moments.sample_isserlis_6(sixth, batch, generator, device)),
        ("LSA loss given the context (d = 3, N = 4), prompts/s", "torch (`lsa_optimum.context_loss_samples`)",
         lambda batch: lsa_optimum.context_loss_samples(lsa_instance, batch, generator, device)),
    ]


_PEAK_MARKER = "numeric.bench peak KiB:"
# the child reports its own high-water mark (VmHWM of /proc/self/status belongs to the process image after
# exec; getrusage's maxrss would include the forked copy of this process)
_CHILD = ("import runpy, sys\n"
          "sys.argv = ['numeric.confirm'] + sys.argv[1:]\n"
          "try:\n"
          "    runpy.run_module('numeric.confirm', run_name='__main__')\n"
          "finally:\n"
          "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
          f"    print('{_PEAK_MARKER}', hwm[0].split()[1] if hwm else 'nan', file=sys.stderr)\n")


def measure_confirm(device: str) -> dict:
    """Run ``python -m numeric.confirm --device DEVICE`` (defaults) in a child process: wall time, peak RSS
    (the child's own VmHWM), status."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, "--device", device], cwd=root, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = [line.split(":", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith(_PEAK_MARKER)]
    peak_mb = float(peak[-1]) * 1024 / 1e6 if peak and peak[-1] != "nan" else float("nan")
    summary = [line for line in done.stdout.splitlines() if "confirmed" in line]
    return {"device": device, "wall_seconds": wall, "peak_rss_mb": peak_mb, "exit_status": done.returncode,
            "summary": summary[-1] if summary else done.stderr.strip()[-200:]}


def machine_description() -> str:
    """CPU model (lscpu) and the number of cores (nproc)."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores (nproc)"


# --------------------------------------------------------------------- timing
def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def samples_per_second(draw: Callable[[], object], batch: int, seconds: float, device: torch.device | None,
                       repeats: int = 3) -> float:
    """Median over ``repeats`` of the rate of ``draw()`` (one batch each) run for about ``seconds / repeats``."""
    draw()  # warm-up (allocations, kernels)
    _sync(device)
    rates = []
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while True:
            draw()
            count += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / repeats:
                break
        rates.append(count * batch / elapsed)
    return statistics.median(rates)


def time_to_relative_stderr(draw: Callable[[], torch.Tensor | np.ndarray], device: torch.device | None,
                            target: float = TARGET_REL_STDERR, max_seconds: float = 300.0) -> dict[str, float | bool]:
    """Stream batches of ``draw()`` until ``stderr / |mean| <= target``; wall time and samples used."""
    moments = StreamingMoments(())
    _sync(device)
    start = time.perf_counter()
    reached = False
    while time.perf_counter() - start < max_seconds:
        moments.update(draw())
        if moments.count >= 2:
            mean, stderr = float(moments.mean), float(moments.stderr)
            if stderr <= target * abs(mean):
                reached = True
                break
    _sync(device)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "samples": moments.count, "mean": float(moments.mean),
            "rel_stderr": float(moments.stderr) / abs(float(moments.mean)), "reached": reached}


# --------------------------------------------------------------------- report
def devices_for(name: str) -> list[torch.device]:
    if name.strip().lower() == "auto":
        found = [torch.device("cpu")]
        if torch.cuda.is_available():
            found.append(torch.device("cuda"))
        return found
    return [resolve_device(name)]


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def run_benchmarks(devices: list[torch.device], seconds: float = 1.0, isserlis_batch: int = 200_000,
                   lsa_batch: int = 100_000, target_batch: int = 25_000, target_max_seconds: float = 300.0) -> str:
    """Run every measurement and return the Markdown section (without markers)."""
    instance = isserlis_instance()
    lsa_variants = lsa_estimators()
    isserlis_name = f"Isserlis 4th moment (d = {ISSERLIS_D})"
    lsa_name = f"LSA loss (d = {LSA_D}, N = {LSA_N})"
    rows: list[tuple[str, str, str, int, float]] = []

    rng = np.random.default_rng(0)
    numpy_rate = {
        isserlis_name: samples_per_second(lambda: isserlis_numpy(instance, isserlis_batch, rng),
                                          isserlis_batch, seconds, None),
        lsa_name: samples_per_second(lambda: lsa_loss_numpy(LSA_D, LSA_N, lsa_batch, rng), lsa_batch, seconds, None),
    }
    rows.append((isserlis_name, "numpy", "cpu", isserlis_batch, numpy_rate[isserlis_name]))
    rows.append((lsa_name, "numpy, direct", "cpu", lsa_batch, numpy_rate[lsa_name]))
    target_rows = [("numpy, direct", "cpu", time_to_relative_stderr(
        lambda: lsa_loss_numpy(LSA_D, LSA_N, target_batch, rng), None, max_seconds=target_max_seconds))]

    for device in devices:
        label = _device_label(device)
        generator = torch.Generator(device=device)
        generator.manual_seed(0)
        rate = samples_per_second(lambda: isserlis_torch(instance, isserlis_batch, generator, device),
                                  isserlis_batch, seconds, device)
        rows.append((isserlis_name, "torch", label, isserlis_batch, rate))
        for estimator, implementation, draw in check_estimators(generator, device):
            rate = samples_per_second(lambda: draw(CHECK_BATCH), CHECK_BATCH, seconds, device)
            rows.append((estimator, implementation, label, CHECK_BATCH, rate))
        for implementation, sampler, to_target in lsa_variants:
            rate = samples_per_second(lambda: sampler(LSA_D, LSA_N, lsa_batch, generator, device),
                                      lsa_batch, seconds, device)
            rows.append((lsa_name, implementation, label, lsa_batch, rate))
            if to_target:
                target_generator = torch.Generator(device=device)
                target_generator.manual_seed(1)
                target_rows.append((implementation, label, time_to_relative_stderr(
                    lambda: sampler(LSA_D, LSA_N, target_batch, target_generator, device), device,
                    max_seconds=target_max_seconds)))

    lines = [
        "## Monte Carlo estimators (`python -m numeric.bench`)",
        "",
        f"Generated on {time.strftime('%Y-%m-%d')}: {machine_description()}, "
        f"torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}; float64 "
        "throughout. Rates are medians of 3 repeats after a warm-up batch (CUDA synchronized). The LSA loss "
        "is the per-prompt loss of the optimal one-layer LSA at Lambda = I; the direct and full-forward "
        "estimators simulate it from its definition, the conditional one integrates part of the prompt "
        "out analytically (same mean, smaller variance).",
        "",
        "| estimator | implementation | device | batch | samples/s | vs numpy |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for estimator, implementation, device_label, batch, rate in rows:
        versus = f"{rate / numpy_rate[estimator]:.2f}x" if estimator in numpy_rate else "-"
        lines.append(f"| {estimator} | {implementation} | {device_label} | {batch:,} | {rate:,.0f} | {versus} |")
    lines += [
        "",
        f"Wall time for the streaming mean of the LSA loss (d = {LSA_D}, N = {LSA_N}) to reach relative "
        f"standard error {TARGET_REL_STDERR:g} (batches of {target_batch:,}, checked after each):",
        "",
        "| implementation | device | seconds | samples | mean loss | relative stderr | per-sample rel. std |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for implementation, device_label, result in target_rows:
        seconds_text = f"{result['seconds']:.2f}" if result["reached"] else f"> {result['seconds']:.0f} (not reached)"
        per_sample = result["rel_stderr"] * np.sqrt(result["samples"])
        lines.append(f"| {implementation} | {device_label} | {seconds_text} | {int(result['samples']):,} | "
                     f"{result['mean']:.5f} | {result['rel_stderr']:.2e} | {per_sample:.3f} |")
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the text between the bench markers in ``path`` (create the file / append the section if needed)."""
    block = f"{START_MARKER}\n{section.rstrip()}\n{END_MARKER}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Benchmarks\n\n{block}\n", encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(END_MARKER):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from derive.cli import OneLineParser, UsageError
    from numeric.options import add_common_options, run_settings

    parser = OneLineParser(prog="python -m numeric.bench", description="Benchmark the Monte Carlo estimators.")
    add_common_options(parser, seed_help="seed of the instances and the samples")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing budget per rate measurement")
    parser.add_argument("--confirm", action="store_true",
                        help="also time python -m numeric.confirm (defaults) in a child process: wall time, peak memory")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the report only")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        raise UsageError("--seconds must be positive")
    devices = devices_for(args.device)
    torch.manual_seed(args.seed)
    section = run_benchmarks(devices, seconds=args.seconds)
    confirm_runs = []
    if args.confirm:
        for device in devices:
            confirm_runs.append(measure_confirm(device.type))
        section += "\n\n`python -m numeric.confirm` (defaults, a child process; one CPU thread on the CPU):\n\n"
        section += "| device | wall time (s) | peak RSS (MB) | result |\n| --- | ---: | ---: | --- |\n"
        section += "\n".join(f"| {r['device']} | {r['wall_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['summary']} |"
                              for r in confirm_runs)
    if args.format == "json":
        print(json.dumps({"settings": run_settings(args.seed, ",".join(str(d) for d in devices),
                                                   seconds=args.seconds, machine=machine_description()),
                          "markdown": section, "confirm": confirm_runs}, indent=2))
    else:
        print(section)
    if not args.no_write:
        write_section(args.output, section)
        print(f"\n(written to {args.output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from derive.cli import run

    sys.exit(run(main))
