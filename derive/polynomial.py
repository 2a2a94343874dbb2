"""Matrix polynomials in canonical form: the engine's result type.

A :class:`Polynomial` is ``Σ_chain coef(chain) · chain``: ``chain`` is the
canonical free part (a matrix word, a vector ``W v``, a row ``vᵀ W``, an outer
product, or nothing for scalars) and ``coef`` a sympy expression in scalar
symbols, ``N``, ``d`` and :class:`~derive.terms.Contraction` atoms (traces and
bilinear forms).  Each term is thus a product of traces times at most one
matrix chain, with like terms collected by sympy.

>>> from derive.polynomial import expectation
>>> print(expectation("x @ x.T @ A @ x @ x.T", gaussians={"x": "Lambda"}).text())
Lambda @ A @ Lambda + Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda
"""

from __future__ import annotations

from fractions import Fraction

import sympy

from derive import grammar as g
from derive.expand import D, N, Declarations, Expander, ExpressionError, SCALAR, shape_name
from derive.terms import LOOP, Contraction, RawTerm, canonicalize
from derive.terms import matmul as _matmul, trace as _trace, transpose as _transpose, product as _product
from derive.wick import expect_term


class Polynomial:
    """An immutable canonical matrix polynomial of one shape."""

    __slots__ = ("shape", "terms", "decl")

    def __init__(self, shape, terms: dict, decl: Declarations):
        self.shape = shape
        self.decl = decl
        self.terms = {chain: coef for chain, coef in terms.items() if coef != 0}

    # ---------------------------------------------------------------- building
    @classmethod
    def from_raw(cls, shape, raw_terms, decl: Declarations) -> "Polynomial":
        algebra = decl.algebra
        collected: dict = {}
        for term in raw_terms:
            if term.labels:
                term = RawTerm(term.coef * N ** len(term.labels), term.strands)
            chain, scalar = canonicalize(term, algebra, D)
            collected[chain] = collected.get(chain, 0) + scalar
        return cls(shape, {c: sympy.expand(v) for c, v in collected.items()}, decl)

    @classmethod
    def of(cls, expr, decl: Declarations, env: dict | None = None) -> "Polynomial":
        """Expand a deterministic expression (no Gaussian vectors) into canonical form."""
        expr = g.parse(expr) if isinstance(expr, str) else expr
        expanded = Expander(decl, _as_exprs(env)).expand(expr)
        for term in expanded.terms:
            for s in term.strands:
                for end in (s[0], s[2]):
                    if end[0] == "vec" and end[1] in decl.gaussians:
                        raise ExpressionError(f"{end[1]!r} is Gaussian: take an expectation")
        return cls.from_raw(expanded.shape, expanded.terms, decl)

    def raw(self):
        return [RawTerm(coef, chain) for chain, coef in self.terms.items()]

    def _like(self, shape, raw_terms) -> "Polynomial":
        return Polynomial.from_raw(shape, raw_terms, self.decl)

    # ---------------------------------------------------------------- algebra
    def __add__(self, other):
        other = self._coerce(other)
        if other.shape != self.shape:
            raise ExpressionError(f"cannot add a {shape_name(self.shape)} and a {shape_name(other.shape)}")
        terms = dict(self.terms)
        for chain, coef in other.terms.items():
            terms[chain] = sympy.expand(terms.get(chain, 0) + coef)
        return Polynomial(self.shape, terms, self.decl)

    __radd__ = __add__

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-self._coerce(other))

    def __rsub__(self, other):
        return self._coerce(other) - self

    def __mul__(self, other):
        if isinstance(other, Polynomial):
            if other.shape == SCALAR:
                return self._like(self.shape, [_product(a, b) for a in self.raw() for b in other.raw()])
            if self.shape == SCALAR:
                return other * self
            raise ExpressionError("'*' needs a scalar factor")
        other = sympy.sympify(other)
        return Polynomial(self.shape, {c: sympy.expand(v * other) for c, v in self.terms.items()}, self.decl)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self * (1 / sympy.sympify(other))

    def __matmul__(self, other: "Polynomial"):
        if self.shape[1] != other.shape[0]:
            raise ExpressionError(f"'@' shape mismatch: {shape_name(self.shape)} @ {shape_name(other.shape)}")
        inner = self.shape[1] == "d"
        algebra = self.decl.algebra
        terms = [_matmul(a, b, inner, algebra) for a in self.raw() for b in other.raw()]
        return self._like((self.shape[0], other.shape[1]), terms)

    @property
    def T(self):
        return self._like((self.shape[1], self.shape[0]), [_transpose(t) for t in self.raw()])

    def trace(self):
        if self.shape != ("d", "d"):
            raise ExpressionError(f"tr() needs a matrix, got a {shape_name(self.shape)}")
        return self._like(SCALAR, [_trace(t, self.decl.algebra) for t in self.raw()])

    def _coerce(self, other) -> "Polynomial":
        if isinstance(other, Polynomial):
            return other
        if self.shape != SCALAR and other == 0:
            return Polynomial(self.shape, {}, self.decl)
        return Polynomial(SCALAR, {(): sympy.sympify(other)}, self.decl)

    # ---------------------------------------------------------------- queries
    def is_zero(self) -> bool:
        return not self.terms

    def __eq__(self, other):
        if not isinstance(other, Polynomial):
            return NotImplemented
        return self.shape == other.shape and (self - other).is_zero()

    def __hash__(self):
        return hash((self.shape, frozenset(self.terms.items())))

    @property
    def scalar(self) -> sympy.Expr:
        """The sympy value of a scalar polynomial (traces are Contraction atoms)."""
        if self.shape != SCALAR:
            raise ExpressionError(f"not a scalar but a {shape_name(self.shape)}")
        return self.terms.get((), sympy.Integer(0))

    def symbols(self) -> set[str]:
        """Names of every matrix, vector and scalar symbol that occurs."""
        found = set()
        for chain, coef in self.terms.items():
            for strand in chain:
                found |= _strand_names(strand)
            for atom in coef.free_symbols:
                found |= _strand_names(atom.strand) if isinstance(atom, Contraction) else {atom.name}
        return found

    def expr(self) -> g.Expr:
        """This polynomial as an expression tree of the input grammar."""
        total = None
        for chain, coef in sorted(self.terms.items(), key=lambda item: str(item[0])):
            piece = _chain_expr(chain)
            term = _sympy_expr(coef) if piece is None else (
                piece if coef == 1 else g.Mul(_sympy_expr(coef), piece))
            total = term if total is None else g.Add(total, term)
        if total is None:
            return g.Number(Fraction(0)) if self.shape == SCALAR else g.Mul(g.Number(Fraction(0)), g.Name("I"))
        return total

    def xreplace(self, mapping: dict) -> "Polynomial":
        """Replace scalar sympy atoms (symbols, traces) by sympy values, e.g. ``{c: tr(A)**(-1/4)}``."""
        return Polynomial(self.shape, {k: sympy.expand(v.xreplace(mapping)) for k, v in self.terms.items()},
                          self.decl)

    def substitute(self, values: dict) -> "Polynomial":
        """Replace symbols by expressions (``{"U11": "c * inv(Gamma)"}``) and re-canonicalize."""
        return Polynomial.of(self.expr(), self.decl, values)

    def to_sympy(self):
        """The same result as a sympy matrix expression (MatrixSymbol, Trace, Inverse, ...)."""
        from derive.sympy_form import to_sympy

        return to_sympy(self)

    def text(self) -> str:
        from derive.printing import to_text

        return to_text(self)

    def latex(self, names: dict | None = None) -> str:
        from derive.printing import to_latex

        return to_latex(self, names)

    def __repr__(self):
        return f"Polynomial({self.text()!r})"

    def evaluate(self, values: dict, d: int, N: int | None = None):
        """Numeric value at concrete matrices (d×d arrays), vectors (shape (d,)) and scalars.

        Returns a float for scalars, an array of shape (d,) for vectors and row
        vectors, and (d, d) for matrices.
        """
        from derive.evaluate import evaluate

        return evaluate(self, values, d, N)


