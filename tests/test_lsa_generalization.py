"""lsa.test_error and lsa.covariate_shift against an independent quadrature of the forward pass.

The oracle is written from the model's definition with nothing from ``derive``
or ``numeric``: a test prompt of length M (tokens x = L_S z, query L_Sq z_q,
task L_Psi z_w, noise σ e), the embedding with noisy labels, f(E) = E + W^PV E
(Eᵀ W^KQ E)/M with full matrices at a global minimizer (other entries random),
and tensor Gauss–Hermite quadrature over every scalar coordinate.  The
integrand (ŷ − y_q)² has degree ≤ 4 in each token's coordinates and ≤ 2 in
the query, the task and the noise (ŷ is linear in the query, the task and each
noise at u12 = 0), so 3 nodes (exact to degree 5) for tokens, query and task and
2 (degree 3) for the noise are exact.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from derive.registry import check_equations, get


def gamma_oracle(Lambda: np.ndarray, N: int) -> np.ndarray:
    """Γ = (1 + 1/N)Λ + tr(Λ)/N · I (Zhang, Frei & Bartlett), typed here as the oracle's input."""
    return (1 + 1 / N) * Lambda + np.trace(Lambda) / N * np.eye(Lambda.shape[0])


def spd(rng, d, low=0.5, high=1.5):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * rng.uniform(low, high, d)) @ q.T


def forward_prediction(X, xq, y, W_PV, W_KQ):
    """ŷ = [E + W^PV E (Eᵀ W^KQ E)/M]_{d+1, M+1} for a batch; X (..., M, d), xq (..., d), y (..., M)."""
    M = X.shape[-2]
    top = np.concatenate([np.swapaxes(X, -1, -2), xq[..., :, None]], axis=-1)
    bottom = np.concatenate([y, np.zeros(y.shape[:-1] + (1,))], axis=-1)[..., None, :]
    E = np.concatenate([top, bottom], axis=-2)
    out = E + (W_PV @ E) @ (np.swapaxes(E, -1, -2) @ W_KQ @ E) / M
    return out[..., -1, -1]


def quadrature_error(inst, M: int, chunk: int = 1 << 15) -> float:
    d = inst["Lambda"].shape[0]
    LS, Lq, Lw = (np.linalg.cholesky(inst[k]) for k in ("S", "Sq", "Psi"))
    n3, w3 = hermegauss(3)
    n2, w2 = hermegauss(2)
    w3, w2 = w3 / w3.sum(), w2 / w2.sum()
    dims = [(n3, w3)] * (M * d + 2 * d) + [(n2, w2)] * (M + 1)
    grids = np.array(list(itertools.product(*[range(len(n)) for n, _ in dims])))
    total = 0.0
    for start in range(0, len(grids), chunk):
        idx = grids[start:start + chunk]
        z = np.stack([dims[k][0][idx[:, k]] for k in range(len(dims))], axis=1)
        weight = np.prod(np.stack([dims[k][1][idx[:, k]] for k in range(len(dims))], axis=1), axis=1)
        X = (z[:, :M * d].reshape(-1, M, d)) @ LS.T
        xq = z[:, M * d:M * d + d] @ Lq.T
        w = z[:, M * d + d:M * d + 2 * d] @ Lw.T
        eps = inst["sigma"] * z[:, M * d + 2 * d:]
        y = np.einsum("bmd,bd->bm", X, w) + eps[:, :M]
        yhat = forward_prediction(X, xq, y, inst["W_PV"], inst["W_KQ"])
        total += float(np.sum(weight * (yhat - (w * xq).sum(-1) - eps[:, M]) ** 2))
    return total


def instance(seed: int, N: int = 4):
    rng = np.random.default_rng(seed)
    d = 2
    lam, S, Sq, Psi = spd(rng, d), spd(rng, d, 1.2, 2.0), spd(rng, d), spd(rng, d)
    c = 1.7
    wpv, wkq = rng.standard_normal((d + 1, d + 1)), rng.standard_normal((d + 1, d + 1))
    wpv[d, :d], wpv[d, d] = 0.0, 1 / c
    wkq[:d, :d], wkq[d, :d] = c * np.linalg.inv(gamma_oracle(lam, N)), 0.0
    return {"Lambda": lam, "S": S, "Sq": Sq, "Psi": Psi, "sigma": 0.6, "N": N, "W_PV": wpv, "W_KQ": wkq}


