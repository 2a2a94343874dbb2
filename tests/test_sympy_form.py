"""Results convert to sympy's matrix expressions, which evaluate to the same numbers."""

import numpy as np
import sympy

from derive.engine.context import dimension_symbol

D = dimension_symbol("d")
from derive.engine.pipeline import expect


def test_sympy_form_evaluates_like_the_polynomial():
    poly = expect("x @ x.T @ A @ x @ x.T + (v.T @ x)**2 * inv(2 * Lambda + I)", gaussians={"x": "Lambda"},
                       vectors=["v"])
    rng = np.random.default_rng(5)
    d = 2
    L = rng.normal(size=(d, d))
    values = {"A": rng.normal(size=(d, d)), "Lambda": L @ L.T + np.eye(d), "v": rng.normal(size=d)}
    expr = poly.to_sympy().subs(D, d)
    explicit = expr.subs({
        sympy.MatrixSymbol("A", d, d): sympy.Matrix(values["A"]),
        sympy.MatrixSymbol("Lambda", d, d): sympy.Matrix(values["Lambda"]),
        sympy.MatrixSymbol("v", d, 1): sympy.Matrix(values["v"]),
    }).doit()
    got = np.array(sympy.Matrix(explicit).evalf(), dtype=float)
    assert np.allclose(got, poly.evaluate(values, d), rtol=1e-10)
