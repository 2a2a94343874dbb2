r"""Expectation over a random diagonal matrix with i.i.d. entries of given moments.

Math
----
Let :math:`\Lambda = \mathrm{diag}(\lambda_1, \dots, \lambda_d)` with
:math:`\lambda_j` i.i.d., :math:`\mathbb E\lambda^k = m_k` (:math:`m_0 = 1`).
For a product of traces of powers and, optionally, one *marked* factor
:math:`F` (a power :math:`\Lambda^a` as the free matrix, or a bilinear form
:math:`v^\top \Lambda^a u`),

.. math::

    \mathbb E\Big[\prod_{r=1}^R \operatorname{tr}(\Lambda^{k_r})\Big]
      = \sum_{\pi} d^{\underline{|\pi|}} \prod_{B \in \pi} m_{k_B}, \qquad
    \mathbb E\Big[\Lambda^a \prod_r \operatorname{tr}(\Lambda^{k_r})\Big]
      = \sum_{\pi} (d-1)^{\underline{|\pi| - 1}} \prod_{B \in \pi} m_{k_B} \; I ,

where :math:`\pi` runs over the set partitions of the factors (the marked one
included) into blocks of coinciding summation indices, :math:`k_B` is the sum
of the exponents in a block, and :math:`d^{\underline{n}} = d(d-1)\cdots(d-n+1)`
counts the ways to give the blocks distinct indices (the marked factor's index
is the fixed row :math:`j` of :math:`\Lambda^a_{jj}`, so the other blocks choose
among :math:`d - 1`).  The bilinear case is the matrix case sandwiched,
:math:`v^\top(\cdot)u`.  Exactness: every term of a trace product is a monomial
in the :math:`\lambda_j`; grouping the indices by which of them coincide and
using independence gives the product of moments — nothing else is used.

Only polynomials in which the random matrix occurs as whole powers inside
traces, as the free matrix or between two vectors are accepted (functions of
:math:`\Lambda` times traces); anything else (``Lambda @ A``) is refused with
one line, because its expectation needs the diagonal of ``A``, which the
grammar cannot write.

>>> import sympy
>>> from derive.engine.pipeline import declare
>>> from derive.engine.polynomial import Polynomial
>>> ctx = declare(matrices={"Lambda": "spd"})
>>> m = sympy.symbols("m1:5")
>>> moments = lambda k: m[k - 1]
>>> print(expect_diagonal(Polynomial.of("tr(Lambda)**2", ctx), "Lambda", moments).scalar)
d**2*m1**2 - d*m1**2 + d*m2
>>> print(expect_diagonal(Polynomial.of("tr(Lambda) * Lambda**2", ctx), "Lambda", moments))
(d - 1) * m1 * m2 * I + m3 * I
"""

from __future__ import annotations

import functools
from typing import Callable

import sympy

from derive.engine.canonical import Contraction
from derive.engine.context import SCALAR, dimension_symbol
from derive.engine.errors import ExpressionError
from derive.engine.polynomial import Polynomial
from derive.engine.strands import is_loop

__all__ = ["expect_diagonal", "set_partitions", "partition_moment"]


def set_partitions(items: tuple) -> list:
    """All set partitions of ``items`` (a tuple), each a tuple of blocks (tuples).

    >>> len(set_partitions((1, 2, 3))), len(set_partitions((1, 2, 3, 4)))
    (5, 15)
    """
    if not items:
        return [()]
    first, rest = items[0], items[1:]
    out = []
    for partition in set_partitions(rest):
        out.append(((first,),) + partition)
        for k in range(len(partition)):
            out.append(partition[:k] + ((first,) + partition[k],) + partition[k + 1:])
    return out


def _falling(n, k: int):
    value = sympy.Integer(1)
    for j in range(k):
        value *= n - j
    return value


@functools.lru_cache(maxsize=None)
def _partition_sum(exponents: tuple, marked: int | None, moments_key) -> sympy.Expr:
    """Σ over set partitions of the factors (exponents; ``marked`` = exponent of the marked factor or None)."""
    moments = moments_key.function
    d = dimension_symbol("d")
    factors = tuple(range(len(exponents) + (marked is not None)))
    powers = tuple(exponents) + ((marked,) if marked is not None else ())
    total = sympy.Integer(0)
    for partition in set_partitions(factors):
        weight = sympy.Integer(1)
        for block in partition:
            k = sum(powers[i] for i in block)
            weight *= moments(k) if k else 1
        if marked is None:
            total += _falling(d, len(partition)) * weight
        else:
            total += _falling(d - 1, len(partition) - 1) * weight
    return sympy.expand(total)


