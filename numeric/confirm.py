"""Confirm every registered derived result numerically.

Usage::

    python -m numeric.confirm [IDS ...] [--samples N] [--device auto|cpu|cuda]
                              [--seed S] [--format text|json]

    python -m numeric.confirm                              # everything, default sample counts
    python -m numeric.confirm gaussian.isserlis_4 --samples 200000 --format json

For each result of :func:`derive.registry.all_results` (or only ``IDS``) the
checks that :func:`numeric.checks.all_checks` finds for it are run:
a :class:`~numeric.checks.MonteCarloCheck` through
:func:`numeric.montecarlo.run_montecarlo` (sample mean vs. the derived value,
Bonferroni-corrected 5-sigma z-test, negative controls; see that module for the
statistics), a :class:`~numeric.checks.DeterministicCheck` through its own
``run(samples, device, seed)`` (``samples`` is ``None`` unless ``--samples`` is
given).  A registered result without a check is reported as *missing*, and a
check whose id is not a registered result as *unregistered*; both count as
failures.  ``--samples`` overrides every check's default count.

Kinds.  ``monte_carlo``: a sample mean against the derived value.  Each row states
its own ``detectable_rel_error`` (the smallest relative error of the checked
quantity it detects, see :mod:`numeric.montecarlo`), its negative controls with
their observed z and their *expected gap* (in standard errors, and as a multiple
of the threshold).  At default sample counts (no ``--samples``) a Monte Carlo row
is confirmed only when it passed, has at least one negative control, every
control was rejected, ``detectable_rel_error <= 0.01`` and every control's
expected gap is at least 3x the threshold.  ``exact``: an identity or symmetry
checked to rounding by a :class:`~numeric.checks.DeterministicCheck`; no power is
reported and it is not counted as a Monte Carlo confirmation; its wrong variants
must fail inside ``run``.  ``experiment``: an ODE integration or a training run
with its own statistics.  Every check needs at least one negative control.

Output: ``text`` is a table, one row per check (id, kind, passed, max z,
threshold, samples, detectable relative error, seconds, device, controls
rejected, weakest control margin), then the failures and a count per kind;
``json`` is a list of objects with ``id``, ``kind``, ``passed``, ``ok``, ``seed``,
``z`` (per entry), ``max_z``, ``threshold``, ``samples``, ``mean``, ``exact``,
``stderr``, ``detectable_rel_error`` (null for exact rows), ``power_ok``,
``device``, ``seconds``, ``negative_controls`` (name -> rejected),
``negative_control_z``, ``negative_control_expected_z``,
``negative_control_margin`` (expected gap / threshold), ``description``,
``detail``; non-finite numbers are written as ``null``.  A progress bar is shown
on stderr (when it is a terminal) for runs longer than two seconds.

Exit status: 0 when every check is confirmed, 1 otherwise, 2 on bad input
(unknown id, ``--samples`` < 2, unknown device, ``cuda`` without a GPU),
reported as one line on stderr (:func:`derive.cli.run`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROG = "python -m numeric.confirm"


def build_parser():
    from derive.cli import OneLineParser
    from numeric.options import add_common_options

    parser = OneLineParser(prog=PROG, description="Confirm the registered derived results numerically.")
    parser.add_argument("ids", nargs="*", metavar="IDS", help="result ids to confirm (default: all)")
    add_common_options(parser, samples=True, seed_help="seed of the instances and the samples",
                       samples_help="samples per check (default: each check's own count; the power and "
                                    "control-margin targets are enforced only at the defaults)")
    return parser


@dataclass
class Row:
    """One line of the report: a check's outcome, or a missing/unregistered check."""

    id: str
    kind: str  # "monte_carlo" | "exact" | "experiment" | "missing" | "unregistered" | "error"
    passed: bool
    device: str
    seed: int = 0
    seconds: float = 0.0
    samples: int | None = None
    max_z: float | None = None
    threshold: float | None = None
    detectable_rel_error: float | None = None
    z: Any = None
    mean: Any = None
    exact: Any = None
    stderr: Any = None
    negative_controls: dict[str, bool] = field(default_factory=dict)
    negative_control_z: dict[str, float] = field(default_factory=dict)
    negative_control_expected_z: dict[str, float] = field(default_factory=dict)
    negative_control_margin: dict[str, float] = field(default_factory=dict)
    enforce_targets: bool = False  # default sample count: power <= 1 % and control margins >= 3 required
    description: str = ""
    detail: str = ""

    @property
    def controls_rejected(self) -> bool:
        """At least one negative control, and every one rejected."""
        return bool(self.negative_controls) and all(self.negative_controls.values())

    @property
    def power_ok(self) -> bool | None:
        if self.kind != "monte_carlo":
            return None
        from numeric.montecarlo import POWER_TARGET

        return self.detectable_rel_error is not None and self.detectable_rel_error <= POWER_TARGET

    @property
    def controls_strong(self) -> bool:
        from numeric.montecarlo import CONTROL_MARGIN

        return bool(self.negative_control_margin) and min(self.negative_control_margin.values()) >= CONTROL_MARGIN

    @property
    def ok(self) -> bool:
        good = self.passed and self.controls_rejected
        if self.kind == "monte_carlo" and self.enforce_targets:
            good = good and bool(self.power_ok) and self.controls_strong
        return good


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_check(check, samples: int | None, device, seed: int, progress: bool | None) -> Row:
    """Run one declared check and describe its outcome as a :class:`Row`."""
    from numeric.checks import DeterministicCheck, MonteCarloCheck
    from numeric.montecarlo import CONTROL_MARGIN, POWER_TARGET, run_montecarlo

    start = time.perf_counter()
    try:
        if isinstance(check, MonteCarloCheck):
            outcome = run_montecarlo(check, samples, device, seed, progress=progress)
            row = Row(
                id=check.id, kind="monte_carlo", passed=outcome.passed, device=outcome.device, seed=seed,
                seconds=outcome.seconds, samples=outcome.samples, max_z=outcome.max_z,
                threshold=outcome.threshold, detectable_rel_error=outcome.detectable_rel_error,
                z=outcome.z, mean=outcome.mean, exact=outcome.exact, stderr=outcome.stderr,
                negative_controls=dict(outcome.negative_controls),
                negative_control_z=dict(outcome.negative_control_z),
                negative_control_expected_z=dict(outcome.negative_control_expected_z),
                negative_control_margin=outcome.control_margins, enforce_targets=samples is None,
                description=check.description,
            )
            problems = []
            if not outcome.passed:
                problems.append(f"max z {outcome.max_z:.2f} > threshold {outcome.threshold:.2f}")
            if not row.negative_controls:
                problems.append("no negative control")
            failed = [name for name, rejected in row.negative_controls.items() if not rejected]
            if failed:
                problems.append(f"negative controls not rejected: {', '.join(failed)}")
            if row.enforce_targets and not row.power_ok:
                problems.append(f"detects only a {outcome.detectable_rel_error:.3g} relative error "
                                f"(target {POWER_TARGET:g})")
            weak = [f"{name} ({margin:.1f}x)" for name, margin in row.negative_control_margin.items()
                    if margin < CONTROL_MARGIN]
            if row.enforce_targets and weak:
                problems.append(f"controls with expected gap < {CONTROL_MARGIN:g}x threshold: {', '.join(weak)}")
            row.detail = "; ".join(problems)
            return row
        if isinstance(check, DeterministicCheck):
            report = check.run(samples, device, seed)
            controls = {str(k): bool(v) for k, v in dict(report.get("negative_controls", {})).items()}
            kind = getattr(check, "kind", "exact")
            detail = str(report.get("detail", ""))
            if not controls:
                detail = ("no wrong variant shown to fail; " + detail).rstrip("; ")
            return Row(
                id=check.id, kind=kind, passed=bool(report["passed"]), device=str(device), seed=seed,
                seconds=time.perf_counter() - start, samples=report.get("samples", samples),
                # an exact check has no statistical power; an experiment may report its own resolution
                detectable_rel_error=None if kind == "exact" else report.get("detectable_rel_error"),
                negative_controls=controls, description=check.description, detail=detail,
            )
        raise TypeError(f"unknown check type {type(check).__name__}")
    except Exception as error:  # a broken check is a failed row, not a crashed run
        return Row(id=check.id, kind="error", passed=False, device=str(device), seed=seed,
                   seconds=time.perf_counter() - start, detail=_one_line(error))


