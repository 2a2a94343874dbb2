"""lu.asymptotic_error and lu.double_descent: the derived formulas against an independent quadrature oracle,
the τ → ∞ limit against its separately derived form, the double limit, and simulations converging as d grows.

The oracle integrates over the Marchenko-Pastur density (ratio 1/κ, with its atom at 0 when κ < 1) by
adaptive quadrature and solves the effective-ridge equation with brentq; it shares nothing with the sympy
partial fractions or the closed-form Stieltjes root of derive/lu_asymptotics.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy
from scipy.integrate import quad
from scipy.optimize import brentq

from derive import lu_asymptotics as L
from derive.__main__ import main as derive_main


# ---------------------------------------------------------------- the independent oracle
def mp_integral(f, kappa):
    """∫ f(r) dμ(r), μ the spectrum of (1/k) Σ_j w_j w_jᵀ, k/d = κ (ratio γ = 1/κ)."""
    gamma = 1.0 / kappa
    lo, hi = (1 - gamma ** 0.5) ** 2, (1 + gamma ** 0.5) ** 2
    density = lambda r: np.sqrt(max((hi - r) * (r - lo), 0.0)) / (2 * np.pi * gamma * r)  # noqa: E731
    value = quad(lambda r: f(r) * density(r), lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    if gamma > 1:
        value += (1 - 1 / gamma) * f(0.0)
    return value


def oracle(alpha, kappa, tau, rho, lam):
    c = (1 + rho) / alpha
    I = lambda f: mp_integral(f, kappa)  # noqa: E731,E741
    ridge = lambda kt: kt * (1 - I(lambda r: (r + c) / (r + c + kt)) / tau) - lam  # noqa: E731
    kt = 0.0 if (lam == 0 and tau > 1) else brentq(ridge, 1e-12 if lam == 0 else 0.0, 100.0, xtol=1e-14)
    a = lambda r: r + c  # noqa: E731
    g0 = lambda r: r / (r + c)  # noqa: E731
    bias = I(lambda r: kt ** 2 * g0(r) ** 2 * a(r) / (a(r) + kt) ** 2)
    sigma2 = rho + I(lambda r: c * g0(r))
    df2 = I(lambda r: a(r) ** 2 / (a(r) + kt) ** 2) / tau
    e0 = rho + I(lambda r: (1 + c) * g0(r) ** 2 - 2 * g0(r) + 1)
    cross = I(lambda r: 2 * kt * (1 - (1 + c) * g0(r)) * g0(r) / (a(r) + kt) + kt ** 2 * (1 + c) * g0(r) ** 2
              / (a(r) + kt) ** 2)
    shift = (1 + c) * I(lambda r: a(r) / (a(r) + kt) ** 2) / tau
    e_idg = (bias + sigma2) / (1 - df2)
    return {"kt": kt, "e_idg": e_idg, "e_icl": e0 + cross + (bias + sigma2) * shift / (1 - df2)}


POINTS = [(1.0, 0.5, 2.0, 0.1, 0.0), (1.0, 0.5, 0.5, 0.1, 0.0), (1.0, 2.0, 2.0, 0.1, 0.0),
          (2.0, 0.5, 3.0, 0.1, 0.1), (1.0, 2.0, 0.6, 0.3, 0.05), (0.5, 1.5, 1.2, 0.5, 0.2)]


@pytest.mark.parametrize("point", POINTS)
def test_formula_agrees_with_quadrature(point):
    derived, expected = L.asymptotic_errors(*point), oracle(*point)
    assert derived["kt"] == pytest.approx(expected["kt"], rel=1e-7, abs=1e-10)
    for key in ("e_icl", "e_idg"):
        assert derived[key] == pytest.approx(expected[key], rel=1e-7)
    assert derived["g_task"] == pytest.approx(derived["e_icl"] - derived["e_idg"], rel=1e-10)


def check_lu_eval(result_id, capsys):
    """``derive eval`` for the lu results against the oracles (called from tests/test_eval_cli.py)."""
    if result_id == "lu.finite_d_error":
        from test_lu_finite_d import plain_monte_carlo

        rng = np.random.default_rng(4)
        G, g, w = np.eye(3) + 0.3 * rng.standard_normal((3, 3)), 0.2 * rng.standard_normal(3), rng.standard_normal(3)
        out = run_eval(result_id, {"G": G.tolist(), "g": g.tolist(), "rho": 0.4, "ell": 5, "w": w.tolist()}, capsys)
        for key, task in (("e_icl", None), ("e_task", w)):
            mean, se = plain_monte_carlo(np.column_stack([G, g]), 5, 0.4, task)
            assert abs(out["values"][key] - mean) < 5 * se
        return
    if result_id == "lu.asymptotic_error":
        point = dict(zip(("alpha", "kappa", "tau", "rho", "lam"), POINTS[3]))
        out = run_eval(result_id, point, capsys)
        expected = oracle(*POINTS[3])
        assert out["values"]["e_icl"] == pytest.approx(expected["e_icl"], rel=1e-7)
        assert out["values"]["e_idg"] == pytest.approx(expected["e_idg"], rel=1e-7)
        return
    out = run_eval(result_id, {"alpha": 1.0, "kappa": 0.5, "rho": 0.1, "lam": 0.0}, capsys)
    assert out["values"]["tau_peak"] == 1.0
    below, above = oracle(1.0, 0.5, 0.999, 0.1, 0.0), oracle(1.0, 0.5, 1.001, 0.1, 0.0)
    assert 0.001 * below["e_idg"] == pytest.approx(out["values"]["residue.e_idg"], rel=0.01)
    assert 0.001 * above["e_idg"] == pytest.approx(out["values"]["residue.e_idg"], rel=0.01)


def run_eval(result_id, inputs, capsys):
    capsys.readouterr()
    assert derive_main(["eval", result_id, "--at", json.dumps(inputs)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("result_id", ["lu.finite_d_error", "lu.asymptotic_error", "lu.double_descent"])
def test_eval(result_id, capsys):
    check_lu_eval(result_id, capsys)


# ---------------------------------------------------------------- limits
def test_tau_infinity_equals_the_population_ridge_optimum():
    limits = L.limits()
    assert all(gap == 0 for gap in limits["gaps"].values())
    assert limits["kt"] == [sympy.Symbol("lam", positive=True)]
    # and numerically: the formula at large tau approaches the tau = oo value
    for point in [(1.0, 0.5, 0.1, 0.0), (2.0, 1.5, 0.3, 0.2)]:
        alpha, kappa, rho, lam = point
        far = L.asymptotic_errors(alpha, kappa, 1e7, rho, lam)
        value = {key: float(L.derive_asymptotic_error().values["tau_infinity"][key].evaluate(
            {"alpha": alpha, "kappa": kappa, "rho": rho, "lam": lam})) for key in ("e_icl", "e_idg")}
        for key in value:
            assert far[key] == pytest.approx(value[key], rel=1e-5)


def test_double_limit_and_the_seed_factor():
    kappa, rho = sympy.Symbol("kappa", positive=True), sympy.Symbol("rho", positive=True)
    double = L.limits()["double"]
    assert sympy.simplify(double["below"]["g_task"] - (1 - kappa)) == 0
    assert double["above"]["g_task"] == 0
    seed = (1 + rho / (1 + rho)) * (1 - kappa)
    assert sympy.simplify(double["below"]["g_task"] - seed) != 0
    # at finite but large alpha, tau the formula is near 1 - kappa, not the seed's value
    near = L.asymptotic_errors(1e4, 0.5, 1e6, 1.0, 0.0)["g_task"]
    assert near == pytest.approx(0.5, abs=5e-3) and abs(near - 0.75) > 0.2  # the seed: (1 + 1/2) * 0.5


def test_ridgeless_peak():
    p = L.peak()
    assert p["tau_peak"] == 1
    for tau in (0.99, 1.01):
        assert L.asymptotic_errors(1.0, 0.5, tau, 0.1, 0.0)["e_icl"] > 30 * L.asymptotic_errors(1.0, 0.5, 3.0, 0.1,
                                                                                                 0.0)["e_icl"] / 3
    smooth = L.tau_peak(1.0, 0.5, 0.1, 0.01)
    assert 0.8 < smooth < 1.2
    assert np.isnan(L.tau_peak(1.0, 0.5, 0.1, 10.0))


def paper_result_1(tau, alpha, rho, kappa):
    """Ridgeless e_ICL as stated by Lu et al. (PNAS 2025, Result 1), written out here only as an expected value:
    x = (1+ρ)/α, m = M_κ(x), μ = x M_{κ/τ}(x); two branches, τ < 1 and τ > 1."""
    def stieltjes(x, k):
        return 2 / ((x + 1 - 1 / k) + np.sqrt((x + 1 - 1 / k) ** 2 + 4 * x / k))

    x = (1 + rho) / alpha
    m, mu = stieltjes(x, kappa), x * stieltjes(x, kappa / tau)
    if tau < 1:
        return tau * (1 + x) / (1 - tau) * (1 - tau * (1 - mu) ** 2 - (x - rho) / x * mu) - 2 * tau * (1 - mu) + rho + 1
    k_star = 1 / (1 - kappa * (m / (kappa + m)) ** 2)
    return ((k_star - 1 / (tau - 1)) * (1 + x) * (x * m) ** 2 + (3 - 2 * tau) / (tau - 1) * m * x ** 2
            + ((1 + rho) / (tau - 1) * m + 1) * x + rho * m / (tau - 1) + rho)


@pytest.mark.parametrize("alpha, kappa, tau, rho", [(1, 0.5, 2, 0.1), (1, 0.5, 0.5, 0.1), (1, 2, 2, 0.1),
                                                    (2, 0.5, 3, 0.1), (1, 2, 0.6, 0.3), (0.5, 1.5, 5, 0.5)])
def test_ridgeless_e_icl_equals_the_papers_result_1(alpha, kappa, tau, rho):
    derived = L.asymptotic_errors(alpha, kappa, tau, rho, 0.0)["e_icl"]
    assert derived == pytest.approx(paper_result_1(tau, alpha, rho, kappa), rel=1e-10)
