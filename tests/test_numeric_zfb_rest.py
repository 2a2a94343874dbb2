"""The numeric checks of issue 11's results at CI sizes: every check passes and rejects its controls."""

from __future__ import annotations

import pytest

from numeric import lsa_generalization as gen
from numeric import lsa_pl as pl
from numeric import lsa_random_covariance as rc
from numeric.checks import DeterministicCheck, MonteCarloCheck
from numeric.montecarlo import run_montecarlo

MC = [c for m in (gen, rc) for c in m.CHECKS if isinstance(c, MonteCarloCheck)]


@pytest.mark.parametrize("check", MC, ids=lambda c: f"{c.id}:{c.description[:40]}")
def test_montecarlo_checks_pass_and_reject_controls(check):
    outcome = run_montecarlo(check, samples=check.ci_samples, seed=1)
    assert outcome.passed, (outcome.max_z, outcome.mean, outcome.exact)
    assert outcome.controls_rejected, outcome.negative_control_z


def test_limit_check():
    (check,) = [c for c in gen.CHECKS if isinstance(c, DeterministicCheck)]
    result = check.run(None, None, 2)
    assert result["passed"], result["detail"]


def test_least_squares_recovers_the_scale():
    result = rc.least_squares_scale(seed=3, prompts=20_000)
    assert result["passed"], result["detail"]


@pytest.mark.slow
def test_pl_experiment():
    result = pl.pl_experiment(seed=0)
    assert result["passed"], result["detail"]


def test_every_result_has_a_check():
    ids = {c.id for m in (gen, rc, pl) for c in m.CHECKS}
    assert ids == {"lsa.test_error", "lsa.covariate_shift", "lsa.random_covariance", "lsa.pl_inequality"}


def test_shift_cli_refuses_bad_input_in_one_line(capsys):
    from derive.cli import run
    from numeric.lsa_shift import main

    for argv in (["--steps", "5"], ["--seed", "-1"], ["--prompts", "10"], ["--format", "pdf"]):
        assert run(main, argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1
