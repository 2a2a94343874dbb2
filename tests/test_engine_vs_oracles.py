"""The engine's symbolic expectations against two independent numerical oracles.

For each expression, ``derive.expect.expectation`` gives a coordinate-free
polynomial; evaluated at random instances (SPD ``Λ``, non-symmetric ``A``,
``B``, ``C``, random vectors ``u``, ``v`` and scalar ``c``) for d = 2, 3 and
N = 1, 2, 3 where sums occur, it must equal entrywise, to 1e-9 relative to the
largest entry, both

* the exact tensor-product Gauss-Hermite quadrature (``gauss_hermite_expectation``)
* the exact-moment expansion in scalar standard normals (``moment_expectation``),

see ``tests/oracles.py``.  Families: ``x ~ N(0, Λ)`` (used as ``x`` or as
i.i.d. draws ``x[i]``), ``w ~ N(0, I)``, and a query ``q ~ N(0, Λ)``
independent of the ``x[i]``.  Negative controls: wrong closed forms pushed
through the same pipeline (engine → ``evaluate``) must fail the same comparison.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracles import (
    assert_entrywise_close,
    cookbook_linear_outer,
    cookbook_norm4_x_xT_identity,
    cookbook_quadratic_form,
    cookbook_three_quadratic_forms,
    cookbook_two_quadratic_forms,
    cookbook_x_xT_A_x_xT,
    gauss_hermite_expectation,
    moment_expectation,
    quadrature_points,
    random_instance,
    sample_second_moment_sandwich,
    sample_sum_expressions,
    single_draw_expressions,
    wishart_quadratic_form_squared,
)

expect = pytest.importorskip("derive.expect")

FAMILIES = {"x": "Lambda", "w": "I", "q": "Lambda", "y": "Sigma"}
VECTORS = ("u", "v")
SCALARS = ("c",)

SINGLE = [(1, None), (2, None), (3, None)]
SUMS = [(1, 2), (2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]

# (expression, [(d, N), ...])
EXPRESSIONS = [
    # one draw, 2nd / 4th / 6th order
    ("x @ x.T", SINGLE),
    ("x @ x.T @ A @ x @ x.T", SINGLE),
    ("(x.T @ A @ x) * (x.T @ B @ x)", SINGLE),
    ("x.T @ A @ x @ x.T @ B @ x", SINGLE),
    ("tr(A @ x @ x.T @ B @ x @ x.T)", SINGLE),
    ("x @ x.T @ x @ x.T", SINGLE),
    ("(x @ x.T) ** 2 @ A", SINGLE),
    ("x @ x.T @ A @ x @ x.T @ B @ x @ x.T", SINGLE),
    ("(x.T @ A @ x) * (x.T @ B @ x) * (x.T @ C @ x)", SINGLE),
    ("tr(x @ x.T @ A) ** 3", SINGLE),
    ("v.T @ x @ x.T @ A @ x @ x.T @ u", SINGLE),
    ("(v.T @ x) * (x.T @ A @ x) * (x.T @ u)", SINGLE),
    ("u.T @ x @ x.T @ A @ x @ x.T @ inv(Lambda) @ x @ x.T @ B", SINGLE),  # a row vector
    ("(A @ x + v) @ (B @ x + u).T", SINGLE),
    ("(x @ x.T - Lambda) @ A @ (x @ x.T - Lambda)", SINGLE),
    ("c * x @ x.T @ A.T @ x @ x.T + inv(A) @ B", SINGLE),
    ("x @ x.T @ A @ x", SINGLE),  # odd: zero
    # two families
    ("(x + w) @ (x + w).T @ A @ (x + w) @ (x + w).T", SINGLE),
    ("x @ w.T @ A @ w @ x.T", SINGLE),
    ("(w.T @ A @ w) * (x.T @ B @ x) * (w.T @ x) ** 2", SINGLE),
    ("y @ y.T @ A @ y @ y.T @ x @ x.T", SINGLE),
    ("(y.T @ x) ** 2 * (y.T @ w) ** 2", SINGLE),
    ("(x.T @ q) ** 4", SINGLE),
    # constants beyond plain letters: powers, inverses of sums, rational powers, d
    ("x @ x.T @ inv(Lambda + I) @ x @ x.T", SINGLE),
    ("(x.T @ Lambda ** (1/2) @ x) * (x.T @ Lambda ** (-1/2) @ x)", SINGLE),
    ("(x @ x.T + I) @ A @ (x @ x.T - d * I)", SINGLE),
    ("(x @ x.T @ A) ** 3", SINGLE),
    ("(x @ x.T - Lambda) @ (x @ x.T - Lambda) @ (x @ x.T - Lambda)", SINGLE),
    ("x.T @ A @ x / c + (u.T @ x + c) ** 4", SINGLE),
    # sums over i.i.d. draws
    ("sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2", SUMS),
    ("sum(i, x[i] @ x[i].T @ A @ x[i] @ x[i].T) / N", SUMS),
    ("sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) @ B @ sum(k, x[k] @ x[k].T) / N**3", SUMS),
    ("sum(i, sum(j, x[i] @ x[j].T @ A @ x[j] @ x[i].T))", SUMS),
    ("tr(sum(i, x[i] @ x[i].T) @ A) * tr(sum(j, x[j] @ x[j].T) @ B)", SUMS),
    ("sum(i, (x[i].T @ A @ x[i]) * x[i] @ x[i].T) / N", SUMS),
    ("sum(i, x[i] @ x[i].T @ A @ x[i])", SUMS),  # odd: zero
    ("(sum(i, x[i] @ x[i].T) / N - Lambda) @ A @ (sum(j, x[j] @ x[j].T) / N - Lambda)", SUMS),
    ("sum(i, x[i] @ x[i].T) @ (d * A + N * B) @ sum(j, x[j] @ x[j].T)", SUMS),
    ("sum(i, x[i].T @ x[i]) ** 3 / N**3", SUMS),
    ("sum(i, sum(j, (x[i].T @ A @ x[j]) * (x[j].T @ B @ x[i])))", SUMS),
    ("sum(i, sum(j, sum(k, x[i] @ x[j].T @ x[k] @ x[i].T @ x[j] @ x[k].T)))", SUMS),
    ("sum(i, x[i]) @ sum(j, x[j]).T @ A @ sum(k, x[k]) @ sum(l, x[l]).T", SUMS),
    ("(sum(i, x[i] @ x[i].T) @ A) ** 2 @ B / N", SUMS),
    ("(sum(i, x[i].T @ x[i]) - N * tr(Lambda)) ** 2", SUMS),
    ("sum(i, x[i] @ x[i].T @ A @ x[i] @ x[i].T) / (N * (N - 1) + 1)", SUMS),
    ("sum(i, y[i] @ x[i].T) @ sum(j, x[j] @ y[j].T)", SUMS),
    # sums next to other families
    ("w.T @ sum(i, x[i] @ x[i].T) @ w", SUMS),
    ("(w.T @ sum(i, x[i] @ x[i].T) @ w) ** 2", SUMS),
    ("q.T @ A @ sum(i, x[i] @ x[i].T) @ B @ q / N", SUMS),
    ("sum(i, x[i] @ x[i].T) @ q @ q.T @ sum(j, x[j] @ x[j].T)", SUMS),
    ("sum(i, x[i] @ q.T) @ A @ sum(j, q @ x[j].T)", SUMS),
    ("sum(i, (w.T @ x[i]) ** 2 * x[i] @ x[i].T)", SUMS),
    # a family used bare next to its indexed draws: one more independent draw
    ("x.T @ A @ sum(i, x[i] @ x[i].T) @ x / N", SUMS),
    ("sum(i, x[i] @ x[i].T) @ x @ x.T @ sum(j, x[j] @ x[j].T)", SUMS),
    # in-context regression error with labels y_i = wᵀx_i and prediction qᵀ A (1/N) Σ x_i y_i
    ("(q.T @ A @ sum(i, x[i] @ x[i].T @ w) / N - q.T @ w) ** 2", SUMS),
]


@functools.lru_cache(maxsize=None)
def engine_polynomial(text: str):
    return expect.expect(text, gaussians=FAMILIES, vectors=VECTORS, scalars=SCALARS)


def engine_value(text: str, values, d: int, N):
    return engine_polynomial(text).evaluate(values, d, N)


def oracle_values(text: str, values, d: int, N):
    quadrature = gauss_hermite_expectation(text, FAMILIES, VECTORS, SCALARS, values, d, N)
    moments = moment_expectation(text, FAMILIES, VECTORS, SCALARS, values, d, N)
    return quadrature, moments


def assert_engine_matches_oracles(text: str, d: int, N, seed: int):
    values = random_instance(d, seed)
    engine = engine_value(text, values, d, N)
    quadrature, moments = oracle_values(text, values, d, N)
    where = f"E[{text}] at d={d}, N={N}, seed={seed}"
    assert_entrywise_close(engine, quadrature, label=f"engine vs quadrature, {where}")
    assert_entrywise_close(engine, moments, label=f"engine vs moment expansion, {where}")


CASES = [(text, d, N) for text, configs in EXPRESSIONS for d, N in configs]


@pytest.mark.parametrize("text, d, N", CASES, ids=[f"{t} d={d} N={N}" for t, d, N in CASES])
def test_engine_matches_both_oracles(text, d, N):
    assert_engine_matches_oracles(text, d, N, seed=1000 * d + 10 * (N or 0) + len(text))


def test_enough_expressions():
    assert len(EXPRESSIONS) >= 25


# ---------------------------------------------------------------------------
# Matrix Cookbook §8.2 and sample-moment closed forms as expected values
# ---------------------------------------------------------------------------


def closed_forms(values, d, N):
    """``text -> closed form`` at the instance (zero mean, x ~ N(0, Λ), w ~ N(0, I))."""
    L, A, B, C, u, v = (values[k] for k in ("Lambda", "A", "B", "C", "u", "v"))
    return {
        "x.T @ A @ x": cookbook_quadratic_form(A, L),
        "(A @ x + u) @ (B @ x + v).T": cookbook_linear_outer(A, u, B, v, L),
        "x @ x.T @ A @ x @ x.T": cookbook_x_xT_A_x_xT(A, L),
        "(x.T @ A @ x) * (x.T @ B @ x)": cookbook_two_quadratic_forms(A, B, L),
        "(x.T @ A @ x) * (x.T @ B @ x) * (x.T @ C @ x)": cookbook_three_quadratic_forms(A, B, C, L),
        "(w.T @ w) ** 2 * w @ w.T": cookbook_norm4_x_xT_identity(d),
        "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2": sample_second_moment_sandwich(A, L, N),
        "(w.T @ sum(i, x[i] @ x[i].T) @ w) ** 2": wishart_quadratic_form_squared(L, N),
    }


@pytest.mark.parametrize("d, N", [(2, 1), (2, 3), (3, 2), (5, 4)])
def test_engine_matches_closed_forms(d, N):
    values = random_instance(d, 77 + d + N)
    for text, expected in closed_forms(values, d, N).items():
        assert_entrywise_close(engine_value(text, values, d, N), expected, label=f"{text}, d={d}, N={N}")


# ---------------------------------------------------------------------------
# negative controls: wrong formulas through the same pipeline must be rejected
# ---------------------------------------------------------------------------

WRONG_FORMULAS = [
    # (expression, a plausible wrong closed form, what is wrong)
    ("x @ x.T @ A @ x @ x.T", "Lambda @ A @ Lambda + tr(A @ Lambda) * Lambda", "Isserlis without the Aᵀ pairing"),
    ("x @ x.T @ A @ x @ x.T", "2 * Lambda @ A @ Lambda + tr(A @ Lambda) * Lambda", "A in place of Aᵀ"),
    ("(x.T @ A @ x) * (x.T @ B @ x)", "tr(A @ Lambda @ B @ Lambda) + tr(A @ Lambda) * tr(B @ Lambda)", "Bᵀ term lost"),
    ("sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2", "Lambda @ A @ Lambda", "1/N term dropped"),
    (
        "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2",
        "Lambda @ A @ Lambda + (Lambda @ A @ Lambda + tr(A @ Lambda) * Lambda) / N",
        "Aᵀ lost in the 1/N term",
    ),
    ("w.T @ sum(i, x[i] @ x[i].T) @ w", "tr(Lambda)", "factor N dropped"),
    ("(w.T @ A @ w) * (x.T @ B @ x) * (w.T @ x) ** 2", "tr(A) * tr(B @ Lambda) * tr(Lambda)", "w, x treated as if the cross pairings vanished"),
]


@pytest.mark.parametrize("text, wrong, why", WRONG_FORMULAS, ids=[w[2] for w in WRONG_FORMULAS])
@pytest.mark.parametrize("d", [2, 3])
def test_wrong_formula_is_rejected(text, wrong, why, d):
    N = 2
    values = random_instance(d, 500 + d)
    wrong_value = expect.expect(wrong, gaussians=FAMILIES, vectors=VECTORS, scalars=SCALARS).evaluate(values, d, N)
    quadrature, moments = oracle_values(text, values, d, N)
    for reference in (quadrature, moments):
        with pytest.raises(AssertionError):
            assert_entrywise_close(wrong_value, reference, label=why)
    # ... while the engine's own answer passes the very same comparison
    assert_entrywise_close(engine_value(text, values, d, N), quadrature)


@pytest.mark.parametrize("d", [2, 3])
def test_engine_evaluated_at_the_wrong_N_is_rejected(d):
    """The comparison is sensitive to the 1/N terms: N+1 in place of N fails."""
    text = "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2"
    values = random_instance(d, 600 + d)
    quadrature, _ = oracle_values(text, values, d, 2)
    with pytest.raises(AssertionError):
        assert_entrywise_close(engine_value(text, values, d, 3), quadrature)


# ---------------------------------------------------------------------------
# random expressions
# ---------------------------------------------------------------------------


DIMENSIONS = st.sampled_from([2, 3])


def affordable_dimension(text: str, d: int, N=None, budget: int = 300_000) -> int:
    """``d``, or 2 when the quadrature at ``d`` would need more than ``budget`` points."""
    return d if quadrature_points(text, FAMILIES, d, N) <= budget else 2


@settings(max_examples=60, deadline=None)
@given(text=single_draw_expressions(), d=DIMENSIONS, seed=st.integers(0, 10**6))
def test_random_single_draw_expressions(text, d, seed):
    assert_engine_matches_oracles(text, affordable_dimension(text, d), None, seed)


@settings(max_examples=40, deadline=None)
@given(text=single_draw_expressions(vector="(x + w)", max_degree=4), d=DIMENSIONS, seed=st.integers(0, 10**6))
def test_random_two_family_expressions(text, d, seed):
    assert_engine_matches_oracles(text, affordable_dimension(text, d), None, seed)


@settings(max_examples=40, deadline=None)
@given(text=single_draw_expressions(vector="(A @ x + y)", max_degree=4), seed=st.integers(0, 10**6))
def test_random_transformed_two_family_expressions(text, seed):
    assert_engine_matches_oracles(text, 2, None, seed)


@settings(max_examples=60, deadline=None)
@given(text=sample_sum_expressions(), d=DIMENSIONS, N=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_random_sample_sum_expressions(text, d, N, seed):
    assert_engine_matches_oracles(text, affordable_dimension(text, d, N), N, seed)


@pytest.mark.parametrize("text", [t for t, _ in EXPRESSIONS])
def test_printed_result_parses_back_to_an_equal_polynomial(text):
    """What the engine prints is in the grammar: read back in the same context, it is the same polynomial."""
    from derive.engine.polynomial import Polynomial

    result = engine_polynomial(text)
    assert Polynomial.of(result.text(), result.context) == result, result.text()
