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

Output: ``text`` is a table, one row per check (id, passed, max z, threshold,
samples, detectable relative error, seconds, device, negative controls
rejected); ``json`` is a list of objects with ``id``, ``kind``, ``passed``,
``ok``, ``z`` (per entry), ``max_z``, ``threshold``, ``samples``, ``mean``,
``exact``, ``stderr``, ``detectable_rel_error``, ``device``, ``seconds``,
``negative_controls`` (name -> rejected), ``detail``; non-finite numbers are
written as ``null``.  A progress bar is shown on stderr (when it is a
terminal) for runs longer than two seconds.

Exit status: 0 when every check passed and every negative control was
rejected, 1 otherwise, 2 on bad input (unknown id, ``--samples`` < 2, unknown
device, ``cuda`` without a GPU), reported as one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROG = "python -m numeric.confirm"


class BadInput(Exception):
    """Invalid command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise BadInput(message)


def _integer_at_least(minimum: int, why: str):
    """argparse type: an integer >= ``minimum``; ``why`` is the one-line complaint otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{why}, got {value}")
        return value
    return parse


_sample_count = _integer_at_least(2, "must be at least 2 (a standard error needs two samples)")
_seed = _integer_at_least(0, "must be non-negative")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Confirm the registered derived results by Monte Carlo.")
    parser.add_argument("ids", nargs="*", metavar="IDS", help="result ids to confirm (default: all)")
    parser.add_argument("--samples", type=_sample_count, default=None,
                        help="samples per check (default: each check's own count)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the instance and the samples (default 0)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    return parser


@dataclass
class Row:
    """One line of the report: a check's outcome, or a missing/unregistered check."""

    id: str
    kind: str  # "montecarlo" | "deterministic" | "missing" | "unregistered" | "error"
    passed: bool
    device: str
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
    detail: str = ""

    @property
    def controls_rejected(self) -> bool:
        return all(self.negative_controls.values())

    @property
    def ok(self) -> bool:
        return self.passed and self.controls_rejected


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_check(check, samples: int | None, device, seed: int, progress: bool | None) -> Row:
    """Run one declared check and describe its outcome as a :class:`Row`."""
    from numeric.checks import DeterministicCheck, MonteCarloCheck
    from numeric.montecarlo import run_montecarlo

    start = time.perf_counter()
    try:
        if isinstance(check, MonteCarloCheck):
            outcome = run_montecarlo(check, samples, device, seed, progress=progress)
            failed_controls = [name for name, rejected in outcome.negative_controls.items() if not rejected]
            detail = f"negative controls not rejected: {', '.join(failed_controls)}" if failed_controls else ""
            if not outcome.passed:
                detail = (f"max z {outcome.max_z:.2f} > threshold {outcome.threshold:.2f}; " + detail).rstrip("; ")
            return Row(
                id=check.id, kind="montecarlo", passed=outcome.passed, device=outcome.device,
                seconds=outcome.seconds, samples=outcome.samples, max_z=outcome.max_z,
                threshold=outcome.threshold, detectable_rel_error=outcome.detectable_rel_error,
                z=outcome.z, mean=outcome.mean, exact=outcome.exact, stderr=outcome.stderr,
                negative_controls=dict(outcome.negative_controls),
                negative_control_z=dict(outcome.negative_control_z), detail=detail,
            )
        if isinstance(check, DeterministicCheck):
            report = check.run(samples, device, seed)
            controls = {str(k): bool(v) for k, v in dict(report.get("negative_controls", {})).items()}
            return Row(
                id=check.id, kind="deterministic", passed=bool(report["passed"]), device=str(device),
                seconds=time.perf_counter() - start, samples=report.get("samples", samples),
                detectable_rel_error=report.get("detectable_rel_error"),
                negative_controls=controls, detail=str(report.get("detail", "")),
            )
        raise TypeError(f"unknown check type {type(check).__name__}")
    except Exception as error:  # a broken check is a failed row, not a crashed run
        return Row(id=check.id, kind="error", passed=False, device=str(device),
                   seconds=time.perf_counter() - start, detail=_one_line(error))


def plan(ids: list[str]) -> list[tuple[str, Any]]:
    """(id, check or None) pairs to run; raises :class:`BadInput` for unknown ids."""
    from derive.registry import all_results
    from numeric.checks import all_checks

    registered = [result.id for result in all_results()]
    checks = all_checks()
    if ids:
        unknown = [i for i in ids if i not in registered]
        if unknown:
            raise BadInput(f"unknown result id {unknown[0]!r} (python -m derive lists the registered ids)")
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
                rows.append(Row(id=result_id, kind="missing", passed=False, device=str(device),
                                detail="no numeric check declared for this result"))
            else:
                row = run_check(check, samples, device, seed, progress)
                if result_id not in registered:
                    row.kind, row.passed = "unregistered", False
                    row.detail = ("check for an id that no derive module registers; " + row.detail).rstrip("; ")
                rows.append(row)
            bar.update(1)
    return rows


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
        "max_z": _finite(row.max_z),
        "threshold": _finite(row.threshold),
        "z": _jsonable(row.z),
        "samples": row.samples,
        "mean": _jsonable(row.mean),
        "exact": _jsonable(row.exact),
        "stderr": _jsonable(row.stderr),
        "detectable_rel_error": _finite(row.detectable_rel_error),
        "device": row.device,
        "seconds": round(row.seconds, 4),
        "negative_controls": dict(row.negative_controls),
        "negative_control_z": {k: _finite(v) for k, v in row.negative_control_z.items()},
        "detail": row.detail,
    }


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf"
    return format(value, spec)