def _as_exprs(env: dict | None) -> dict:
    out = {}
    for name, value in (env or {}).items():
        if isinstance(value, str):
            value = g.parse(value)
        elif isinstance(value, Polynomial):
            value = value.expr()
        elif not isinstance(value, g.Expr):
            value = _sympy_expr(sympy.sympify(value))
        out[name] = value
    return out


def _strand_names(strand) -> set[str]:
    left, word, right = strand
    found = {l.name for l in word}
    for end in (left, right):
        if end[0] == "vec":
            found.add(end[1])
    return found


def _word_expr(word) -> g.Expr | None:
    result = None
    for l in word:
        node: g.Expr = g.Name(l.name)
        if l.power == -1:
            node = g.Inverse(node)
        elif l.power != 1:
            node = g.Pow(node, l.power)
        if l.transposed:
            node = g.Transpose(node)
        result = node if result is None else g.MatMul(result, node)
    return result


def strand_expr(strand) -> g.Expr:
    left, word, right = strand
    w = _word_expr(word)
    if left == LOOP:
        return g.Trace(w if w is not None else g.Name("I"))
    parts = []
    if left[0] == "vec":
        parts.append(g.Transpose(g.Name(left[1])))
    if w is not None:
        parts.append(w)
    if right[0] == "vec":
        parts.append(g.Name(right[1]))
    if not parts:
        parts.append(g.Name("I"))
    result = parts[0]
    for p in parts[1:]:
        result = g.MatMul(result, p)
    return result


