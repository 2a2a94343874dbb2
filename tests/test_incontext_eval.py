"""``python -m derive eval`` for the incontext results against oracles written from the definitions in numpy.

:func:`check_incontext_eval` is also called from ``tests/test_eval_cli.py`` (every result has an oracle there).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from derive.__main__ import main as derive_main
from derive.registry import all_results

RNG = np.random.default_rng(14)
IDS = [r.id for r in all_results() if r.id.startswith("incontext.")]


def run_eval(result_id: str, inputs: dict, capsys) -> dict:
    encoded = json.dumps({k: (np.asarray(v).tolist() if not isinstance(v, (int, float)) else v)
                          for k, v in inputs.items()})
    capsys.readouterr()
    assert derive_main(["eval", result_id, "--at", encoded]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def close(a, b, rtol=1e-9) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.size == b.size and np.allclose(a.reshape(b.shape), b, rtol=rtol, atol=rtol * max(1.0, np.abs(b).max()))


def lsa_prediction(X, y, q, W_pv, W_kq) -> float:
    """ZFB's layer from its definition: entry (d + 1, n + 1) of E + W^PV E Eᵀ W^KQ E / n."""
    n, d = X.shape
    E = np.block([[X.T, q[:, None]], [y[None, :], np.zeros((1, 1))]])
    return float((E + W_pv @ E @ E.T @ W_kq @ E / n)[d, n])


def gd_one_layer(capsys) -> None:
    n, d = 6, 3
    X, y, q = RNG.standard_normal((n, d)), RNG.standard_normal(n), RNG.standard_normal(d)
    W_pv, W_kq = RNG.standard_normal((d + 1, d + 1)), RNG.standard_normal((d + 1, d + 1))
    P, eta = RNG.standard_normal((d, d)), 0.7
    blocks = {"WPV11": W_pv[:d, :d], "wpv12": W_pv[:d, d], "u12": W_pv[d, :d], "u": float(W_pv[d, d]),
              "U11": W_kq[:d, :d], "wkq12": W_kq[:d, d], "u21": W_kq[d, :d], "wkq22": float(W_kq[d, d])}
    out = run_eval("incontext.one_layer_gd", {"X": X, "y": y, "q": q, "P": P, "eta": eta, **blocks}, capsys)
    assert close(out["values"]["prediction"], lsa_prediction(X, y, q, W_pv, W_kq))
    assert close(out["values"]["pgd_prediction"], q @ (eta * P @ X.T @ y / n))
    assert close(out["values"]["gradient_at_zero"], -X.T @ y / n)


def gd_zfb(capsys) -> None:
    n, d = 7, 3
    X, y, q = RNG.standard_normal((n, d)), RNG.standard_normal(n), RNG.standard_normal(d)
    A = RNG.standard_normal((d, d))
    Lambda = A @ A.T / d + np.eye(d)
    Gamma = (1 + 1 / n) * Lambda + np.trace(Lambda) / n * np.eye(d)  # ZFB's Γ, typed here as the oracle
    out = run_eval("incontext.zfb_preconditioned_gd", {"X": X, "y": y, "q": q, "Lambda": Lambda, "N": n,
                                                       "u": 1.3}, capsys)
    assert close(out["values"]["minimum_prediction"], q @ np.linalg.solve(Gamma, X.T @ y) / n)


def gd_depth(capsys) -> None:
    n, d = 6, 3
    X, y, q, w = RNG.standard_normal((n, d)), RNG.standard_normal(n), RNG.standard_normal(d), RNG.standard_normal(d)
    P, eta = RNG.standard_normal((d, d)), 0.4
    S, wls, T = X.T @ X / n, np.linalg.solve(X.T @ X, X.T @ y), RNG.standard_normal((d, d))
    inputs = {"X": X, "y": y, "q": q, "w": w, "P": P, "eta": eta, "S": S, "wls": wls, "T": T,
              "res": RNG.standard_normal(n), "s": 0.3, "U11": RNG.standard_normal((d, d)), "u": -0.8}
    out = run_eval("incontext.depth_t_gd", inputs, capsys)
    w1 = w - eta * P @ X.T @ (X @ w - y) / n
    assert close(out["values"]["r_after"], y - X @ w1) and close(out["values"]["s_after"], -q @ w1)
    assert close(out["values"]["open_extra"], inputs["u"] * inputs["s"] * q @ inputs["U11"] @ q / n)
    weights = np.zeros(d)
    for t in range(1, 5):
        weights = weights - eta * P @ X.T @ (X @ weights - y) / n  # GD on the data: wls solves the normal equations
        assert close(out["values"][f"closed_form.{t}"], weights)