def plan(ids: list[str]) -> list[tuple[str, Any]]:
    """(id, check or None) pairs to run; raises :class:`derive.cli.UsageError` for unknown ids."""
    from derive.cli import UsageError
    from derive.registry import all_results
    from numeric.checks import all_checks

    registered = [result.id for result in all_results()]
    checks = all_checks()
    if ids:
        unknown = [i for i in ids if i not in registered]
        if unknown:
            raise UsageError(f"unknown result id {unknown[0]!r} (python -m derive lists the registered ids)")
        selected = list(dict.fromkeys(ids))
    else:
        selected = registered + sorted(i for i in checks if i not in registered)
    pairs: list[tuple[str, Any]] = []
    for result_id in selected:
        for check in checks.get(result_id, [None]):
            pairs.append((result_id, check))
    return pairs


def confirm(ids: list[str], samples: int | None, device, seed: int, progress: bool | None = None) -> list[Row]:
    from derive.registry import all_results

    registered = {result.id for result in all_results()}
    pairs = plan(ids)
    rows: list[Row] = []
    from tqdm import tqdm

    with tqdm(total=len(pairs), desc="confirm", unit="check", delay=2.0, file=sys.stderr, leave=False,
              disable=None if progress is None else not progress) as bar:
        for result_id, check in pairs:
            bar.set_postfix_str(result_id)
            if check is None:
                rows.append(Row(id=result_id, kind="missing", passed=False, device=str(device), seed=seed,
                                detail="no numeric check declared for this result"))
            else:
                row = run_check(check, samples, device, seed, progress)
                if result_id not in registered:
                    row.kind, row.passed = "unregistered", False
                    row.detail = ("check for an id that no derive module registers; " + row.detail).rstrip("; ")
                rows.append(row)
            _release_memory()
            bar.update(1)
    return rows


