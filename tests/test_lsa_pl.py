"""lsa.pl_inequality: the statements, the seed's constant below the derived one, one short trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from derive.registry import check_equations, get


def gamma_oracle(Lambda, N):
    return (1 + 1 / N) * Lambda + np.trace(Lambda) / N * np.eye(Lambda.shape[0])


def random_case(rng, d=3):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = (q * rng.uniform(0.3, 2.0, d)) @ q.T
    theta = rng.standard_normal((d, d))
    theta /= np.sqrt(np.linalg.norm(theta @ theta.T, "fro"))
    N = int(rng.integers(1, 30))
    G = gamma_oracle(lam, N)
    sigma = float(np.sqrt(rng.uniform(0.05, 0.95) * 2 / (np.sqrt(d) * np.linalg.norm(G, 2))))
    return lam, N, sigma, theta


def test_statements_and_factorization():
    from derive.lsa_pl import pl

    assert check_equations(get("lsa.pl_inequality")) == []
    p = pl()
    assert p["factor_residual"].is_zero() and p["norm_residual"].is_zero()


def test_seed_constant_is_valid_but_looser():
    from numeric.lsa_pl import derived_at, seed_mu

    rng = np.random.default_rng(0)
    for _ in range(40):
        lam, N, sigma, theta = random_case(rng)
        mu = derived_at("mu", lam, N, sigma, theta)
        assert 0 < seed_mu(lam, gamma_oracle(lam, N), sigma, theta) <= mu * (1 + 1e-12)


def test_one_trajectory_satisfies_the_bound_and_a_wrong_one_fails():
    from numeric.lsa_pl import derived_at, trajectory

    lam, N, sigma, theta = random_case(np.random.default_rng(1))
    mu = derived_at("mu", lam, N, sigma, theta)
    tr = trajectory(lam, N, sigma, theta)
    ratio = tr["ratio"][np.isfinite(tr["ratio"])]
    assert ratio.min() >= mu
    assert (tr["u"] ** 2).min() >= derived_at("u_lower_squared", lam, N, sigma, theta)
    G = tr["G"]
    largest = 2 * np.linalg.eigvalsh(G @ lam).max() * np.linalg.eigvalsh(lam).max()
    assert np.any(ratio < largest * tr["u"][np.isfinite(tr["ratio"])] ** 2)  # the wrong (largest-eigenvalue) bound
    assert tr["excess"][-1] == pytest.approx(0, abs=1e-6 * tr["excess0"])
