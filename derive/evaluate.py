"""Numeric evaluation of a canonical polynomial at concrete values (numpy float64).

Matrix symbols take (d, d) arrays; rational powers of symmetric positive
definite symbols use the eigendecomposition; vectors take arrays of shape (d,);
scalar symbols take numbers (``N`` and ``d`` are filled in from the arguments).
A missing value is an error that names the symbol.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

from derive.terms import LOOP, Contraction


def _matrix_power(m: np.ndarray, p: Fraction, symmetric: bool) -> np.ndarray:
    if p.denominator == 1:
        return np.linalg.matrix_power(m, int(p))
    if not symmetric:
        raise ValueError("fractional power of a non-symmetric matrix")
    w, v = np.linalg.eigh(m)
    if np.any(w <= 0):
        raise ValueError("fractional power of a matrix that is not positive definite")
    return (v * w ** float(p)) @ v.T


def _word_value(word, values, d, symmetric) -> np.ndarray:
    result = np.eye(d)
    for l in word:
        compound = symmetric.compound(l.name)
        if compound is not None:
            m = compound.value.evaluate(values, d, values.get("N"))
        elif l.name not in values:
            raise KeyError(f"no value given for matrix {l.name!r}")
        else:
            m = np.asarray(values[l.name], dtype=np.float64)
        if m.shape != (d, d):
            raise ValueError(f"{l.name!r} must have shape ({d}, {d}), got {m.shape}")
        m = _matrix_power(m, l.power, symmetric.is_symmetric(l.name))
        result = result @ (m.T if l.transposed else m)
    return result


def _vector(name, values, d) -> np.ndarray:
    if name not in values:
        raise KeyError(f"no value given for vector {name!r}")
    v = np.asarray(values[name], dtype=np.float64).reshape(-1)
    if v.shape != (d,):
        raise ValueError(f"{name!r} must have shape ({d},), got {v.shape}")
    return v


def strand_value(strand, values, d, symmetric):
    left, word, right = strand
    w = _word_value(word, values, d, symmetric)
    if left == LOOP:
        return float(np.trace(w))
    out = w
    if right[0] == "vec":
        out = out @ _vector(right[1], values, d)
    if left[0] == "vec":
        out = _vector(left[1], values, d) @ out
    return out


def scalar_value(expr: sympy.Expr, values: dict, d: int, N, symmetric) -> float:
    substitutions = {}
    for atom in expr.free_symbols:
        if isinstance(atom, Contraction):
            substitutions[atom] = float(strand_value(atom.strand, values, d, symmetric))
        elif atom.name == "d":
            substitutions[atom] = d
        elif atom.name == "N":
            if values.get("N", N) is None:
                raise KeyError("no value given for N")
            substitutions[atom] = values.get("N", N)
        elif atom.name in values:
            substitutions[atom] = float(values[atom.name])
        else:
            raise KeyError(f"no value given for scalar {atom.name!r}")
    return float(expr.xreplace(substitutions)) if substitutions else float(expr)


def evaluate(poly, values: dict, d: int, N=None):
    if N is not None:
        values = {**values, "N": N}
    symmetric = poly.decl.algebra
    shape = {(1, 1): (), ("d", 1): (d,), (1, "d"): (d,), ("d", "d"): (d, d)}[poly.shape]
    total = np.zeros(shape)
    for chain, coef in poly.terms.items():
        c = scalar_value(coef, values, d, N, symmetric)
        if not chain:
            total = total + c
            continue
        pieces = [strand_value(s, values, d, symmetric) for s in chain]
        value = pieces[0] if len(pieces) == 1 else np.outer(pieces[0], pieces[1])
        total = total + c * value
    return float(total) if shape == () else total


def largest_term(poly, values: dict, d: int, N=None) -> float:
    """max over the monomials of ``poly`` of their largest absolute entry at these values.

    The natural size of a formula whose terms cancel (a gradient at a stationary
    point): relative errors of such a formula are measured against this.
    """
    if N is not None:
        values = {**values, "N": N}
    symmetric = poly.decl.algebra
    largest = 0.0
    for chain, coef in poly.terms.items():
        pieces = [strand_value(s, values, d, symmetric) for s in chain]
        shape_value = 1.0 if not pieces else (pieces[0] if len(pieces) == 1 else np.outer(pieces[0], pieces[1]))
        for monomial in sympy.Add.make_args(sympy.expand(coef)):
            c = scalar_value(monomial, values, d, values.get("N"), symmetric)
            largest = max(largest, float(np.max(np.abs(c * np.asarray(shape_value)))))
    return largest
