r"""Calibration of the Monte Carlo z-tests: empirical false-alarm rates at lower thresholds.

Why: a check's per-sample values are products of up to six Gaussians (heavy tails),
and its 5-sigma false-alarm rate ``2 Phi(-5) ~ 5.7e-7`` is a normal approximation of
the sample mean, which the central limit theorem does not guarantee that far in the
tail.  A rate that small cannot be measured, but the approximation can be tested where
it can: at the lower thresholds ``k = 1.5, 2, 2.5, 3`` (nominal family-wise rates 13 %,
4.6 %, 1.2 %, 0.27 %), over many independent runs with the *true* formula.  A
heavy-tailed estimator shows up as an empirical rate above nominal there (skewness
makes the sample mean's tail and the standard error correlated).

Method.  For one check: the instance of ``seed``; ``runs`` independent estimates of
``samples`` samples each (one torch stream, consecutive chunks); each compared with the
exact value by :class:`numeric.montecarlo.ZTest` at every ``k`` (Bonferroni over the
check's stochastic entries, exactly as ``numeric.confirm`` does at ``k = 5``).  The
empirical rate is (false alarms) / runs, with a one-sided 95 % Clopper-Pearson upper
bound; Bonferroni makes the nominal an upper bound (entries are correlated), so a
calibrated check has ``upper bound >= rate`` and rate not far above nominal.

Run::

    python -m numeric.calibrate [IDS ...] [--runs R] [--fraction F] [--seed S] [--device auto|cpu|cuda]
                                [--format text|json]

``--fraction``: each run's sample count as a fraction of the check's ``ci_samples``
(default 0.5: a smaller sample than any the checks use, where tails matter more).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import beta as beta_dist

from numeric.montecarlo import ZTest, single_entry_alpha, stream_samples

LEVELS = (1.5, 2.0, 2.5, 3.0)


def clopper_pearson_upper(events: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a binomial rate.

    >>> round(clopper_pearson_upper(0, 100), 4)
    0.0295
    """
    if events >= trials:
        return 1.0
    return float(beta_dist.ppf(confidence, events + 1, trials - events))


def false_alarm_rates(check, runs: int = 200, samples: int | None = None, seed: int = 0, device="cpu",
                      levels=LEVELS) -> dict[str, Any]:
    """Empirical false-alarm rate of ``check`` (true formula) at each ``k`` in ``levels`` over ``runs`` runs."""
    device = torch.device(device) if not isinstance(device, torch.device) else device
    samples = int(samples or max(2, check.ci_samples // 2))
    instance = check.instance(np.random.default_rng(seed))
    exact = np.asarray(check.exact(instance), dtype=np.float64)
    reference = None if getattr(check, "scale", None) is None else float(check.scale(instance))
    alarms = {k: 0 for k in levels}
    start = time.perf_counter()
    max_z = []
    for r in range(runs):
        moments = stream_samples(check, instance, samples, device, seed * 1_000_003 + 7919 * r + 1, exact.shape)
        for k in levels:
            test = ZTest(moments.mean, moments.stderr, exact, samples, k, reference=reference)
            alarms[k] += bool(test.compare(exact).rejected)
        max_z.append(ZTest(moments.mean, moments.stderr, exact, samples, reference=reference).compare(exact).max_z)
    rows = [{"k": k, "nominal": single_entry_alpha(k), "rate": alarms[k] / runs, "alarms": alarms[k],
             "upper95": clopper_pearson_upper(alarms[k], runs)} for k in levels]
    return {"id": check.id, "description": check.description, "samples": samples, "runs": runs,
            "levels": rows, "largest_max_z": float(max(max_z)), "seconds": time.perf_counter() - start}


def calibrated(report: dict[str, Any], slack: float = 2.0) -> bool:
    """Whether the empirical rate is compatible with at most ``slack`` times nominal at every level: the
    number of false alarms does not exceed the 99.9 % quantile of Binomial(runs, slack * nominal)."""
    from scipy.stats import binom

    return all(row["alarms"] <= binom.ppf(0.999, report["runs"], min(1.0, slack * row["nominal"]))
               for row in report["levels"])


def markdown_table(reports: list[dict[str, Any]]) -> str:
    head = "| check | samples/run | runs | " + " | ".join(f"k = {k:g}: rate (nominal)" for k in LEVELS) + " |"
    lines = [head, "|" + "---|" * (3 + len(LEVELS))]
    for rep in reports:
        cells = [f"{row['rate']:.3f} ({row['nominal']:.3f})" for row in rep["levels"]]
        lines.append(f"| `{rep['id']}` {rep['description'][:60]} | {rep['samples']:,} | {rep['runs']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from derive.cli import OneLineParser, UsageError
    from numeric.checks import MonteCarloCheck, all_checks
    from numeric.device import resolve_device
    from numeric.options import add_common_options, integer_at_least, run_settings

    parser = OneLineParser(prog="python -m numeric.calibrate",
                           description="Empirical false-alarm rates of the Monte Carlo checks at k = 1.5..3 sigma.")
    parser.add_argument("ids", nargs="*", metavar="IDS", help="result ids (default: every Monte Carlo check)")
    parser.add_argument("--runs", type=integer_at_least(10, "--runs must be at least 10"), default=200)
    parser.add_argument("--fraction", type=float, default=0.5, help="samples per run / the check's ci_samples")
    add_common_options(parser)
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 10:
        raise UsageError(f"--fraction must be in (0, 10], got {args.fraction}")
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # as numeric.confirm: small tensors, one intra-op thread
    checks = [c for cs in all_checks().values() for c in cs if isinstance(c, MonteCarloCheck)]
    unknown = [i for i in args.ids if i not in {c.id for c in checks}]
    if unknown:
        raise UsageError(f"no Monte Carlo check for {unknown[0]!r}")
    if args.ids:
        checks = [c for c in checks if c.id in args.ids]
    reports = []
    for check in checks:
        samples = max(2, int(check.ci_samples * args.fraction))
        report = false_alarm_rates(check, args.runs, samples, args.seed, device)
        report["calibrated"] = calibrated(report)
        reports.append(report)
        print(f"{check.id}: " + ", ".join(f"k={r['k']:g} {r['rate']:.3f} ({r['nominal']:.3f})" for r in report["levels"])
              + f" [{report['seconds']:.0f} s]", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"settings": run_settings(args.seed, device, runs=args.runs, fraction=args.fraction),
                          "reports": reports}, indent=2))
    else:
        print(markdown_table(reports))
    return 0 if all(r["calibrated"] for r in reports) else 1


if __name__ == "__main__":
    from derive.cli import run

    sys.exit(run(main))
