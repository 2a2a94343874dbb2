"""Convert a canonical polynomial into sympy's own matrix expressions.

Matrices become ``MatrixSymbol(name, d, d)``, vectors ``MatrixSymbol(name, d, 1)``,
traces ``Trace``, transposes ``Transpose``, inverses ``Inverse``, powers
``MatPow``; a compound letter (e.g. ``inv(Γ)`` with Γ a polynomial in Λ) is the
inverse or power of its own sympy form.  Bilinear forms vᵀWu are the [0, 0]
entries of 1×1 matrix products.  This is for interoperability (sympy's printers, ``.subs``,
``.as_explicit()`` at a concrete d); the engine itself never uses sympy's
matrix calculus (``MatrixExpr.diff`` is wrong on sums of traces in sympy 1.14).

>>> from derive.polynomial import expectation
>>> e = to_sympy(expectation("x.T @ A @ x", gaussians={"x": "Lambda"}))
>>> e
Trace(A*Lambda)
"""

from __future__ import annotations

import sympy

from derive.expand import D
from derive.terms import LOOP, Contraction


def _letter(l, algebra):
    compound = algebra.compound(l.name)
    if compound is not None:
        base = to_sympy(compound.value)
    else:
        base = sympy.MatrixSymbol(l.name, D, D)
    p = l.power
    if p == -1:
        base = sympy.Inverse(base)
    elif p != 1:
        base = sympy.MatPow(base, sympy.Rational(p.numerator, p.denominator))
    return sympy.Transpose(base) if l.transposed else base


def _strand(strand, algebra):
    left, word, right = strand
    factors = [_letter(l, algebra) for l in word]
    if left == LOOP:
        return sympy.Trace(sympy.MatMul(*factors) if factors else sympy.Identity(D))
    if left[0] == "vec":
        factors.insert(0, sympy.Transpose(sympy.MatrixSymbol(left[1], D, 1)))
    if right[0] == "vec":
        factors.append(sympy.MatrixSymbol(right[1], D, 1))
    if not factors:
        return sympy.Identity(D)
    return sympy.MatMul(*factors) if len(factors) > 1 else factors[0]


def _scalar(value, algebra):
    # a bilinear form vᵀWu is a 1×1 matrix; its [0, 0] entry is the scalar
    atoms = {a: _strand(a.strand, algebra) if a.strand[0] == LOOP else _strand(a.strand, algebra)[0, 0]
             for a in value.free_symbols if isinstance(a, Contraction)}
    return value.xreplace(atoms)


def to_sympy(poly):
    """The polynomial as a sympy (matrix) expression."""
    algebra = poly.decl.algebra
    total = None
    for chain, coef in poly.terms.items():
        c = _scalar(coef, algebra)
        term = c if not chain else sympy.MatMul(c, *[_strand(s, algebra) for s in chain])
        total = term if total is None else total + term
    if total is None:
        return sympy.Integer(0) if poly.shape == (1, 1) else sympy.ZeroMatrix(D, D)
    return total
