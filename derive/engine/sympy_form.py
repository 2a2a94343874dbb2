"""Convert a canonical polynomial into sympy's own matrix expressions (for interoperability).

Matrices become ``MatrixSymbol(name, rows, cols)`` with symbolic sizes,
vectors ``MatrixSymbol(name, k, 1)``, traces ``Trace``, transposes
``Transpose``, inverses ``Inverse``, powers ``MatPow``; a compound letter (e.g.
``inv(Γ)`` with Γ a polynomial in Λ) is the inverse or power of its own sympy
form.  Bilinear forms vᵀWu are the [0, 0] entries of 1×1 matrix products.
This is for sympy's printers, ``.subs`` and ``.as_explicit()`` at concrete
sizes; the engine itself never uses sympy's matrix calculus (``MatrixExpr.diff``
is wrong on sums of traces in sympy 1.14).

>>> from derive.engine.pipeline import expect
>>> expect("x.T @ A @ x", gaussians={"x": "Lambda"}).to_sympy()
Trace(A*Lambda)
"""

from __future__ import annotations

import sympy

from derive.engine.canonical import Contraction
from derive.engine.strands import is_loop

__all__ = ["to_sympy"]


def _size(context, dim):
    return sympy.Integer(1) if dim == 1 else context.dim_value(dim)


class _Converter:
    def __init__(self, context):
        self.context = context

    def letter(self, l):
        name = l.name
        if isinstance(name, str):
            rows, cols = self.context.matrix_shape(name)
            base = sympy.MatrixSymbol(name, _size(self.context, rows), _size(self.context, cols))
        else:
            base = self.terms(name.value.shape, name.value.terms)
        p = l.power
        if p == -1:
            base = sympy.Inverse(base)
        elif p != 1:
            base = sympy.MatPow(base, sympy.Rational(p.numerator, p.denominator))
        return sympy.Transpose(base) if l.transposed else base

    def vector(self, name):
        return sympy.MatrixSymbol(name, _size(self.context, self.context.vectors.get(name, "d")), 1)

    def strand(self, strand, dim="d"):
        left, word, right = strand
        factors = [self.letter(l) for l in word]
        if is_loop(strand):
            return sympy.Trace(sympy.MatMul(*factors) if factors else sympy.Identity(_size(self.context, dim)))
        if left[0] == "vec":
            factors.insert(0, sympy.Transpose(self.vector(left[1])))
        if right[0] == "vec":
            factors.append(self.vector(right[1]))
        if not factors:
            return sympy.Identity(_size(self.context, dim))
        return sympy.MatMul(*factors) if len(factors) > 1 else factors[0]

    def scalar(self, value):
        atoms = {a: self.strand(a.strand) if is_loop(a.strand) else self.strand(a.strand)[0, 0]
                 for a in value.free_symbols if isinstance(a, Contraction)}
        return value.xreplace(atoms)

    def terms(self, shape, terms):
        total = None
        for chain, coef in terms.items():
            c = self.scalar(coef)
            term = c if not chain else sympy.MatMul(c, *[self.strand(s, shape[k]) for k, s in enumerate(chain)])
            total = term if total is None else total + term
        if total is None:
            return sympy.Integer(0) if shape == (1, 1) else sympy.ZeroMatrix(_size(self.context, shape[0]),
                                                                              _size(self.context, shape[1]))
        return total


def to_sympy(poly):
    """The polynomial as a sympy (matrix) expression."""
    return _Converter(poly.context).terms(poly.shape, poly.terms)
