"""Matrix calculus on the engine's own representation (not sympy's MatrixExpr.diff).

* :func:`gradient` of a scalar polynomial with respect to a matrix, vector or
  scalar symbol, by the chain rule through each trace or bilinear atom:
  ``∂ tr(W₁ A W₂)/∂A = (W₂W₁)ᵀ``, ``∂ tr(W₁ Aᵀ W₂)/∂A = W₂W₁``,
  ``∂ (vᵀW₁AW₂u)/∂A = (W₁ᵀv)(W₂u)ᵀ``, ``∂ (vᵀWu)/∂v = Wu``.
* :func:`solve_linear`: the solution ``X = −a⁻¹ P⁻¹ R Q⁻¹`` of ``a·P X Q + R = 0``.
* :func:`trace_coefficient`: the matrix ``G`` with ``s = tr(G W)`` for a scalar
  ``s`` linear in the pattern word ``W``.

sympy 1.14's ``MatrixExpr.diff`` silently returns 0 for a sum of traces
(sympy issues #27406, #23492), hence this module.

>>> from derive.engine.pipeline import declare
>>> ctx = declare(matrices={"Lambda": "spd"})
>>> print(gradient(Polynomial.of("tr(A @ Lambda @ A.T)", ctx), "A"))
2 * A @ Lambda
"""

from __future__ import annotations

from fractions import Fraction

import sympy

from derive.engine.canonical import Contraction
from derive.engine.context import SCALAR
from derive.engine.errors import ExpressionError
from derive.engine.polynomial import Polynomial
from derive.engine.strands import COL, ROW, RawTerm, is_loop
from derive.engine.words import Letter, invert_word, normalize_word, transpose_word

__all__ = ["gradient", "solve_linear", "trace_coefficient"]


def _unit_letters(word, name: str):
    """Split positive integer powers of ``name`` into repeated letters (product rule)."""
    out = []
    for l in word:
        if l.name == name:
            if l.power.denominator != 1 or l.power < 1:
                raise ExpressionError(f"cannot differentiate through {name!r} raised to {l.power}")
            out.extend([Letter(l.name, Fraction(1), l.transposed)] * int(l.power))
        else:
            if not isinstance(l.name, str) and name in _compound_letters(l.name):
                raise ExpressionError(f"cannot differentiate through a compound matrix that contains {name!r}")
            out.append(l)
    return tuple(out)


def _compound_letters(compound) -> set:
    return {l.name for chain in compound.value.terms for s in chain for l in s[1] if isinstance(l.name, str)}


def _strand_gradient(strand, name: str, kind: str, algebra) -> list:
    T = lambda w: transpose_word(w, algebra)  # noqa: E731
    left, word, right = strand
    terms: list = []
    one = sympy.Integer(1)
    if kind == "vector":
        if is_loop(strand):
            return terms
        if left[0] == "vec" and left[1] == name:
            terms.append(RawTerm(one, ((ROW, word, right),)))
        if right[0] == "vec" and right[1] == name:
            terms.append(RawTerm(one, ((ROW, T(word), left),)))
        return terms
    word = _unit_letters(word, name)
    for k, l in enumerate(word):
        if l.name != name:
            continue
        before, after = word[:k], word[k + 1:]
        if is_loop(strand):
            rest = after + before
            terms.append(RawTerm(one, ((ROW, rest if l.transposed else T(rest), COL),)))
        elif not l.transposed:
            terms.append(RawTerm(one, ((ROW, T(before), left), (right, T(after), COL))))
        else:
            terms.append(RawTerm(one, ((ROW, after, right), (left, before, COL))))
    return terms


def gradient(poly: Polynomial, name: str) -> Polynomial:
    """∂poly/∂name for a scalar polynomial; the result has the shape of ``name``."""
    if poly.shape != SCALAR:
        raise ExpressionError("only scalar polynomials can be differentiated")
    context = poly.context
    kind = context.kind(name)
    value = poly.scalar
    if kind in ("scalar", "dimension", "count"):
        return Polynomial(SCALAR, {(): sympy.expand(sympy.diff(value, context.symbol(name)))}, context)
    if kind == "gaussian":
        raise ExpressionError(f"{name!r} is a Gaussian; differentiate after taking the expectation")
    if kind == "compound":
        raise ExpressionError(f"{name!r} is a defined matrix; differentiate with respect to a declared symbol")
    shape = (context.vectors[name], 1) if kind == "vector" else context.matrix_shape(name)
    raw = []
    for atom in value.free_symbols:
        if not isinstance(atom, Contraction):
            continue
        pieces = _strand_gradient(atom.strand, name, kind, context.algebra)
        if not pieces:
            continue
        outer = sympy.diff(value, atom)
        raw.extend(RawTerm(outer, t.strands) for t in pieces)
    return Polynomial.from_raw(shape, raw, context)


