"""The random-diagonal expectation pass against brute-force enumeration of the index sums."""

from __future__ import annotations

import itertools

import pytest
import sympy

from derive.engine.errors import ExpressionError
from derive.engine.pipeline import declare
from derive.engine.polynomial import Polynomial
from derive.engine.random_diagonal import expect_diagonal, partition_moment, set_partitions

M = sympy.symbols("m1:8")


def moments(k):
    return M[k - 1]


def brute_force(exponents: tuple, d: int, marked: int | None = None) -> sympy.Expr:
    """E[Π_r Σ_j λ_j^{k_r} (· λ_1^a)] by expanding the sums over concrete indices, i.i.d. per index."""
    lam = sympy.symbols(f"l1:{d + 1}")
    expr = sympy.Integer(1)
    for k in exponents:
        expr *= sum(l**k for l in lam)
    if marked is not None:
        expr *= lam[0] ** marked  # the (1, 1) entry of Λ^a ∏ tr(Λ^k)
    poly = sympy.Poly(sympy.expand(expr), *lam)
    total = sympy.Integer(0)
    for powers, coef in poly.terms():
        term = coef
        for p in powers:
            term *= moments(p) if p else 1
        total += term
    return sympy.expand(total)


def test_set_partitions_are_bell_numbers():
    assert [len(set_partitions(tuple(range(n)))) for n in range(6)] == [1, 1, 2, 5, 15, 52]


@pytest.mark.parametrize("exponents", [(1,), (2,), (1, 1), (1, 2), (3, 1, 1), (2, 2), (1, 1, 1, 1)])
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_trace_products_match_enumeration(exponents, d):
    got = partition_moment(exponents, moments).subs(sympy.Symbol("d", positive=True, integer=True), d)
    assert sympy.expand(got - brute_force(exponents, d)) == 0


@pytest.mark.parametrize("exponents,marked", [((), 2), ((1,), 1), ((1, 2), 1), ((2, 1, 1), 3)])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_marked_factor_matches_enumeration(exponents, marked, d):
    got = partition_moment(exponents, moments, marked).subs(sympy.Symbol("d", positive=True, integer=True), d)
    assert sympy.expand(got - brute_force(exponents, d, marked)) == 0


def test_wrong_variant_is_rejected():
    """Treating Λ as its mean (E tr(Λ)² = d² m1²) is not the expectation."""
    d = 3
    assert sympy.expand(brute_force((1, 1), d) - d**2 * M[0] ** 2) != 0


def test_polynomials_and_refusals():
    ctx = declare(matrices={"Lambda": "spd"}, vectors=["q", "w"])
    got = expect_diagonal(Polynomial.of("tr(Lambda**2) * tr(Lambda) + (q.T @ Lambda @ w) * tr(Lambda)", ctx),
                          "Lambda", lambda k: sympy.factorial(k))
    dd = ctx.symbol("d")
    expected = Polynomial((1, 1), {(): sympy.expand(dd * 6 + dd * (dd - 1) * 2)}, ctx) + \
        Polynomial.of("(2 + (d - 1)) * q.T @ w", ctx)
    assert got == expected
    with pytest.raises(ExpressionError):
        expect_diagonal(Polynomial.of("tr(Lambda @ A)", declare(matrices={"Lambda": "spd"})), "Lambda", moments)
    with pytest.raises(ExpressionError):
        expect_diagonal(Polynomial.of("Lambda @ A", declare(matrices={"Lambda": "spd"})), "Lambda", moments)