def _release_memory() -> None:
    """Drop sympy's memo cache and hand freed heap back to the system after each check, so that the peak
    memory of a whole run is close to that of its largest check, not the sum of what the checks left behind."""
    import ctypes
    import gc

    from sympy.core.cache import clear_cache

    clear_cache()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


# ------------------------------------------------------------------ output
def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _finite(value)
    return value


def row_json(row: Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "passed": row.passed,
        "ok": row.ok,
        "seed": row.seed,
        "max_z": _finite(row.max_z),
        "threshold": _finite(row.threshold),
        "z": _jsonable(row.z),
        "samples": row.samples,
        "mean": _jsonable(row.mean),
        "exact": _jsonable(row.exact),
        "stderr": _jsonable(row.stderr),
        "detectable_rel_error": _finite(row.detectable_rel_error),
        "power_ok": row.power_ok,
        "device": row.device,
        "seconds": round(row.seconds, 4),
        "negative_controls": dict(row.negative_controls),
        "negative_control_z": {k: _finite(v) for k, v in row.negative_control_z.items()},
        "negative_control_expected_z": {k: _finite(v) for k, v in row.negative_control_expected_z.items()},
        "negative_control_margin": {k: _finite(v) for k, v in row.negative_control_margin.items()},
        "description": row.description,
        "detail": row.detail,
    }


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf"
    return format(value, spec)


def render_text(rows: list[Row]) -> str:
    header = ("id", "kind", "passed", "max z", "threshold", "samples", "detects rel. err", "seconds", "device",
              "controls", "weakest gap/threshold")
    table = []
    for row in rows:
        controls = f"{sum(row.negative_controls.values())}/{len(row.negative_controls)}"
        passed = "yes" if row.passed else ("MISSING" if row.kind == "missing" else "NO")
        margin = min(row.negative_control_margin.values()) if row.negative_control_margin else None
        table.append((
            row.id, row.kind, passed, _fmt(row.max_z, ".2f"), _fmt(row.threshold, ".2f"),
            "-" if row.samples is None else f"{row.samples:,}",
            "-" if row.kind == "exact" else _fmt(row.detectable_rel_error, ".4f"),
            f"{row.seconds:.2f}", row.device, controls if row.negative_controls else "NONE",
            _fmt(margin, ".1f"),
        ))
    widths = [max(len(str(c)) for c in column) for column in zip(header, *table)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
    notes = [f"  {row.id}: {row.detail}" for row in rows if row.detail and not row.ok]
    if notes:
        lines += ["", "failures:"] + notes
    good = sum(row.ok for row in rows)
    by_kind = {}
    for row in rows:
        seen, ok = by_kind.get(row.kind, (0, 0))
        by_kind[row.kind] = (seen + 1, ok + row.ok)
    kinds = ", ".join(f"{kind} {ok}/{seen}" for kind, (seen, ok) in by_kind.items())
    lines += ["", "detects rel. err: the smallest relative error of the checked quantity that this check detects "
                  "(monte_carlo: <= 0.01 at default samples; exact checks are identities to rounding);",
              "weakest gap/threshold: the smallest expected z of a wrong formula over the threshold (>= 3).",
              f"{good}/{len(rows)} confirmed ({kinds}) in {sum(row.seconds for row in rows):.1f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from derive.cli import UsageError
    from numeric.device import resolve_device

    args = build_parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    plan(args.ids)  # validates the ids before any work
    if device.type == "cpu":
        import torch

        # the per-batch tensors are small: a second intra-op thread costs more than it gains (4x slower
        # per context on a loaded 2-core machine); the CUDA path is unaffected
        torch.set_num_threads(1)
    rows = confirm(args.ids, args.samples, device, args.seed)
    if args.format == "json":
        print(json.dumps([row_json(row) for row in rows], indent=2, allow_nan=False))
    else:
        print(render_text(rows))
    return 0 if rows and all(row.ok for row in rows) else 1


if __name__ == "__main__":
    from derive.cli import run

    sys.exit(run(main))