def cg_kernel_head(capsys) -> None:
    n, m = 6, 2
    Phi, p = RNG.standard_normal((n, m)), RNG.standard_normal(n)
    Q, R = np.linalg.qr(Phi)
    out = run_eval("incontext.kernel_head", {"Phi": Phi, "p": p, "Q": Q, "R": R}, capsys)
    assert close(out["values"]["head"], Phi @ Phi.T @ p)
    assert close(out["values"]["rank_residual"], np.zeros((n, n)))


def cg_layer(capsys) -> None:
    n, m, lam = 6, 2, 0.5
    Phi, y = RNG.standard_normal((n, m)), RNG.standard_normal(n)
    A = Phi @ Phi.T + lam * np.eye(n)
    alpha, res, p = RNG.standard_normal(n), RNG.standard_normal(n), RNG.standard_normal(n)
    astar, delta = np.linalg.solve(A, y), 0.2
    inputs = {"Phi": Phi, "y": y, "alpha": alpha, "res": res, "p": p, "lam": lam, "a": 0.3, "A": A,
              "astar": astar, "delta": delta, "rat": 1.4}
    out = run_eval("incontext.cg_layer", inputs, capsys)
    a = res @ res / (p @ A @ p)  # Hestenes–Stiefel, written out
    alpha1, res1 = alpha + a * p, res - a * A @ p
    p1 = res1 + (res1 @ res1) / (res @ res) * p
    for name, value in (("alpha_next", alpha1), ("r_next", res1), ("p_next", p1)):
        assert close(out["values"][name], value)
    f = lambda x: 0.5 * (x - astar) @ A @ (x - astar)  # noqa: E731
    exact = p @ A @ (astar - alpha) / (p @ A @ p)
    assert close(out["values"]["decrease"], f(alpha + (1 + delta) * exact * p) - f(alpha))
    grid = np.linspace(1.0, 1.4, 400_001)
    assert close(out["values"]["reciprocal_error"], np.max(grid * (1 - (grid - 1) / 1.4) - 1), rtol=1e-8)


def cg_bound(capsys) -> None:
    n, m, lam = 5, 2, 0.3
    V = np.linalg.qr(RNG.standard_normal((n, n)))[0]
    D = np.diag(RNG.uniform(0.1, 2.0, n))
    Q = np.linalg.qr(RNG.standard_normal((n, m)))[0]
    C = RNG.standard_normal((m, m))
    out = run_eval("incontext.cg_bound", {"V": V, "D": D, "lam": lam, "Q": Q, "C": C + C.T,
                                          "K": V @ D @ V.T}, capsys)
    assert close(out["values"]["shifted"], V @ D @ V.T + lam * np.eye(n))
    assert close(out["values"]["low_rank"], np.zeros((n, n)))


def softmax(capsys) -> None:
    L, n, d, lam = 3, 4, 2, 2.0
    Qs, Kx, y = RNG.standard_normal((L, d)), RNG.standard_normal((n, d)), RNG.standard_normal(n)
    root = np.sqrt(d)
    D_q, D_k = np.diag(np.exp((Qs ** 2).sum(1) / (2 * root))), np.diag(np.exp((Kx ** 2).sum(1) / (2 * root)))
    K_rbf = np.exp(-((Qs[:, None] - Kx[None]) ** 2).sum(-1) / (2 * root))
    K_exp = np.exp(Qs @ Kx.T / root)
    Dt = np.diag((K_rbf @ D_k).sum(1))
    K = np.exp(Kx @ Kx.T / root)
    out = run_eval("incontext.softmax_smoother", {"q": Qs[0], "k": Kx[0], "D_q": D_q, "Dt": Dt, "K_rbf": K_rbf,
                                                  "D_k": D_k, "K": K, "lam": lam, "K_q": K_exp, "y": y}, capsys)
    assert close(out["values"]["split"], Qs[0] @ Kx[0])
    softmax_weights = K_exp / K_exp.sum(1, keepdims=True)
    assert close(out["values"]["normalised"], softmax_weights)
    assert close(out["values"]["neumann"], (K + lam * np.eye(n)) @ (np.eye(n) - K / lam + K @ K / lam ** 2) / lam)


ORACLES = {"incontext.one_layer_gd": gd_one_layer, "incontext.zfb_preconditioned_gd": gd_zfb,
           "incontext.depth_t_gd": gd_depth, "incontext.kernel_head": cg_kernel_head,
           "incontext.cg_layer": cg_layer, "incontext.cg_bound": cg_bound,
           "incontext.softmax_smoother": softmax}


def check_incontext_eval(result_id: str, capsys) -> None:
    """``derive eval`` of ``result_id`` against its numpy oracle (called from tests/test_eval_cli.py)."""
    ORACLES[result_id](capsys)


def test_every_incontext_result_has_an_oracle():
    assert set(IDS) == set(ORACLES)


@pytest.mark.parametrize("result_id", IDS)
def test_eval_matches_oracle(result_id, capsys):
    check_incontext_eval(result_id, capsys)
