"""Expansion pass: an expression tree → raw terms of a known shape, with shape checks.

Shapes are ``(rows, cols)`` whose sides are ``1`` or a dimension name (``"d"``,
``"L"``, ...): scalars are 1×1, vectors k×1, their transposes 1×k, matrices
r×c.  The rules are those of matrix algebra: ``@`` needs equal inner sizes,
``+`` equal shapes, ``*`` a 1×1 factor, ``/`` a constant scalar denominator
(no Gaussian, no trace of one), ``tr`` and ``inv`` square matrices.
``sum(i, E, M)`` binds a fresh label running over ``1..M`` (``N`` by
default), so repeated or nested sums never capture each other; ``x[i]`` is
the draw of family ``x`` at that label.  A Gaussian with a mean expands into
``mean + centred draw``; a scalar family's draw is the strand ``(ε, (), ONE)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import sympy

from derive.engine import grammar as g
from derive.engine.canonical import collect, is_psd_terms, serialize_terms
from derive.engine.context import SCALAR, Context, shape_name
from derive.engine.errors import ExpressionError
from derive.engine.strands import COL, ONE, ROW, RawTerm, letter_strand, matmul, product, trace, transpose, vector_end
from derive.engine.words import Compound

__all__ = ["Expanded", "Expander", "MAX_TERMS", "MAX_BITS", "gaussian_ends", "terms_value", "CanonicalTerms"]

MAX_TERMS = 200_000  # beyond this an expansion would take minutes and gigabytes: refuse it
MAX_BITS = 4096  # size of an exact number produced by a power (2**4096 has 1234 digits)


@dataclass
class Expanded:
    shape: tuple
    terms: list


@dataclass(frozen=True)
class CanonicalTerms:
    """The data of a canonical polynomial, ``{chain: coefficient}`` of a shape (a compound's value)."""

    shape: tuple
    terms: dict


def gaussian_ends(term: RawTerm, context: Context) -> list:
    """The vector ends of ``term`` that are draws of a Gaussian family."""
    return [e for s in term.strands for e in (s[0], s[2]) if e[0] == "vec" and e[1] in context.families]


class Expander:
    """Turns an :class:`~derive.engine.grammar.Expr` into raw terms in a :class:`Context`.

    ``env`` maps names to expressions substituted for them (a pass that
    substitutes, e.g. ``U11 → c·inv(Gamma)``); substituted expressions are
    expanded in the same context, without further substitution.
    """

    def __init__(self, context: Context, env: dict | None = None):
        self.context = context
        self.algebra = context.algebra
        self.env = dict(env or {})
        self._labels = itertools.count(1)
        self._uids = itertools.count(1)
        self._means: dict = {}

    def expand(self, expr: g.Expr, bound: dict | None = None) -> Expanded:
        method = getattr(self, "_" + type(expr).__name__, None)
        if method is None:
            raise ExpressionError(f"{type(expr).__name__} cannot be expanded here")
        return method(expr, bound or {})

    # ---------------------------------------------------------------- leaves
    def _Name(self, e: g.Name, bound) -> Expanded:
        name, ctx = e.name, self.context
        if name in bound:
            raise ExpressionError(f"index {name!r} used as a value; write x[{name}]")
        if name in self.env:
            return self._substituted(name, bound)
        if name == "I":
            return identity("d")
        kind = ctx.kind(name)
        if kind in ("scalar", "dimension", "count"):
            return Expanded(SCALAR, [RawTerm(ctx.symbol(name), ())])
        if kind == "vector":
            dim = ctx.vectors[name]
            return Expanded((dim, 1), [RawTerm(sympy.Integer(1), ((ROW, (), vector_end(name)),))])
        if kind == "gaussian":
            return self._draw(name, None)
        if kind == "compound":
            compound = ctx.compounds[name]
            return Expanded((compound.dim, compound.dim), [RawTerm(sympy.Integer(1), (letter_strand(compound),))])
        return Expanded(ctx.matrix_shape(name), [RawTerm(sympy.Integer(1), (letter_strand(name),))])

    def _draw(self, family_name: str, label) -> Expanded:
        """One occurrence of a draw: its mean (if any) plus the centred Gaussian end."""
        family = self.context.families[family_name]
        end = vector_end(family_name, label, next(self._uids))
        if family.dim == 1:
            centred = RawTerm(sympy.Integer(1), ((end, (), ONE),))
        else:
            centred = RawTerm(sympy.Integer(1), ((ROW, (), end),))
        terms = [centred]
        if family.mean is not None:
            mean = self._means.get(family_name)
            if mean is None:
                mean = self._means[family_name] = Expander(self.context).expand(family.mean)
            terms = mean.terms + terms
        return Expanded(family.shape if family.dim != 1 else SCALAR, terms)

    def _substituted(self, name: str, bound) -> Expanded:
        saved, self.env = self.env, {}
        try:
            return self.expand(saved[name], bound)
        finally:
            self.env = saved

    def _Number(self, e: g.Number, bound) -> Expanded:
        value = sympy.Rational(e.value.numerator, e.value.denominator)
        return Expanded(SCALAR, [RawTerm(value, ())] if value else [])

    def _Identity(self, e: g.Identity, bound) -> Expanded:
        self.context.check_dimension(e.dim, f"I({e.dim})", allow_one=False)
        return identity(e.dim)

    def _Zeros(self, e: g.Zeros, bound) -> Expanded:
        for side in (e.rows, e.cols):
            self.context.check_dimension(side, f"zeros({e.rows}, {e.cols})")
        return Expanded((e.rows, e.cols), [])

    def _Indexed(self, e: g.Indexed, bound) -> Expanded:
        if e.name not in self.context.families:
            raise ExpressionError(f"only Gaussian families can be indexed: {e.name}[{e.index}]")
        if e.index not in bound:
            raise ExpressionError(f"{e.name}[{e.index}] outside a sum over {e.index}: write sum({e.index}, ...)")
        return self._draw(e.name, bound[e.index])

    # ---------------------------------------------------------------- sums and products
    def _Add(self, e, bound) -> Expanded:
        return self._add(self.expand(e.left, bound), self.expand(e.right, bound), "+")

    def _Sub(self, e, bound) -> Expanded:
        return self._add(self.expand(e.left, bound), scaled(self.expand(e.right, bound), -1), "-")

    @staticmethod
    def _add(a: Expanded, b: Expanded, op: str) -> Expanded:
        if a.shape != b.shape:
            raise ExpressionError(f"cannot add a {shape_name(a.shape)} and a {shape_name(b.shape)} with {op}")
        check_size(len(a.terms) + len(b.terms))
        return Expanded(a.shape, a.terms + b.terms)

    def _Neg(self, e, bound) -> Expanded:
        return scaled(self.expand(e.operand, bound), -1)

    def _Mul(self, e, bound) -> Expanded:
        a, b = self.expand(e.left, bound), self.expand(e.right, bound)
        if a.shape != SCALAR and b.shape != SCALAR:
            raise ExpressionError(
                f"'*' needs a scalar factor, got a {shape_name(a.shape)} times a {shape_name(b.shape)} (use @)")
        shape = b.shape if a.shape == SCALAR else a.shape
        check_size(len(a.terms) * len(b.terms))
        return Expanded(shape, [product(s, t) for s in a.terms for t in b.terms])

    def _MatMul(self, e, bound) -> Expanded:
        return self._matmul(self.expand(e.left, bound), self.expand(e.right, bound))

    def _matmul(self, a: Expanded, b: Expanded) -> Expanded:
        if a.shape[1] != b.shape[0]:
            raise ExpressionError(f"'@' shape mismatch: a {shape_name(a.shape)} @ a {shape_name(b.shape)}")
        check_size(len(a.terms) * len(b.terms))
        inner = a.shape[1]
        return Expanded((a.shape[0], b.shape[1]), [matmul(s, t, inner, self.algebra) for s in a.terms for t in b.terms])

    def _Div(self, e, bound) -> Expanded:
        a, b = self.expand(e.left, bound), self.expand(e.right, bound)
        if b.shape != SCALAR:
            raise ExpressionError(f"can only divide by a scalar, not a {shape_name(b.shape)}")
        return scaled(a, 1 / self.constant(b, "divide by"))

    def constant(self, b: Expanded, what: str) -> sympy.Expr:
        """The value of a deterministic scalar (numbers, symbols, traces, bilinear forms of constants)."""
        for term in b.terms:
            if gaussian_ends(term, self.context):
                raise ExpressionError(f"cannot {what} an expression holding a Gaussian")
        value = terms_value(b, self.context)
        if value == 0:
            raise ExpressionError(f"cannot {what} zero")
        return value

    def _Pow(self, e: g.Pow, bound) -> Expanded:
        power = e.power
        base = self.expand(e.base, bound)
        if base.shape == SCALAR:
            if power.denominator == 1 and power >= 0:
                return self._repeat(e.base, int(power), bound, SCALAR, base)
            value = self.constant(base, "raise to a negative or fractional power")
            return Expanded(SCALAR, [RawTerm(real_power(value, power), ())])
        if base.shape[0] != base.shape[1]:
            raise ExpressionError(f"cannot raise a {shape_name(base.shape)} to a power")
        letter = self._single_letter(base)
        if letter is not None:
            name, p, transposed, coef = letter
            if power.denominator != 1 and not self.algebra.is_spd(name):
                raise ExpressionError(f"fractional powers need a symmetric positive-definite matrix, not {_name(name)!r}")
            new = RawTerm(real_power(coef, power), (letter_strand(name, p * power, transposed),))
            return Expanded(base.shape, [new])
        if power.denominator != 1 or power < 0:
            return self._compound(base, power)
        return self._repeat(e.base, int(power), bound, base.shape, base)

    def _repeat(self, base: g.Expr, k: int, bound, shape, first: Expanded) -> Expanded:
        if k == 0:
            return Expanded(SCALAR, [RawTerm(sympy.Integer(1), ())]) if shape == SCALAR else identity(shape[0])
        result = first
        for _ in range(k - 1):
            nxt = self.expand(base, bound)  # re-expanded: fresh labels for its sums, fresh uids for its draws
            if shape == SCALAR:
                check_size(len(result.terms) * len(nxt.terms))
                result = Expanded(SCALAR, [product(s, t) for s in result.terms for t in nxt.terms])
            else:
                result = self._matmul(result, nxt)
        return result

    def _single_letter(self, x: Expanded):
        if len(x.terms) != 1 or x.terms[0].labels:
            return None
        strands = x.terms[0].strands
        if len(strands) != 1 or strands[0][0] != ROW or strands[0][2] != COL or len(strands[0][1]) != 1:
            return None
        (l,) = strands[0][1]
        return l.name, l.power, l.transposed, x.terms[0].coef

    def _compound(self, x: Expanded, power: Fraction) -> Expanded:
        """``P**power`` for a matrix polynomial P with several terms: an opaque compound letter."""
        for term in x.terms:
            if gaussian_ends(term, self.context):
                raise ExpressionError("inv() or a negative/fractional power of an expression holding a Gaussian")
        terms = collect(x.terms, self.algebra)
        if not terms:
            raise ExpressionError("cannot invert the zero matrix")
        dim = x.shape[0]
        identity_chain = ((ROW, (), COL),)
        if set(terms) == {identity_chain}:  # a scalar multiple of I
            return Expanded(x.shape, [RawTerm(real_power(terms[identity_chain], power), identity_chain)])
        if any(len(chain) != 1 or chain[0][0] != ROW or chain[0][2] != COL for chain in terms):
            raise ExpressionError("inv() or a fractional power of an outer product (v @ u.T) is not supported")
        compound = make_compound(CanonicalTerms(x.shape, terms), self.context)
        if power.denominator != 1 and not compound.spd:
            raise ExpressionError("fractional powers need a matrix that is evidently positive definite")
        return Expanded(x.shape, [RawTerm(sympy.Integer(1), (letter_strand(compound, power),))])

    def _Transpose(self, e, bound) -> Expanded:
        a = self.expand(e.operand, bound)
        return Expanded((a.shape[1], a.shape[0]), [transpose(t) for t in a.terms])

    def _Trace(self, e, bound) -> Expanded:
        a = self.expand(e.operand, bound)
        if a.shape[0] != a.shape[1] or a.shape == SCALAR:
            raise ExpressionError(f"tr() needs a square matrix, got a {shape_name(a.shape)}")
        return Expanded(SCALAR, [trace(t, self.algebra, a.shape[0]) for t in a.terms])

    def _Inverse(self, e, bound) -> Expanded:
        a = self.expand(e.operand, bound)
        if a.shape == SCALAR:
            return Expanded(SCALAR, [RawTerm(1 / self.constant(a, "invert"), ())])
        if a.shape[0] != a.shape[1]:
            raise ExpressionError(f"inv() needs a square matrix, got a {shape_name(a.shape)}")
        letter = self._single_letter(a)
        if letter is None:
            return self._compound(a, Fraction(-1))
        name, p, transposed, coef = letter
        return Expanded(a.shape, [RawTerm(1 / coef, (letter_strand(name, -p, transposed),))])

    def _Sum(self, e: g.Sum, bound) -> Expanded:
        ctx = self.context
        if e.index in bound:
            raise ExpressionError(f"index {e.index!r} is already bound by an enclosing sum")
        if ctx.kind(e.index) != "matrix" or e.index in ctx.matrices or e.index in self.env:
            raise ExpressionError(f"index {e.index!r} clashes with a declared name")
        if e.count not in ctx.counts:
            raise ExpressionError(f"sum({e.index}, ..., {e.count}): {e.count!r} is not a declared count "
                                  f"(declare it with --count {e.count})")
        label = (next(self._labels), e.count)
        body = self.expand(e.body, {**bound, e.index: label})
        return Expanded(body.shape, [RawTerm(t.coef, t.strands, t.labels | {label}) for t in body.terms])


# ---------------------------------------------------------------- helpers

def _name(name) -> str:
    return name if isinstance(name, str) else "a compound matrix"


def identity(dim) -> Expanded:
    return Expanded((dim, dim), [RawTerm(sympy.Integer(1), ((ROW, (), COL),))])


def check_size(count: int) -> None:
    if count > MAX_TERMS:
        raise ExpressionError(f"the expansion has {count:,} terms (limit {MAX_TERMS:,}); split the expression")


def scaled(x: Expanded, factor) -> Expanded:
    return Expanded(x.shape, [RawTerm(t.coef * factor, t.strands, t.labels) for t in x.terms])


def real_power(value: sympy.Expr, power: Fraction) -> sympy.Expr:
    """``value**power``, refused when it is not a real number or would be an enormous integer."""
    if value == 0 and power < 0:
        raise ExpressionError("cannot raise zero to a negative power")
    if value.is_Rational and power.denominator == 1:
        bits = max(abs(value.p).bit_length(), abs(value.q).bit_length()) * abs(power.numerator)
        if bits > MAX_BITS:
            raise ExpressionError(f"the number {value}**{power} has more than {MAX_BITS} bits")
    result = value ** sympy.Rational(power.numerator, power.denominator)
    if result.has(sympy.I, sympy.zoo, sympy.nan) or result.is_real is False:
        raise ExpressionError(f"({value})**({power}) is not a real number")
    return result


def terms_value(x: Expanded, context: Context) -> sympy.Expr:
    """The sympy value of a deterministic scalar expansion."""
    terms = collect(x.terms, context.algebra)
    return terms.get((), sympy.Integer(0))


def make_compound(value: CanonicalTerms, context: Context) -> Compound:
    """The compound letter standing for the square matrix polynomial ``value``.

    It joins the commuting group of its letters when they all belong to one
    group (a function of Λ commutes with Λ), is symmetric when the polynomial
    equals its transpose, and SPD when the polynomial is evidently positive
    semi-definite (it is being inverted or rooted, hence assumed invertible).
    """
    algebra = context.algebra
    groups = {algebra.group(l.name) for chain in value.terms for s in chain for l in s[1]}
    group = groups.pop() if len(groups) == 1 else None
    transposed = collect([transpose(RawTerm(c, chain)) for chain, c in value.terms.items()], algebra)
    symmetric = transposed == value.terms
    spd = symmetric and is_psd_terms(value.terms, algebra)
    return Compound(f"{value.shape[0]}{serialize_terms(value.terms)}", value.shape[0], group, symmetric, spd, value)
