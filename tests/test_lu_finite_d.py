"""lu.finite_d_error against Monte Carlo of fresh prompts at d = 3 (numeric/lu_asymptotics.py).

The derived e_ICL and e(Γ; w) agree with simulation at the checks' CI sample counts,
and the negative controls (the seeds' H_Z without d/ℓ, the 1/ℓ terms dropped) are
rejected; plain Monte Carlo with the query drawn too agrees with the derived value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numeric import lu_asymptotics as lu
from numeric.montecarlo import run_montecarlo


FINITE_D_CHECKS = [c for c in lu.CHECKS if c.id == "lu.finite_d_error"]


@pytest.mark.parametrize("index", range(len(FINITE_D_CHECKS)))
def test_finite_d_check_passes_and_rejects_controls(index):
    check = FINITE_D_CHECKS[index]
    outcome = run_montecarlo(check, samples=check.ci_samples, seed=1)
    assert outcome.passed, outcome
    assert outcome.detectable_rel_error < 0.02  # < 0.005 at the default 2,000,000 samples
    assert outcome.negative_controls and all(outcome.negative_controls.values()), outcome.negative_control_z
    # each control's gap is well beyond the threshold (at least 3x)
    assert min(outcome.negative_control_z.values()) > 3 * outcome.threshold


def test_plain_monte_carlo_with_the_query_drawn():
    rng = np.random.default_rng(5)
    inst = lu.finite_d_instance(False)(rng)
    generator = torch.Generator().manual_seed(5)
    tasks = torch.randn(400_000, 3, generator=generator, dtype=torch.float64)
    values = lu.query_error_samples(inst["gamma"], inst["ell"], inst["rho"], 400_000, generator, "cpu", tasks)
    mean, se = float(values.mean()), float(values.std() / len(values) ** 0.5)
    exact = lu.derived_error(inst["gamma"], inst["ell"], inst["rho"])
    seed = lu.derived_error(inst["gamma"], inst["ell"], inst["rho"], seed_features=True)
    assert abs(mean - exact) < 5 * se
    assert abs(mean - seed) > 15 * se


def test_pool_average_of_the_task_error():
    rng = np.random.default_rng(2)
    gamma = np.concatenate([np.eye(3), 0.2 * rng.standard_normal((3, 1))], axis=1)
    pool = rng.standard_normal((4, 3))
    direct = np.mean([lu.derived_error(gamma, 5, 0.3, w) for w in pool])
    assert lu.pool_error(gamma, 5, 0.3, pool) == pytest.approx(direct, rel=1e-12)


def plain_monte_carlo(gamma, ell, rho, w=None, samples=400_000, seed=11):
    """Mean and standard error of (y_{ℓ+1} − ŷ)² over whole fresh prompts (query drawn too)."""
    generator = torch.Generator().manual_seed(seed)
    d = gamma.shape[0]
    tasks = (torch.randn(samples, d, generator=generator, dtype=torch.float64) if w is None
             else torch.as_tensor(np.asarray(w), dtype=torch.float64).expand(samples, d))
    values = lu.query_error_samples(gamma, ell, rho, samples, generator, "cpu", tasks)
    return float(values.mean()), float(values.std() / samples ** 0.5)
