"""Every declared check, at 20 seeds: the true formula passes at every seed and every control is rejected.

CI version (always run): every Monte Carlo check at its ``ci_samples`` and every
``exact`` check at its default size, for seeds 0..19.  The ``ci_samples`` are
sized (numeric/<topic>.py) so that each control's expected gap stays well above
the threshold; the test covers whatever checks :func:`numeric.checks.all_checks`
discovers, including those of modules added later.

Full version (``@pytest.mark.full``, run only with ``ICL_FULL_TESTS=1``): the same
at the default sample counts, plus the targets ``numeric.confirm`` enforces there
(detectable relative error <= 1 %, every control's expected gap >= 3x the
threshold), plus the experiments (ODE, training) at 20 seeds, plus the
calibration of the false-alarm rate at lower thresholds.  About 8 minutes on 2 idle cores
(2026-12-02: 150 s for the Monte Carlo checks at defaults, 290 s for the experiments and the calibration).
"""

from __future__ import annotations

import os

import pytest

from numeric.checks import DeterministicCheck, MonteCarloCheck, all_checks
from numeric.montecarlo import CONTROL_MARGIN, POWER_TARGET, run_montecarlo

SEEDS = range(20)
FULL = pytest.mark.skipif(not os.environ.get("ICL_FULL_TESTS"), reason="full test: set ICL_FULL_TESTS=1")
ALL = [check for checks in all_checks().values() for check in checks]
MONTE_CARLO = [c for c in ALL if isinstance(c, MonteCarloCheck)]
EXACT = [c for c in ALL if isinstance(c, DeterministicCheck) and getattr(c, "kind", "exact") == "exact"]
EXPERIMENTS = [c for c in ALL if isinstance(c, DeterministicCheck) and getattr(c, "kind", "exact") == "experiment"]


@pytest.fixture(autouse=True)
def one_thread():
    """As python -m numeric.confirm does on the CPU: small tensors, one intra-op thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _name(check) -> str:
    return f"{check.id}:{check.description[:48]}"


def _all_seeds_monte_carlo(check, samples):
    failures = []
    for seed in SEEDS:
        outcome = run_montecarlo(check, samples, "cpu", seed)
        if not outcome.passed:
            failures.append(f"seed {seed}: true formula rejected, max z {outcome.max_z:.2f} > {outcome.threshold:.2f}")
        for name, rejected in outcome.negative_controls.items():
            if not rejected:
                failures.append(f"seed {seed}: control {name!r} not rejected (z {outcome.negative_control_z[name]:.2f}, "
                                f"expected gap {outcome.negative_control_expected_z[name]:.2f}, "
                                f"threshold {outcome.threshold:.2f})")
        if samples is None:  # the defaults: the targets numeric.confirm enforces
            if outcome.detectable_rel_error > POWER_TARGET:
                failures.append(f"seed {seed}: detects only {outcome.detectable_rel_error:.4f}")
            weak = {k: round(v, 2) for k, v in outcome.control_margins.items() if v < CONTROL_MARGIN}
            if weak:
                failures.append(f"seed {seed}: controls with expected gap < {CONTROL_MARGIN}x threshold: {weak}")
    return failures


def test_every_check_has_teeth():
    """Every Monte Carlo check has a wrong formula; every check has a known kind."""
    assert MONTE_CARLO
    for check in MONTE_CARLO:
        assert check.wrong, f"{_name(check)}: no negative control"
        assert 2 <= check.ci_samples <= check.samples
    for check in ALL:
        if isinstance(check, DeterministicCheck):
            assert getattr(check, "kind", "exact") in ("exact", "experiment"), _name(check)


@pytest.mark.parametrize("check", MONTE_CARLO, ids=_name)
def test_monte_carlo_check_at_20_seeds_ci(check):
    failures = _all_seeds_monte_carlo(check, check.ci_samples)
    assert not failures, "\n".join(failures)


def _all_seeds_deterministic(check):
    """Run a deterministic check (exact or experiment) at every seed: it passes and its wrong variants fail."""
    for seed in SEEDS:
        report = check.run(None, "cpu", seed)
        assert report["passed"], f"seed {seed}: {report.get('detail')}"
        controls = report.get("negative_controls", {})
        assert controls and all(controls.values()), f"seed {seed}: wrong variants {controls}"


@pytest.mark.parametrize("check", EXACT, ids=_name)
def test_exact_check_at_20_seeds(check):
    _all_seeds_deterministic(check)


@FULL
@pytest.mark.full
@pytest.mark.parametrize("check", MONTE_CARLO, ids=_name)
def test_monte_carlo_check_at_20_seeds_defaults(check):
    failures = _all_seeds_monte_carlo(check, None)
    assert not failures, "\n".join(failures)


@FULL
@pytest.mark.full
@pytest.mark.parametrize("check", EXPERIMENTS, ids=_name)
def test_experiment_at_20_seeds(check):
    _all_seeds_deterministic(check)


@FULL
@pytest.mark.full
@pytest.mark.parametrize("check", MONTE_CARLO, ids=_name)
def test_false_alarm_rate_is_calibrated(check):
    """At k = 1.5..3 the empirical false-alarm rate over 200 runs is compatible with at most 2x nominal."""
    from numeric.calibrate import calibrated, false_alarm_rates

    report = false_alarm_rates(check, runs=200, samples=max(2, check.ci_samples // 2))
    assert calibrated(report), report["levels"]


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU")
def test_every_check_on_cuda():
    """The --device cuda path of every check (Monte Carlo at ci_samples, exact and experiment at defaults)."""
    import torch

    device = torch.device("cuda")
    for check in MONTE_CARLO:
        outcome = run_montecarlo(check, check.ci_samples, device, 0)
        assert outcome.device.startswith("cuda") and outcome.passed and outcome.controls_rejected, _name(check)
    for check in EXACT + EXPERIMENTS:
        report = check.run(None, device, 0)
        assert report["passed"], f"{_name(check)}: {report.get('detail')}"
