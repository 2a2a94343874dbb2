"""Expansion pass: an expression tree → a list of raw terms, with shape checks.

Shapes are ``(rows, cols)`` with each side ``1`` or ``"d"``: scalars are 1×1,
vectors d×1, their transposes 1×d, matrices d×d.  The rules are those of
ordinary matrix algebra: ``@`` needs matching inner sizes, ``+`` equal shapes,
``*`` a 1×1 factor, ``/`` a constant scalar denominator (no Gaussian vector,
no trace).  ``sum(i, E)`` binds a fresh label, so repeated or nested sums
never capture each other; ``x[i]`` draws from family ``x`` at label ``i``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from fractions import Fraction

import sympy

from derive import grammar as g
from derive.terms import ROW, COL, RawTerm, letter_strand, matmul, product, trace, transpose, vector_end
from derive.words import COMPOUNDS, Algebra, Compound


class ExpressionError(ValueError):
    """A well-formed expression that is meaningless here (shapes, names); one-line message."""


N = sympy.Symbol("N", positive=True, integer=True)
D = sympy.Symbol("d", positive=True, integer=True)


def scalar_symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a scalar name; ``N`` and ``d`` are positive integers."""
    if name == "N":
        return N
    if name == "d":
        return D
    return sympy.Symbol(name, real=True)


@dataclass(frozen=True)
class Declarations:
    """What each name means.  Undeclared names are constant d×d matrices.

    ``gaussians`` maps a family name to its covariance (a symmetric
    positive-definite matrix symbol) or ``"I"``.  ``symmetric`` and ``spd``
    list further symmetric (resp. symmetric positive-definite) matrix symbols;
    ``commuting`` lists groups of symbols that commute with each other (e.g.
    Λ and Γ = aΛ + bI).
    """

    gaussians: dict = field(default_factory=dict)
    vectors: frozenset = frozenset()
    scalars: frozenset = frozenset()
    symmetric: frozenset = frozenset()
    spd: frozenset = frozenset()
    commuting: tuple = ()
    definitions: frozenset = frozenset()  # names made compound letters by define() (e.g. "Gamma")
    latex_names: dict = field(default_factory=dict)

    def __post_init__(self):
        for attr in ("vectors", "scalars", "symmetric", "spd", "definitions"):
            object.__setattr__(self, attr, frozenset(getattr(self, attr)))
        object.__setattr__(self, "gaussians", dict(self.gaussians))
        object.__setattr__(self, "commuting", tuple(tuple(group) for group in self.commuting))
        seen = {}
        for kind, group in (("Gaussian", self.gaussians), ("vector", self.vectors), ("scalar", self.scalars)):
            for name in group:
                if name in g.RESERVED:
                    raise ExpressionError(f"{name!r} is reserved and cannot be declared")
                if name in seen:
                    raise ExpressionError(f"{name!r} is declared both as {seen[name]} and as {kind}")
                seen[name] = kind
        for family, cov in self.gaussians.items():
            if cov != "I" and (cov in seen or cov in g.RESERVED):
                raise ExpressionError(f"covariance of {family!r} must be a matrix symbol or I, got {cov!r}")

    @property
    def covariances(self) -> frozenset:
        return frozenset(c for c in self.gaussians.values() if c != "I")

    @property
    def algebra(self) -> Algebra:
        symmetric = self.symmetric | self.spd | self.covariances
        pairs = tuple((name, f"group{k}") for k, group in enumerate(self.commuting) for name in group)
        return Algebra(frozenset(symmetric), pairs, self.definitions)

    def kind(self, name: str) -> str:
        if name in self.gaussians:
            return "gaussian"
        if name in self.vectors:
            return "vector"
        if name in self.scalars or name in ("N", "d"):
            return "scalar"
        return "matrix"


Shape = tuple


@dataclass
class Expanded:
    shape: Shape
    terms: list[RawTerm]


SCALAR: Shape = (1, 1)


def shape_name(shape: Shape) -> str:
    return {(1, 1): "scalar", ("d", 1): "vector", (1, "d"): "row vector", ("d", "d"): "matrix"}[shape]


