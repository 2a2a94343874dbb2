"""Tests of the reference oracles themselves (``tests/oracles.py``).

The oracles are trusted only because they agree with each other (quadrature
vs. moment expansion, two unrelated ways of integrating) and with closed forms
known independently (Matrix Cookbook §8.2, chi-square moments, the sample
second-moment formula), and because the same comparison rejects deliberately
wrong formulas.  Nothing here imports the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.engine.grammar import GrammarError, parse
from oracles import (
    assert_entrywise_close,
    cookbook_linear_outer,
    cookbook_norm4_x_xT_identity,
    cookbook_quadratic_form,
    cookbook_three_quadratic_forms,
    cookbook_two_quadratic_forms,
    cookbook_x_xT_A_x_xT,
    evaluate_expr,
    gauss_hermite_expectation,
    gaussian_degrees,
    moment_expectation,
    random_instance,
    sample_sum_expressions,
    single_draw_expressions,
    sample_second_moment_sandwich,
    wishart_quadratic_form_squared,
)

FAMILIES = {"x": "Lambda", "w": "I", "q": "Lambda"}



def both_oracles(text, values, d, N=None, gaussians=FAMILIES):
    """Quadrature and moment expansion; asserts they agree, returns quadrature."""
    quadrature = gauss_hermite_expectation(text, gaussians, values=values, d=d, N=N)
    moments = moment_expectation(text, gaussians, values=values, d=d, N=N)
    assert_entrywise_close(quadrature, moments, label=f"quadrature vs moments for {text!r}")
    return quadrature


# ---------------------------------------------------------------------------
# (a) evaluate_expr against direct numpy
# ---------------------------------------------------------------------------


def test_evaluate_expr_matches_numpy_on_fixed_values():
    rng = np.random.default_rng(1)
    d, N = 3, 4
    A, B = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    x = rng.standard_normal((N, d))
    q, v = rng.standard_normal(d), rng.standard_normal(d)
    values = {"A": A, "B": B, "x": x, "q": q, "v": v, "c": 2.5}
    S = x.T @ x  # Σ_i x_i x_iᵀ
    cases = {
        "sum(i, x[i] @ x[i].T)": S,
        "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2": S @ A @ S / N**2,
        "sum(i, sum(j, x[i].T @ A @ x[j]))": x.sum(0) @ A @ x.sum(0),
        "q @ q.T @ A.T @ q": np.outer(q, q) @ A.T @ q,
        "(q.T @ A @ q) * (q.T @ B @ q)": (q @ A @ q) * (q @ B @ q),
        "tr(A @ B.T) * I - c * inv(A) + A ** 2 @ B ** -1": np.trace(A @ B.T) * np.eye(d)
        - 2.5 * np.linalg.inv(A)
        + A @ A @ np.linalg.inv(B),
        "v.T @ A": (v @ A)[None, :],
        "-(d * N) * v / 3": -(d * N) * v / 3,
        "(A @ A.T) ** (1/2) @ (A @ A.T) ** (1/2)": A @ A.T,
    }
    for text, expected in cases.items():
        assert_entrywise_close(evaluate_expr(text, values, N=N), expected, rtol=1e-12, label=text)


def test_evaluate_expr_shapes():
    values = {"A": np.eye(2), "v": np.ones(2)}
    assert isinstance(evaluate_expr("v.T @ A @ v", values), float)
    assert evaluate_expr("A @ v", values).shape == (2,)
    assert evaluate_expr("v @ v.T", values).shape == (2, 2)
    assert evaluate_expr("v.T", values).shape == (1, 2)


@pytest.mark.parametrize(
    "text",
    ["A * B", "A @ v @ A", "A + v", "A / A", "x[i]", "tr(v)"],
)
def test_evaluate_expr_rejects_ill_formed(text):
    values = {"A": np.eye(2), "B": np.eye(2), "v": np.ones(2), "x": np.ones((2, 2))}
    with pytest.raises((ValueError, GrammarError)):
        evaluate_expr(text, values, N=2)


# ---------------------------------------------------------------------------
# degrees and guards
# ---------------------------------------------------------------------------


def test_gaussian_degrees():
    tree = parse("sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) @ (w.T @ w + 1) * tr(A)")
    assert gaussian_degrees(tree, FAMILIES) == {"x[N]": 4, "w": 2}
    assert gaussian_degrees(parse("(x.T @ A @ x) ** 3"), FAMILIES) == {"x": 6}
    assert gaussian_degrees(parse("inv(A) @ B"), FAMILIES) == {}
    assert gaussian_degrees(parse("sum(i, x[i] @ x[i].T) @ x @ x.T @ x @ x.T"), FAMILIES) == {"x": 4, "x[N]": 2}
    assert gaussian_degrees(parse("sum(i, x[i] @ x[i].T, M) @ sum(j, x[j] @ x[j].T)"), FAMILIES) == {"x[M]": 2,
                                                                                                     "x[N]": 2}
    with pytest.raises(ValueError):
        gaussian_degrees(parse("inv(x @ x.T)"), FAMILIES)
    with pytest.raises(ValueError):
        gaussian_degrees(parse("A / (x.T @ x)"), FAMILIES)


def test_quadrature_refuses_too_many_points():
    values = random_instance(3, 0)
    with pytest.raises(ValueError, match="max_points"):
        gauss_hermite_expectation("(sum(i, x[i].T @ x[i])) ** 6", FAMILIES, values=values, d=3, N=3)


def test_values_for_a_gaussian_are_refused():
    values = dict(random_instance(2, 0), x=np.ones(2))
    with pytest.raises(ValueError):
        gauss_hermite_expectation("x.T @ x", FAMILIES, values=values, d=2)


# ---------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_chi_square_moments(d, k):
    """``E[(wᵀw)^k] = d (d+2) ... (d+2k-2)`` for ``w ~ N(0, I_d)``."""
    expected = math.prod(d + 2 * j for j in range(k))
    value = both_oracles(f"(w.T @ w) ** {k}", {}, d)
    assert_entrywise_close(value, expected, label=f"E[(wᵀw)^{k}], d={d}")


@pytest.mark.parametrize("d", [2, 3])
def test_cookbook_formulas(d):
    values = random_instance(d, 10 + d)
    L, A, B, C, u, v = (values[k] for k in ("Lambda", "A", "B", "C", "u", "v"))
    cases = {
        "x.T @ A @ x": cookbook_quadratic_form(A, L),
        "(A @ x + u) @ (B @ x + v).T": cookbook_linear_outer(A, u, B, v, L),
        "x @ x.T @ A @ x @ x.T": cookbook_x_xT_A_x_xT(A, L),
        "(x.T @ A @ x) * (x.T @ B @ x)": cookbook_two_quadratic_forms(A, B, L),
        "x.T @ A @ x @ x.T @ B @ x": cookbook_two_quadratic_forms(A, B, L),
        "(x.T @ A @ x) * (x.T @ B @ x) * (x.T @ C @ x)": cookbook_three_quadratic_forms(A, B, C, L),
        "(w.T @ w) ** 2 * w @ w.T": cookbook_norm4_x_xT_identity(d),
        "w @ w.T @ w @ w.T @ w @ w.T": cookbook_norm4_x_xT_identity(d),
        # x + w is Gaussian with covariance Λ + I
        "(x + w) @ (x + w).T @ A @ (x + w) @ (x + w).T": cookbook_x_xT_A_x_xT(A, L + np.eye(d)),
        # independence: E[wᵀAw · xᵀBx] = tr(A) tr(BΛ)
        "(w.T @ A @ w) * (x.T @ B @ x)": np.trace(A) * np.trace(B @ L),
        # odd degree vanishes
        "x @ x.T @ A @ x": np.zeros(d),
    }
    for text, expected in cases.items():
        assert_entrywise_close(both_oracles(text, values, d), expected, label=f"{text}, d={d}")


@pytest.mark.parametrize("d, N", [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2)])
def test_sample_moment_formulas(d, N):
    values = random_instance(d, 20 + 10 * d + N)
    L, A, B = values["Lambda"], values["A"], values["B"]
    sandwich = both_oracles("sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2", values, d, N)
    assert_entrywise_close(sandwich, sample_second_moment_sandwich(A, L, N), label="E[SAS]")
    wishart = both_oracles("(w.T @ sum(i, x[i] @ x[i].T) @ w) ** 2", values, d, N)
    assert_entrywise_close(wishart, wishart_quadratic_form_squared(L, N), label="E[(wᵀSw)²]")
    # a query q independent of the samples: E[qᵀ A S B q] = N tr(A Λ B Λ)
    query = both_oracles("q.T @ A @ sum(i, x[i] @ x[i].T) @ B @ q", values, d, N)
    assert_entrywise_close(query, N * np.trace(A @ L @ B @ L), label="E[qᵀASBq]")


@pytest.mark.parametrize("d, N", [(2, 1), (2, 3), (3, 2)])
def test_plain_use_of_an_indexed_family_is_an_independent_draw(d, N):
    """``x`` next to ``x[i]`` is one more draw, independent of the ``x[i]``."""
    values = random_instance(d, 40 + d + N)
    L, A = values["Lambda"], values["A"]
    value = both_oracles("x.T @ A @ sum(i, x[i] @ x[i].T) @ x", values, d, N)
    assert_entrywise_close(value, N * np.trace(A @ L @ L))
    value = both_oracles("(x.T @ A @ x) * sum(i, x[i].T @ x[i])", values, d, N)
    assert_entrywise_close(value, N * np.trace(A @ L) * np.trace(L))


def test_evaluate_expr_family_used_both_ways():
    rng = np.random.default_rng(2)
    draws, single = rng.standard_normal((3, 2)), rng.standard_normal(2)
    value = evaluate_expr("x.T @ sum(i, x[i] @ x[i].T) @ x", {"x": single, "x[]": draws}, N=3)
    assert_entrywise_close(value, single @ draws.T @ draws @ single, rtol=1e-12)


def test_covariance_given_as_expression():
    d = 2
    values = random_instance(d, 3)
    gaussians = {"y": "2 * Lambda + I"}
    value = both_oracles("y @ y.T @ A @ y @ y.T", values, d, gaussians=gaussians)
    assert_entrywise_close(value, cookbook_x_xT_A_x_xT(values["A"], 2 * values["Lambda"] + np.eye(d)))


def test_monte_carlo_agrees_with_quadrature():
    """A plain simulation through ``evaluate_expr`` (loose: 4 standard errors)."""
    d, N, samples = 2, 2, 4000
    values = random_instance(d, 5)
    text = "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2"
    rng = np.random.default_rng(6)
    L = np.linalg.cholesky(values["Lambda"])
    draws = np.array(
        [evaluate_expr(text, dict(values, x=rng.standard_normal((N, d)) @ L.T), N=N) for _ in range(samples)]
    )
    error = np.abs(draws.mean(0) - both_oracles(text, values, d, N))
    assert np.all(error <= 4 * draws.std(0) / np.sqrt(samples))


# ---------------------------------------------------------------------------
# negative controls: the same comparison must reject wrong formulas
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3])
def test_wrong_formulas_are_rejected(d):
    values = random_instance(d, 30 + d)
    L, A, B = values["Lambda"], values["A"], values["B"]
    N = 2
    wrong = {
        # Isserlis without the Aᵀ pairing
        "x @ x.T @ A @ x @ x.T": L @ A @ L + np.trace(A @ L) * L,
        # Isserlis with A in place of Aᵀ (right only for symmetric A)
        "x @ x.T @ A @ x @ x.T ": 2 * L @ A @ L + np.trace(A @ L) * L,
        # factor 2 forgotten: tr(AΣBΣ) + tr(AΣ)tr(BΣ) misses the Bᵀ pairing
        "(x.T @ A @ x) * (x.T @ B @ x)": np.trace(A @ L @ B @ L) + np.trace(A @ L) * np.trace(B @ L),
        # the 1/N term dropped
        "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2": L @ A @ L,
        # the 1/N term with N² instead of N
        "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2 ": L @ A @ L
        + (L @ A.T @ L + np.trace(A @ L) * L) / N**2,
    }
    for text, formula in wrong.items():
        value = both_oracles(text.strip(), values, d, N)
        with pytest.raises(AssertionError):
            assert_entrywise_close(value, formula, label=text)


def test_comparison_is_relative_to_the_largest_entry():
    assert_entrywise_close([1e6, 0.0], [1e6 + 1e-4, 1e-5])
    with pytest.raises(AssertionError):
        assert_entrywise_close([1.0, 0.0], [1.0, 1e-6])
    with pytest.raises(AssertionError):
        assert_entrywise_close([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(AssertionError):
        assert_entrywise_close([np.nan], [0.0])


# ---------------------------------------------------------------------------
# random expressions: the two oracles agree
# ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(text=single_draw_expressions(), seed=st.integers(0, 10**6))
def test_random_single_draw_expressions_oracles_agree(text, seed):
    both_oracles(text, random_instance(2, seed), 2)


@settings(max_examples=25, deadline=None)
@given(text=sample_sum_expressions(), N=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_random_sample_sum_expressions_oracles_agree(text, N, seed):
    both_oracles(text, random_instance(2, seed), 2, N)