class _Moments:
    """A hashable wrapper of the moment function (for the cache)."""

    def __init__(self, function: Callable[[int], sympy.Expr]):
        self.function = function

    def __hash__(self):
        return id(self.function)

    def __eq__(self, other):
        return isinstance(other, _Moments) and other.function is self.function


def partition_moment(exponents: tuple, moments: Callable[[int], sympy.Expr], marked: int | None = None) -> sympy.Expr:
    """E[Π_r tr(Λ^{k_r})] (``marked=None``) or the diagonal entry of E[Λ^a Π_r tr(Λ^{k_r})] (``marked=a``).

    >>> partition_moment((1, 1), lambda k: sympy.factorial(k))
    d**2 + d
    """
    return _partition_sum(tuple(exponents), marked, _Moments(moments))


def _power_of(word, name: str) -> int | None:
    """The integer k when ``word`` is ``name**k`` (k ≥ 1); 0 for the empty word; None otherwise."""
    if len(word) == 0:
        return 0
    if len(word) != 1:
        return None
    letter = word[0]
    if letter.name != name or letter.power.denominator != 1 or letter.power < 1:
        return None
    return int(letter.power)


def expect_diagonal(poly: Polynomial, name: str, moments: Callable[[int], sympy.Expr]) -> Polynomial:
    """E over ``name`` = diag(λ₁..λ_d), λⱼ i.i.d. with E λ^k = ``moments(k)``, of a function of it.

    ``poly`` is a scalar, a square matrix or a bilinear-form polynomial whose
    free part is a power of ``name`` (or ``I``), in which ``name`` enters traces
    only as ``tr(name**k)``.  The result is a scalar or a multiple of ``I``.
    """
    if poly.shape != SCALAR and poly.shape[0] != poly.shape[1]:
        raise ExpressionError(f"expect_diagonal takes a scalar or a square matrix, got shape {poly.shape}")
    trace_atoms, bilinear_atoms = {}, {}
    for coef in poly.terms.values():
        for atom in coef.atoms(Contraction):
            left, word, right = atom.strand
            k = _power_of(word, name)
            if is_loop(atom.strand):
                if k is None and any(l.name == name for l in word):
                    raise ExpressionError(f"{name!r} enters the trace {atom} other than as a power")
                if k is not None and k > 0:
                    trace_atoms[atom] = k
            elif any(l.name == name for l in word):
                if k is None:
                    raise ExpressionError(f"{name!r} enters the bilinear form {atom} other than as a power")
                bilinear_atoms[atom] = (k, Contraction((left, (), right)))
    symbols = {atom: sympy.Dummy(f"t{k}") for atom, k in trace_atoms.items()}
    bil_symbols = {atom: sympy.Dummy(f"b{k}") for atom, (k, _) in bilinear_atoms.items()}
    reverse = {v: a for a, v in symbols.items()}
    reverse_bil = {v: a for a, v in bil_symbols.items()}
    out_terms: dict = {}
    for chain, coef in poly.terms.items():
        if poly.shape == SCALAR:
            free_power = None
        else:
            if len(chain) != 1:
                raise ExpressionError(f"expect_diagonal: the free part of a term is not a power of {name!r}")
            free_power = _power_of(chain[0][1], name)
            if free_power is None:
                raise ExpressionError(f"expect_diagonal: the free part of a term is not a power of {name!r}")
        expr = sympy.expand(coef.xreplace({**symbols, **bil_symbols}))
        gens = list(reverse) + list(reverse_bil)
        poly_coef = sympy.Poly(expr, *gens) if gens else None
        monomials = poly_coef.terms() if poly_coef is not None else [((), expr)]
        value = sympy.Integer(0)
        for exps, c in monomials:
            traces, marked, carrier = [], free_power, sympy.Integer(1)
            for gen, e in zip(gens, exps):
                if e == 0:
                    continue
                if gen in reverse:
                    traces += [trace_atoms[reverse[gen]]] * e
                else:
                    if marked is not None or e > 1:
                        raise ExpressionError("expect_diagonal: more than one marked factor (a bilinear form or the "
                                              "free matrix) in one term; its expectation needs a Hadamard product")
                    k, plain = bilinear_atoms[reverse_bil[gen]]
                    marked, carrier = k, plain
            value += c * carrier * partition_moment(tuple(sorted(traces)), moments, marked)
        key = () if poly.shape == SCALAR else "I"
        out_terms[key] = sympy.expand(out_terms.get(key, 0) + value)
    if poly.shape == SCALAR:
        return Polynomial(SCALAR, {(): out_terms.get((), 0)}, poly.context)
    identity = Polynomial.of("I", poly.context)
    scalar = Polynomial(SCALAR, {(): out_terms.get("I", 0)}, poly.context)
    return identity * scalar