class Expander:
    """Turns an :class:`~derive.grammar.Expr` into raw terms under some declarations.

    ``env`` maps names to expressions substituted for them (used by passes
    that substitute, e.g. ``U11 → c·inv(Gamma)``).
    """

    def __init__(self, decl: Declarations, env: dict | None = None):
        self.decl = decl
        self.algebra = decl.algebra
        self.env = dict(env or {})
        self._labels = itertools.count(1)

    def expand(self, expr: g.Expr, bound: dict | None = None) -> Expanded:
        method = getattr(self, "_" + type(expr).__name__)
        return method(expr, bound or {})

    # leaves
    def _Name(self, e: g.Name, bound) -> Expanded:
        name = e.name
        if name in bound:
            raise ExpressionError(f"index {name!r} used as a value; write x[{name}]")
        if name in self.env:
            return self._substituted(name, bound)
        if name == "I":
            return Expanded(("d", "d"), [RawTerm(sympy.Integer(1), ((ROW, (), COL),))])
        kind = self.decl.kind(name)
        if kind == "scalar":
            return Expanded(SCALAR, [RawTerm(scalar_symbol(name), ())])
        if kind == "vector":
            return Expanded(("d", 1), [RawTerm(sympy.Integer(1), ((ROW, (), vector_end(name)),))])
        if kind == "gaussian":
            return Expanded(("d", 1), [RawTerm(sympy.Integer(1), ((ROW, (), vector_end(name, None, True)),))])
        return Expanded(("d", "d"), [RawTerm(sympy.Integer(1), (letter_strand(name),))])

    def _substituted(self, name: str, bound) -> Expanded:
        """The expression substituted for ``name``; expanded once, without further substitution."""
        value = self.env[name]
        if value == g.Number(Fraction(0)):  # a zero of the symbol's own shape
            kind = self.decl.kind(name)
            return Expanded({"scalar": SCALAR, "vector": ("d", 1)}.get(kind, ("d", "d")), [])
        saved, self.env = self.env, {}
        try:
            return self.expand(value, bound)
        finally:
            self.env = saved

    def _Number(self, e: g.Number, bound) -> Expanded:
        return Expanded(SCALAR, [RawTerm(sympy.Rational(e.value.numerator, e.value.denominator), ())] if e.value else [])

    def _Indexed(self, e: g.Indexed, bound) -> Expanded:
        if e.name not in self.decl.gaussians:
            raise ExpressionError(f"only Gaussian families can be indexed: {e.name}[{e.index}]")
        if e.index not in bound:
            raise ExpressionError(f"{e.name}[{e.index}] outside a sum over {e.index}: write sum({e.index}, ...)")
        end = vector_end(e.name, bound[e.index], True)
        return Expanded(("d", 1), [RawTerm(sympy.Integer(1), ((ROW, (), end),))])

    # sums and products
    def _Add(self, e, bound) -> Expanded:
        return self._add(self.expand(e.left, bound), self.expand(e.right, bound), "+", e)

    def _Sub(self, e, bound) -> Expanded:
        right = self.expand(e.right, bound)
        return self._add(self.expand(e.left, bound), _scaled(right, -1), "-", e)

    def _add(self, a: Expanded, b: Expanded, op: str, e) -> Expanded:
        if a.shape != b.shape:
            raise ExpressionError(f"cannot add a {shape_name(a.shape)} and a {shape_name(b.shape)} with {op}")
        return Expanded(a.shape, a.terms + b.terms)

    def _Neg(self, e, bound) -> Expanded:
        return _scaled(self.expand(e.operand, bound), -1)

    def _Mul(self, e, bound) -> Expanded:
        a, b = self.expand(e.left, bound), self.expand(e.right, bound)
        if a.shape != SCALAR and b.shape != SCALAR:
            raise ExpressionError(
                f"'*' needs a scalar factor, got a {shape_name(a.shape)} times a {shape_name(b.shape)} (use @)"
            )
        shape = b.shape if a.shape == SCALAR else a.shape
        _check_size(len(a.terms) * len(b.terms))
        return Expanded(shape, [product(s, t) for s in a.terms for t in b.terms])

    def _MatMul(self, e, bound) -> Expanded:
        a, b = self.expand(e.left, bound), self.expand(e.right, bound)
        if a.shape[1] != b.shape[0]:
            raise ExpressionError(f"'@' shape mismatch: a {shape_name(a.shape)} @ a {shape_name(b.shape)}")
        inner = a.shape[1] == "d"
        _check_size(len(a.terms) * len(b.terms))
        terms = [matmul(s, t, inner, self.algebra) for s in a.terms for t in b.terms]
        return Expanded((a.shape[0], b.shape[1]), terms)

    def _Div(self, e, bound) -> Expanded:
        a, b = self.expand(e.left, bound), self.expand(e.right, bound)
        if b.shape != SCALAR:
            raise ExpressionError(f"can only divide by a scalar, not a {shape_name(b.shape)}")
        return _scaled(a, 1 / self.constant(b, "divide by"))

    def constant(self, b: Expanded, what: str) -> sympy.Expr:
        """The value of a deterministic scalar (numbers, symbols, traces, bilinear forms of constants)."""
        from derive.polynomial import Polynomial

        for term in b.terms:
            for left, _, right in term.strands:
                for end in (left, right):
                    if end[0] == "vec" and end[1] in self.decl.gaussians:
                        raise ExpressionError(f"cannot {what} an expression holding the Gaussian {end[1]!r}")
        value = Polynomial.from_raw(SCALAR, b.terms, self.decl).scalar
        if value == 0:
            raise ExpressionError(f"cannot {what} zero")
        return value

    def _Pow(self, e: g.Pow, bound) -> Expanded:
        power = e.power
        base = self.expand(e.base, bound)
        if base.shape == SCALAR:
            if power.denominator == 1 and power >= 0:
                return self._repeat(e.base, int(power), bound, SCALAR)
            return Expanded(SCALAR, [RawTerm(self.constant(base, "raise to a negative or fractional power")
                                             ** sympy.Rational(power.numerator, power.denominator), ())])
        if base.shape != ("d", "d"):
            raise ExpressionError(f"cannot raise a {shape_name(base.shape)} to a power")
        letter = self._single_letter(base)
        if letter is not None:
            name, p, transposed, coef = letter
            if power.denominator != 1 and not self.algebra.is_symmetric(name):
                raise ExpressionError(f"fractional powers need a symmetric positive-definite symbol, not {name!r}")
            new = RawTerm(coef ** sympy.Rational(power.numerator, power.denominator),
                          (letter_strand(name, p * power, transposed),))
            return Expanded(base.shape, [new])
        if power.denominator != 1 or power < 0:
            return self._compound(base, power)
        return self._repeat(e.base, int(power), bound, base.shape)

    def _compound(self, x: Expanded, power: Fraction) -> Expanded:
        """``P**power`` for a compound matrix polynomial P: an opaque letter (see words.Compound)."""
        from derive.polynomial import Polynomial
        from derive.printing import to_text

        for term in x.terms:
            if term.labels or any(end[0] == "vec" and end[1] in self.decl.gaussians
                                  for s in term.strands for end in (s[0], s[2])):
                raise ExpressionError("inv() or a negative/fractional power of an expression holding a Gaussian")
        poly = Polynomial.from_raw(x.shape, x.terms, self.decl)
        if not poly.terms:
            raise ExpressionError("cannot invert the zero matrix")
        identity = ((ROW, (), COL),)
        if set(poly.terms) == {identity}:  # a scalar multiple of I
            coef = poly.terms[identity] ** sympy.Rational(power.numerator, power.denominator)
            return Expanded(x.shape, [RawTerm(coef, identity)])
        if any(s[0] != ROW or s[2] != COL for chain in poly.terms for s in chain):
            raise ExpressionError("inv() of an outer product is not supported")
        compound = define(to_text(poly), poly)
        if power.denominator != 1 and not compound.symmetric:
            raise ExpressionError("fractional powers need a symmetric positive-definite matrix")
        return Expanded(x.shape, [RawTerm(sympy.Integer(1), (letter_strand(compound.name, power),))])

    def _repeat(self, base: g.Expr, k: int, bound, shape) -> Expanded:
        if k == 0:
            return self.expand(g.Number(Fraction(1)) if shape == SCALAR else g.Name("I"), bound)
        result = self.expand(base, bound)  # re-expanded each time: fresh labels and draws
        for _ in range(k - 1):
            nxt = self.expand(base, bound)
            inner = shape[1] == "d"
            _check_size(len(result.terms) * len(nxt.terms))
            result = Expanded(shape, [matmul(s, t, inner, self.algebra) for s in result.terms for t in nxt.terms])
        return result

    def _single_letter(self, x: Expanded):
        if len(x.terms) != 1 or x.terms[0].labels:
            return None
        strands = x.terms[0].strands
        if len(strands) != 1 or strands[0][0] != ROW or strands[0][2] != COL or len(strands[0][1]) != 1:
            return None
        (l,) = strands[0][1]
        return l.name, l.power, l.transposed, x.terms[0].coef

    def _Transpose(self, e, bound) -> Expanded:
        a = self.expand(e.operand, bound)
        return Expanded((a.shape[1], a.shape[0]), [transpose(t) for t in a.terms])

    def _Trace(self, e, bound) -> Expanded:
        a = self.expand(e.operand, bound)
        if a.shape != ("d", "d"):
            raise ExpressionError(f"tr() needs a matrix, got a {shape_name(a.shape)}")
        return Expanded(SCALAR, [trace(t, self.algebra) for t in a.terms])

    def _Inverse(self, e, bound) -> Expanded:
        a = self.expand(e.operand, bound)
        if a.shape == SCALAR:
            return Expanded(SCALAR, [RawTerm(1 / self.constant(a, "invert"), ())])
        if a.shape != ("d", "d"):
            raise ExpressionError(f"inv() needs a square matrix, got a {shape_name(a.shape)}")
        letter = self._single_letter(a)
        if letter is None:
            return self._compound(a, Fraction(-1))
        name, p, transposed, coef = letter
        return Expanded(a.shape, [RawTerm(1 / coef, (letter_strand(name, -p, transposed),))])

    def _Sum(self, e: g.Sum, bound) -> Expanded:
        if e.index in bound:
            raise ExpressionError(f"index {e.index!r} is already bound by an enclosing sum")
        if e.index in self.decl.gaussians or e.index in self.decl.vectors or e.index in self.decl.scalars:
            raise ExpressionError(f"index {e.index!r} clashes with a declared name")
        label = next(self._labels)
        body = self.expand(e.body, {**bound, e.index: label})
        return Expanded(body.shape, [RawTerm(t.coef, t.strands, t.labels | {label}) for t in body.terms])


