"""lsa.random_covariance: the trained scale and the test error against an independent computation."""

from __future__ import annotations

import json

import pytest
import sympy
import sympy.stats

from derive.registry import check_equations, get


def independent(d: int, N: int, M: int):
    """sympy.stats over d explicit Exponential(1) entries: s = E tr(Λ²)/E tr(ΓΛ²) and the error at s.

    Γ = (1 + 1/N)Λ + tr(Λ)/N · I (Zhang, Frei & Bartlett) and the per-Λ error
    s²(1 + 1/M) tr Λ³ + s² tr Λ tr Λ²/M − 2s tr Λ² + tr Λ are typed here as the oracle's inputs.
    """
    lam = [sympy.stats.Exponential(f"l{j}", 1) for j in range(d)]
    tr = lambda k: sum(l**k for l in lam)  # noqa: E731
    E = lambda expr: sympy.simplify(sympy.stats.E(sympy.expand(expr)))  # noqa: E731
    num = E(tr(2))
    den = E((1 + sympy.Rational(1, N)) * tr(3) + tr(1) * tr(2) / N)
    s = sympy.nsimplify(num / den)
    err = E(s**2 * (1 + sympy.Rational(1, M)) * tr(3) + s**2 * tr(1) * tr(2) / M - 2 * s * tr(2) + tr(1))
    return s, err


@pytest.mark.parametrize("d,N,M", [(1, 1, 1), (2, 3, 5), (3, 4, 2)])
def test_scale_and_error_match_sympy_stats(d, N, M):
    values = get("lsa.random_covariance").derivation.values
    s, err = independent(d, N, M)
    assert float(values["scale"].evaluate({"d": d, "N": N})) == pytest.approx(float(s), rel=1e-12)
    assert float(values["test_error"].evaluate({"d": d, "N": N, "M": M})) == pytest.approx(float(err), rel=1e-12)
    # the seed's 1/3 is the limit, not the finite-N scale (a wrong variant)
    assert float(s) != pytest.approx(1 / 3, rel=1e-3)


def test_statements_limits_and_eval(capsys):
    result = get("lsa.random_covariance")
    assert check_equations(result) == []
    values = result.derivation.values
    assert float(values["scale_limit"].evaluate({})) == pytest.approx(1 / 3)
    assert float(values["slope"].evaluate({"d": 3, "N": 10})) == pytest.approx(2 * 10 / (30 + 3 + 5))
    from derive.__main__ import main

    assert main(["eval", "lsa.random_covariance", "--at", '{"d": 3, "N": 10, "M": 20}']) == 0
    out = json.loads(capsys.readouterr().out)["values"]
    assert out["scale"] == pytest.approx(10 / 38)


def test_gradient_vanishes_at_the_scale_for_a_general_law():
    from derive.lsa_random_covariance import trained

    t = trained()
    assert t["grad_at_star"].is_zero()
    assert t["s_limit"] == sympy.Rational(1, 3)
