"""python -m numeric.confirm: bad input, JSON output, missing and unregistered checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from numeric import confirm as confirm_module
from numeric.checks import MonteCarloCheck

ROOT = Path(__file__).resolve().parent.parent

BAD_INPUTS = [
    ["no.such.result"],
    ["--samples", "0"],
    ["--samples", "-5"],
    ["--samples", "many"],
    ["--device", "tpu"],
    ["--format", "xml"],
    ["--seed", "-1"],
    ["--no-such-option"],
]
if not torch.cuda.is_available():
    BAD_INPUTS.append(["--device", "cuda"])


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "numeric.confirm", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_bad_input_exits_2_with_one_line_on_stderr():
    running = [(args, _start(args)) for args in BAD_INPUTS]  # in parallel: each pays the imports
    for args, process in running:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, (args, stderr)
        assert "Traceback" not in stderr, (args, stderr)
        assert len(stderr.strip().splitlines()) == 1, (args, stderr)
        assert stderr.startswith("error:"), (args, stderr)
        assert stdout == "", (args, stdout)


def _registered(result_id: str) -> bool:
    from derive.registry import all_results

    return any(result.id == result_id for result in all_results())


def test_json_output_of_one_quick_run():
    if not _registered("gaussian.isserlis_4"):
        pytest.skip("gaussian.isserlis_4 is not registered yet")
    process = _start(["gaussian.isserlis_4", "--samples", "100000", "--device", "cpu", "--format", "json"])
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    rows = json.loads(stdout)
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    for key in ("id", "kind", "passed", "z", "samples", "stderr", "detectable_rel_error", "device", "seconds",
                "negative_controls", "max_z", "threshold", "mean", "exact", "negative_control_expected_z",
                "negative_control_margin", "power_ok", "seed"):
        assert key in row, key
    assert row["id"] == "gaussian.isserlis_4" and row["passed"] is True and row["ok"] is True
    assert row["kind"] == "monte_carlo"
    assert row["samples"] == 100_000 and row["device"] == "cpu"
    assert np.asarray(row["z"]).shape == np.asarray(row["stderr"]).shape == np.asarray(row["exact"]).shape
    assert max(np.asarray(row["z"]).ravel()) == pytest.approx(row["max_z"])
    assert 0 < row["detectable_rel_error"] < 1 and row["seconds"] > 0
    assert row["negative_controls"] and all(value is True for value in row["negative_controls"].values())


# ------------------------------------------------------- in-process behaviour
def _constant_sample(instance, batch, generator, device):
    return 1.0 + 1e-3 * torch.randn((batch, 2), generator=generator, device=device, dtype=torch.float64)


def _noisy_sample(instance, batch, generator, device):
    return 1.0 + torch.randn((batch, 2), generator=generator, device=device, dtype=torch.float64)


def _fake_registry(monkeypatch, result_ids: list[str], checks: dict[str, list]):
    from types import SimpleNamespace

    import derive.registry
    import numeric.checks

    results = tuple(SimpleNamespace(id=i) for i in result_ids)
    monkeypatch.setattr(derive.registry, "all_results", lambda: results)
    monkeypatch.setattr(numeric.checks, "all_checks", lambda: checks)


def test_missing_and_unregistered_checks_fail(monkeypatch, capsys):
    good = MonteCarloCheck(id="fake.good", instance=lambda rng: {}, exact=lambda inst: np.ones(2),
                           sample=_constant_sample, wrong={"zero": lambda inst: np.zeros(2)}, samples=1000, batch=500)
    orphan = MonteCarloCheck(id="fake.orphan", instance=lambda rng: {}, exact=lambda inst: np.ones(2),
                             sample=_constant_sample, samples=1000, batch=500)
    _fake_registry(monkeypatch, ["fake.good", "fake.missing"], {"fake.good": [good], "fake.orphan": [orphan]})

    rows = confirm_module.confirm([], None, torch.device("cpu"), 0, progress=False)
    kinds = {row.id: (row.kind, row.ok) for row in rows}
    assert kinds == {"fake.good": ("monte_carlo", True), "fake.missing": ("missing", False),
                     "fake.orphan": ("unregistered", False)}
    assert confirm_module.main(["--device", "cpu"]) == 1
    text = capsys.readouterr().out
    assert "MISSING" in text and "fake.missing" in text and "1/3 confirmed" in text
    assert confirm_module.main(["fake.good", "--device", "cpu"]) == 0


def test_a_wrong_exact_value_or_unrejected_control_fails(monkeypatch, capsys):
    wrong_exact = MonteCarloCheck(id="fake.wrong", instance=lambda rng: {}, exact=lambda inst: np.full(2, 1.5),
                                  sample=_constant_sample, samples=2000, batch=1000)
    weak_control = MonteCarloCheck(id="fake.weak", instance=lambda rng: {}, exact=lambda inst: np.ones(2),
                                   sample=_constant_sample, wrong={"too close": lambda inst: np.ones(2) + 1e-7},
                                   samples=2000, batch=1000)
    broken = MonteCarloCheck(id="fake.broken", instance=lambda rng: {}, exact=lambda inst: 1 / 0,
                             sample=_constant_sample, samples=2000, batch=1000)
    _fake_registry(monkeypatch, ["fake.wrong", "fake.weak", "fake.broken"],
                   {"fake.wrong": [wrong_exact], "fake.weak": [weak_control], "fake.broken": [broken]})
    rows = {row.id: row for row in confirm_module.confirm([], None, torch.device("cpu"), 0, progress=False)}
    assert not rows["fake.wrong"].passed
    assert rows["fake.weak"].passed and not rows["fake.weak"].ok
    assert rows["fake.broken"].kind == "error" and "ZeroDivisionError" in rows["fake.broken"].detail
    assert confirm_module.main(["--device", "cpu", "--format", "json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in payload] == ["fake.wrong", "fake.weak", "fake.broken"]
    assert payload[1]["negative_controls"] == {"too close": False}


def test_targets_are_enforced_at_default_samples(monkeypatch, capsys):
    """At the defaults: power <= 1 %, every control's expected gap >= 3x the threshold, at least one control.
    With --samples the power and margin targets are reported but not enforced; a check without controls fails."""
    weak_power = MonteCarloCheck(id="fake.noisy", instance=lambda rng: {}, exact=lambda inst: np.ones(2),
                                 sample=_noisy_sample, wrong={"zero": lambda inst: np.zeros(2)}, samples=2000, batch=1000)
    coin_flip = MonteCarloCheck(id="fake.coin", instance=lambda rng: {}, exact=lambda inst: np.ones(2),
                                sample=_constant_sample, wrong={"close": lambda inst: np.ones(2) + 2.0e-4},
                                samples=2000, batch=1000)
    toothless = MonteCarloCheck(id="fake.toothless", instance=lambda rng: {}, exact=lambda inst: np.ones(2),
                                sample=_constant_sample, samples=2000, batch=1000)
    _fake_registry(monkeypatch, ["fake.noisy", "fake.coin", "fake.toothless"],
                   {"fake.noisy": [weak_power], "fake.coin": [coin_flip], "fake.toothless": [toothless]})
    rows = {row.id: row for row in confirm_module.confirm([], None, torch.device("cpu"), 0, progress=False)}
    noisy, coin, toothless_row = rows["fake.noisy"], rows["fake.coin"], rows["fake.toothless"]
    assert noisy.passed and noisy.controls_rejected and noisy.power_ok is False and not noisy.ok
    assert "detects only" in noisy.detail
    # expected gap 2e-4 / (1e-3 / sqrt(2000)) ~ 8.9 standard errors: above the threshold, below 3x it
    assert coin.passed and coin.controls_rejected and not coin.controls_strong and not coin.ok
    assert "expected gap" in coin.detail
    assert toothless_row.passed and not toothless_row.ok and "no negative control" in toothless_row.detail
    rows = {row.id: row for row in confirm_module.confirm([], 2000, torch.device("cpu"), 0, progress=False)}
    assert rows["fake.noisy"].ok and rows["fake.coin"].ok and not rows["fake.toothless"].ok
    assert confirm_module.main(["--device", "cpu", "--format", "json"]) == 1
    payload = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert payload["fake.noisy"]["power_ok"] is False
    assert payload["fake.coin"]["negative_control_margin"]["close"] < 3


def test_largest_term_scale_for_cancelling_formulas():
    import numpy as np

    from derive.engine.evaluate import largest_term
    from derive.engine.pipeline import declare
    from derive.engine.polynomial import Polynomial

    poly = Polynomial.of("c * A - c * A + 3 * B - A", declare(scalars={"c"}))  # = 3B - A
    values = {"A": np.eye(2) * 2, "B": np.eye(2), "c": 5.0}
    assert largest_term(poly, values, 2) == 3.0