def solve_linear(poly: Polynomial, name: str) -> Polynomial:
    """Solve ``poly = 0`` for the matrix symbol ``name`` when ``poly = a·P X Q + R``.

    P, Q are products of invertible square matrix symbols and R is free of X.
    """
    if poly.shape[0] == 1 or poly.shape[1] == 1:
        raise ExpressionError("solve_linear expects a matrix equation")
    linear, rest = [], {}
    for chain, coef in poly.terms.items():
        if any(isinstance(a, Contraction) and name in {l.name for l in a.strand[1]} for a in coef.free_symbols):
            raise ExpressionError(f"{name!r} occurs inside a trace; not a linear matrix equation")
        occurrences = [k for s in chain for k, l in enumerate(s[1]) if l.name == name]
        if not occurrences:
            rest[chain] = coef
            continue
        if len(chain) != 1 or len(occurrences) != 1:
            raise ExpressionError(f"{name!r} occurs nonlinearly")
        (k,) = occurrences
        word = chain[0][1]
        if word[k].power != 1 or word[k].transposed:
            raise ExpressionError(f"{name!r} occurs transposed or raised to a power")
        linear.append((word[:k], word[k + 1:], coef))
    if len(linear) != 1:
        raise ExpressionError(f"expected one term P @ {name} @ Q, found {len(linear)}")
    before, after, a = linear[0]
    context = poly.context
    algebra = context.algebra
    rows, cols = context.matrix_shape(name)
    P_inv = Polynomial.from_raw((rows, rows), [RawTerm(sympy.Integer(1), ((ROW, invert_word(before, algebra), COL),))],
                                context)
    Q_inv = Polynomial.from_raw((cols, cols), [RawTerm(sympy.Integer(1), ((ROW, invert_word(after, algebra), COL),))],
                                context)
    R = Polynomial(poly.shape, rest, context)
    return (P_inv @ R @ Q_inv) * (-1 / a)


def trace_coefficient(poly: Polynomial, pattern: str) -> Polynomial:
    """The matrix G with ``poly = tr(G @ pattern)``, read off term by term.

    Every monomial of ``poly`` must hold exactly one trace containing the
    pattern word cyclically (in either orientation, powers split into unit
    letters); the rest of that trace, times the monomial's other factors, is
    its contribution to G.
    """
    W = Polynomial.of(pattern, poly.context)
    (chain,) = W.terms
    if len(chain) != 1 or chain[0][0] != ROW or chain[0][2] != COL or W.terms[chain] != 1:
        raise ExpressionError("the pattern must be a single matrix word")
    target = chain[0][1]
    raw = []
    for monomial in sympy.Add.make_args(sympy.expand(poly.scalar)):
        hits = {}
        for atom in monomial.free_symbols:
            if isinstance(atom, Contraction) and is_loop(atom.strand):
                remainder = _cyclic_remainder(atom.strand[1], target, poly.context.algebra)
                if remainder is not None:
                    hits[atom] = remainder
        if len(hits) != 1 or sympy.degree(monomial, next(iter(hits))) != 1:
            raise ExpressionError(f"term {monomial} is not linear in one trace holding the pattern {pattern}")
        ((atom, remainder),) = hits.items()
        raw.append(RawTerm(monomial / atom, ((ROW, remainder, COL),)))
    return Polynomial.from_raw((W.shape[1], W.shape[0]), raw, poly.context)


def _split_powers(word):
    out = []
    for l in word:
        if l.power.denominator == 1 and l.power > 1:
            out.extend([Letter(l.name, Fraction(1), l.transposed)] * int(l.power))
        else:
            out.append(l)
    return tuple(out)


def _cyclic_remainder(loop_word, target, algebra):
    target = _split_powers(target)
    for word in (loop_word, transpose_word(loop_word, algebra)):
        word = _split_powers(word)
        n, m = len(word), len(target)
        for k in range(n):
            if all(word[(k + j) % n] == target[j] for j in range(m)):
                rest = tuple(word[(k + m + j) % n] for j in range(n - m))
                return normalize_word(rest, algebra)
    return None