MAX_TERMS = 200_000  # beyond this an expansion would take minutes and gigabytes: refuse it


def _check_size(count: int) -> None:
    if count > MAX_TERMS:
        raise ExpressionError(f"the expansion has {count:,} terms (limit {MAX_TERMS:,}); split the expression")


def _scaled(x: Expanded, factor) -> Expanded:
    return Expanded(x.shape, [RawTerm(t.coef * factor, t.strands, t.labels) for t in x.terms])


def define(name: str, poly) -> Compound:
    """Make ``name`` an opaque matrix letter standing for the polynomial ``poly``.

    The letter joins the commuting group of the letters of ``poly`` when they
    all belong to one group (a function of Λ commutes with Λ), and is
    symmetric when ``poly`` equals its transpose.  Evaluation uses ``poly``.
    A plain identifier such as ``"Gamma"`` means the compound only under
    declarations that list it in ``definitions``; generated names (the text of
    the polynomial, from ``inv(...)``) mean it everywhere.
    """
    if name in COMPOUNDS:
        return COMPOUNDS[name]
    algebra = poly.decl.algebra
    groups = {algebra.group(l.name) for chain in poly.terms for s in chain for l in s[1]}
    group = groups.pop() if len(groups) == 1 else None
    compound = Compound(name, group, poly == poly.T, poly)
    COMPOUNDS[name] = compound
    return compound