def result_power(rows: list[Row]) -> dict[str, float | None]:
    """Per result id, the smallest ``detectable_rel_error`` over its checks (None when none reports one).

    A wrong result is caught as soon as one of its checks rejects it, so the
    result's power is that of its most sensitive check.
    """
    power: dict[str, float | None] = {}
    for row in rows:
        value = row.detectable_rel_error
        best = power.get(row.id)
        if value is not None and (best is None or value < best):
            power[row.id] = value
        else:
            power.setdefault(row.id, best)
    return power


def render_text(rows: list[Row]) -> str:
    header = ("id", "passed", "max z", "threshold", "samples", "det. rel. err", "seconds", "device", "controls")
    table = []
    for row in rows:
        controls = f"{sum(row.negative_controls.values())}/{len(row.negative_controls)}"
        passed = "yes" if row.passed else ("MISSING" if row.kind == "missing" else "NO")
        table.append((
            row.id, passed, _fmt(row.max_z, ".2f"), _fmt(row.threshold, ".2f"),
            "-" if row.samples is None else f"{row.samples:,}", _fmt(row.detectable_rel_error, ".4f"),
            f"{row.seconds:.2f}", row.device, controls if row.negative_controls else "-",
        ))
    widths = [max(len(str(c)) for c in column) for column in zip(header, *table)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
    notes = [f"  {row.id}: {row.detail}" for row in rows if row.detail and not row.ok]
    if notes:
        lines += ["", "failures:"] + notes
    power = result_power(rows)
    if power:
        lines += ["", "power per result (the smallest relative error that one of its checks detects):"]
        lines += [f"  {rid}: {_fmt(value, '.2g')}" for rid, value in power.items()]
    good = sum(row.ok for row in rows)
    lines += ["", f"{good}/{len(rows)} confirmed (passed, all negative controls rejected) "
                  f"in {sum(row.seconds for row in rows):.1f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        from numeric.device import resolve_device

        try:
            device = resolve_device(args.device)
        except ValueError as error:
            raise BadInput(str(error)) from None
        plan(args.ids)  # validates the ids before any work
    except BadInput as error:
        message = " ".join(str(error).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    rows = confirm(args.ids, args.samples, device, args.seed)
    if args.format == "json":
        power = result_power(rows)
        payload = [{**row_json(row), "result_detectable_rel_error": _finite(power.get(row.id))} for row in rows]
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(render_text(rows))
    return 0 if rows and all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
