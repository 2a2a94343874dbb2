"""derive.incontext_cg: kernel heads, the CG layer and its bound; the network against scipy's CG."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from derive import incontext_cg as cg
from derive.engine.statements import evaluate
from derive.registry import all_results, check_equations
from numeric import incontext_cg as numeric_cg

IDS = ("incontext.kernel_head", "incontext.cg_layer", "incontext.cg_bound")


def test_results_registered_and_equations_hold():
    registered = {r.id: r for r in all_results()}
    for result_id in IDS:
        result = registered[result_id]
        assert result.module == "derive.incontext_cg" and result.sources and result.derivation.steps
        assert check_equations(result) == []


def test_rank_bound_needs_orthonormal_columns():
    """Negative control: with a general n×m factor Q the projection does not annihilate K."""
    from derive.engine.pipeline import declare

    general = declare(dims=["n", "m"], matrices={"Phi": "n,m", "Q": "n,m", "R": "m,m"})
    assert not evaluate("(I(n) - Q @ Q.T) @ at(K, Phi=Q @ R)", general, dict([cg.KERNEL])).is_zero()


def test_cg_layer_without_lambda_is_not_cg():
    """Negative control: gamma without the lam-skip is not p.T @ (K + lam I) @ p."""
    layer = cg.cg_layer()
    assert layer["gamma_agg"] != evaluate("p.T @ K @ p", cg.LAYER, dict([cg.KERNEL]))


def test_division_error_factor_and_chord():
    e = cg.division_error()
    wrong = evaluate("-(1 - delta) * (p.T @ A @ (astar - alpha))**2 / (2 * p.T @ A @ p)", cg.DIVISION)
    right = evaluate("-(1 - delta**2) * (p.T @ A @ (astar - alpha))**2 / (2 * p.T @ A @ p)", cg.DIVISION)
    assert e["decrease"] == right and e["decrease"] != wrong
    rat = 1.3
    assert math.isclose(float(e["worst_poly"].evaluate({"rat": rat})), (rat - 1) ** 2 / (4 * rat), rel_tol=1e-14)


def test_network_matches_scipy_cg_and_a_wrong_step_does_not():
    """Layer by layer against scipy.sparse.linalg.cg; the network without the lam-skip diverges from it."""
    g = torch.Generator().manual_seed(3)
    n, m, lam = 20, 5, 0.7
    Phi = torch.randn(n, m, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    A = (Phi @ Phi.T + lam * torch.eye(n, dtype=torch.float64)).numpy()
    reference = numeric_cg.scipy_iterates(A, y.numpy(), m + 1)
    states = numeric_cg.cg_network(Phi, y, lam, m + 1)
    solution = np.linalg.solve(A, y.numpy())
    for state, x in zip(states, reference):
        assert np.linalg.norm(state["alpha"].numpy() - x) <= 1e-9 * np.linalg.norm(solution)
    assert np.linalg.norm(states[-1]["alpha"].numpy() - solution) <= 1e-9 * np.linalg.norm(solution)  # m + 1 layers
    wrong = numeric_cg.cg_network(Phi, y, lam, 2, skip=False)
    assert np.linalg.norm(wrong[1]["alpha"].numpy() - reference[1]) > 1e-3 * np.linalg.norm(solution)


@pytest.mark.parametrize("check", numeric_cg.CHECKS, ids=lambda c: c.id)
def test_numeric_checks_pass_with_controls_rejected(check):
    report = check.run(1, "cpu", 2)
    assert report["passed"] and all(report["negative_controls"].values()), report["detail"]
