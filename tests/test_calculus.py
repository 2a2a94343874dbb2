"""Matrix derivatives checked the UFL way: evaluate at a point against finite differences."""

import numpy as np
import pytest

from derive.engine.calculus import gradient, solve_linear, trace_coefficient
from derive.engine.pipeline import declare
from derive.engine.polynomial import Polynomial

DECL = declare(symmetric={"Lambda"}, vectors={"v", "w"}, scalars={"c"})
D = 3
RNG = np.random.default_rng(11)
_L = RNG.normal(size=(D, D))
VALUES = {"A": RNG.normal(size=(D, D)), "B": RNG.normal(size=(D, D)), "Lambda": _L @ _L.T + np.eye(D),
          "v": RNG.normal(size=D), "w": RNG.normal(size=D), "c": 0.7}

EXPRESSIONS = [
    "tr(A @ Lambda @ A.T @ B)",
    "tr(A @ A) * tr(B @ A.T)",
    "(v.T @ A @ Lambda @ A @ w)**2",
    "c**2 * tr(A @ Lambda @ A.T @ Lambda) - c * tr(Lambda @ Lambda @ A.T)",
    "tr(A @ inv(B) @ A.T @ B) + v.T @ A.T @ A @ v",
]


def finite_difference(poly, name, eps=1e-6):
    base = VALUES[name]
    grad = np.zeros_like(np.asarray(base, dtype=float))
    for index in np.ndindex(grad.shape):
        plus, minus = dict(VALUES), dict(VALUES)
        plus[name] = np.array(base, dtype=float)
        minus[name] = np.array(base, dtype=float)
        plus[name][index] += eps
        minus[name][index] -= eps
        grad[index] = (poly.evaluate(plus, D) - poly.evaluate(minus, D)) / (2 * eps)
    return grad


@pytest.mark.parametrize("text", EXPRESSIONS)
@pytest.mark.parametrize("name", ["A", "v"])
def test_gradient_matches_finite_differences(text, name):
    poly = Polynomial.of(text, DECL)
    got = gradient(poly, name).evaluate(VALUES, D)
    want = finite_difference(poly, name)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6)


def test_scalar_gradient():
    poly = Polynomial.of(EXPRESSIONS[3], DECL)
    got = gradient(poly, "c").evaluate(VALUES, D)
    eps = 1e-6
    want = (poly.evaluate({**VALUES, "c": 0.7 + eps}, D) - poly.evaluate({**VALUES, "c": 0.7 - eps}, D)) / (2 * eps)
    assert got == pytest.approx(want, rel=1e-6)


def test_wrong_gradient_is_detected():
    """The finite-difference check can fail: ∂tr(AΛAᵀB)/∂A is not ΛAᵀB-transposed alone."""
    poly = Polynomial.of(EXPRESSIONS[0], DECL)
    wrong = Polynomial.of("B @ A @ Lambda", DECL).evaluate(VALUES, D)  # drops the Bᵀ term
    assert not np.allclose(wrong, finite_difference(poly, "A"), rtol=1e-4, atol=1e-4)


def test_not_fooled_by_sum_of_traces():
    # sympy 1.14's MatrixExpr.diff returns 0 here; the engine must not
    assert not gradient(Polynomial.of("tr(A) + tr(A @ B)", DECL), "A").is_zero()


def test_solve_linear():
    eq = Polynomial.of("c * Lambda @ X @ B - A", DECL)
    X = solve_linear(eq, "X")
    assert X == Polynomial.of("inv(Lambda) @ A @ inv(B) / c", DECL)


def test_trace_coefficient():
    s = Polynomial.of("2 * tr(Lambda @ Lambda @ A @ Lambda @ A.T) + tr(Lambda) * tr(Lambda @ A @ Lambda @ A.T)", DECL)
    G = trace_coefficient(s, "Lambda @ A @ Lambda @ A.T")
    assert G == Polynomial.of("2 * Lambda + tr(Lambda) * I", DECL)