def derived_error(inst, M: int) -> float:
    poly = get("lsa.test_error").derivation.values["test_error"]
    values = {k: inst[k] for k in ("Lambda", "S", "Sq", "Psi", "sigma")}
    return float(poly.evaluate({**values, "M": M}, 2, inst["N"]))


@pytest.mark.parametrize("M", [1, 2, 3])
def test_test_error_equals_quadrature_of_the_forward_pass(M):
    inst = instance(10 + M)
    exact = quadrature_error(inst, M)
    derived = derived_error(inst, M)
    assert derived == pytest.approx(exact, rel=1e-9)
    # the seed's form (the variance term without 1/M) is rejected: the 1/M terms, counted M times
    variance = 2 * (derived_error(inst, M) - derived_error(inst, 2 * M))  # the error is A + B/M
    seed = derived + (M - 1) * variance
    if M > 1:
        assert abs(seed - exact) > 1e-3 * exact
    # a deliberately wrong variant: the unshifted formula
    unshifted = derived_error({**inst, "S": inst["Lambda"], "Sq": inst["Lambda"], "Psi": np.eye(2)}, M)
    assert abs(unshifted - exact) > 1e-3 * exact


def test_statements_hold_and_c_cancels():
    from derive.lsa_generalization import general_theorem, linear_instance, test_error

    for rid in ("lsa.test_error", "lsa.covariate_shift"):
        assert check_equations(get(rid)) == []
    assert test_error()["c_free"]
    assert general_theorem()["residual"].is_zero()
    assert linear_instance()["residual"].is_zero()


def test_special_cases_at_numbers():
    values = get("lsa.test_error").derivation.values
    lam, N = np.diag([1.0, 2.5]), 3
    G = gamma_oracle(lam, N)
    at_n = float(values["at_M_equals_N"].evaluate({"Lambda": lam}, 2, N))
    minimum = -0.5 * np.trace(lam @ lam @ np.linalg.inv(G))
    assert at_n == pytest.approx(2 * (minimum + np.trace(lam) / 2), rel=1e-12)
    bias = np.eye(2) - np.linalg.solve(G, lam)
    assert float(values["limit_M"].evaluate({"Lambda": lam}, 2, N)) == pytest.approx(
        np.trace(lam @ bias @ bias), rel=1e-12)
    unshifted = values["unshifted"]
    assert float(unshifted.evaluate({"Lambda": lam, "M": N}, 2, N)) == pytest.approx(at_n, rel=1e-12)


def test_covariate_shift_c_scaling():
    values = get("lsa.covariate_shift").derivation.values
    lam = np.diag([0.5, 1.0, 2.0])
    for c in (0.5, 1.0, 2.0, 3.0):
        got = float(values["limit_error"].evaluate({"Lambda": lam, "c": c}, 3))
        assert got == pytest.approx(c**2 * (c**2 - 1) ** 2 * np.trace(lam), rel=1e-12, abs=1e-12)
        assert float(values["context_shift"].evaluate({"Lambda": lam, "c": c}, 3)) == pytest.approx(
            (c**2 - 1) ** 2 * np.trace(lam), rel=1e-12, abs=1e-12)
    # a wrong variant (the error scaling like (c - 1)**2) is not what was derived
    assert float(values["limit_error"].evaluate({"Lambda": lam, "c": 2.0}, 3)) != pytest.approx(np.trace(lam))


def test_eval_accepts_the_named_inputs(capsys):
    from derive.__main__ import main

    inputs = {"Lambda": [[1, 0.2], [0.2, 2]], "N": 4, "M": 3, "S": [[1.5, 0], [0, 1]], "Sq": [[1, 0], [0, 1]],
              "Psi": [[1, 0], [0, 2]], "sigma": 0.5}
    assert main(["eval", "lsa.test_error", "--at", json.dumps(inputs)]) == 0
    assert "test_error" in json.loads(capsys.readouterr().out)["values"]
    assert main(["eval", "lsa.covariate_shift", "--at", '{"Lambda": [[1, 0], [0, 2]], "c": 2}']) == 0
    assert json.loads(capsys.readouterr().out)["values"]["limit_error"] == pytest.approx(4 * 9 * 3)