def _chain_expr(chain) -> g.Expr | None:
    if not chain:
        return None
    result = strand_expr(chain[0])
    for strand in chain[1:]:
        result = g.MatMul(result, strand_expr(strand))
    return result


def _sympy_expr(value: sympy.Expr) -> g.Expr:
    if isinstance(value, Contraction):
        return strand_expr(value.strand)
    if isinstance(value, sympy.Symbol):
        return g.Name(value.name)
    if value.is_Rational:
        return g.Number(Fraction(int(value.p), int(value.q)))
    if value.is_Add:
        args = [_sympy_expr(a) for a in value.args]
        result = args[0]
        for a in args[1:]:
            result = g.Add(result, a)
        return result
    if value.is_Mul:
        args = [_sympy_expr(a) for a in value.args]
        result = args[0]
        for a in args[1:]:
            result = g.Mul(result, a)
        return result
    if value.is_Pow and value.exp.is_Rational:
        return g.Pow(_sympy_expr(value.base), Fraction(int(value.exp.p), int(value.exp.q)))
    raise ExpressionError(f"cannot write {value} in the expression grammar")


def expectation(expr, gaussians: dict | None = None, vectors=(), scalars=(), decl: Declarations | None = None,
                env: dict | None = None) -> Polynomial:
    """E[expr] over the declared Gaussian families, in canonical coordinate-free form.

    >>> print(expectation("x.T @ A @ x", gaussians={"x": "Lambda"}).text())
    tr(A @ Lambda)
    >>> print(expectation("sum(i, x[i] @ x[i].T) @ sum(j, x[j] @ x[j].T) / N**2", gaussians={"x": "Lambda"}).text())
    (1 + 1/N) * Lambda**2 + tr(Lambda)/N * Lambda
    """
    if decl is None:
        decl = Declarations(gaussians=gaussians or {}, vectors=frozenset(vectors), scalars=frozenset(scalars))
    expr = g.parse(expr) if isinstance(expr, str) else expr
    expanded = Expander(decl, _as_exprs(env)).expand(expr)
    raw = [paired for term in expanded.terms for paired in expect_term(term, decl)]
    return Polynomial.from_raw(expanded.shape, raw, decl)
