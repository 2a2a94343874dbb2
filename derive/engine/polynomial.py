"""Matrix polynomials in canonical form: the engine's result type.

A :class:`Polynomial` is ``Σ_chain coef(chain) · chain`` of one shape, in one
:class:`~derive.engine.context.Context`: ``chain`` is the canonical free part
(a matrix word, a vector ``W v``, a row ``vᵀ W``, an outer product, or nothing
for scalars) and ``coef`` a sympy expression in scalar symbols, sizes and
:class:`~derive.engine.canonical.Contraction` atoms (traces and bilinear
forms).  Arithmetic on polynomials re-canonicalizes; printing, evaluation and
conversion to sympy are passes that only read it.

>>> from derive.engine.pipeline import declare
>>> ctx = declare(matrices={"Lambda": "spd"})
>>> p = Polynomial.of("Lambda @ A @ inv(Lambda) @ Lambda + tr(A.T @ Lambda) * I", ctx)
>>> print(p)
Lambda @ A + tr(A @ Lambda) * I
>>> print((p @ p.T).trace())
(d + 2) * tr(A @ Lambda)**2 + tr(A @ A.T @ Lambda**2)
"""

from __future__ import annotations

from fractions import Fraction
import sympy

from derive.engine import grammar as g
from derive.engine.canonical import Contraction, collect
from derive.engine.context import SCALAR, Context, shape_name
from derive.engine.errors import ExpressionError
from derive.engine.expand import Expander, gaussian_ends
from derive.engine.printing import expr_latex, expr_text, poly_expr, signed_terms, sympy_expr
from derive.engine.strands import RawTerm, matmul, product, trace, transpose

__all__ = ["Polynomial", "Collected", "as_exprs"]


class Polynomial:
    """An immutable canonical matrix polynomial of one shape, in one context."""

    __slots__ = ("shape", "terms", "context")

    def __init__(self, shape, terms: dict, context: Context):
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "terms", {chain: coef for chain, coef in terms.items() if coef != 0})

    def __setattr__(self, name, value):
        raise AttributeError("a Polynomial is immutable")

    # ---------------------------------------------------------------- building
    @classmethod
    def from_raw(cls, shape, raw_terms, context: Context) -> "Polynomial":
        """Collect raw terms without Gaussians into canonical form."""
        return cls(shape, collect(raw_terms, context.algebra), context)

    @classmethod
    def of(cls, expr, context: Context, env: dict | None = None) -> "Polynomial":
        """Expand a deterministic expression (text or tree; no Gaussian) into canonical form.

        ``env`` substitutes expressions (text, trees, polynomials or numbers) for names.
        """
        expr = g.parse(expr) if isinstance(expr, str) else expr
        expanded = Expander(context, as_exprs(env, context)).expand(expr)
        for term in expanded.terms:
            ends = gaussian_ends(term, context)
            if ends:
                raise ExpressionError(f"{ends[0][1]!r} is Gaussian: take an expectation")
        return cls.from_raw(expanded.shape, expanded.terms, context)

    def raw(self) -> list:
        return [RawTerm(coef, chain) for chain, coef in self.terms.items()]

    def in_context(self, context: Context) -> "Polynomial":
        """The same polynomial, re-canonicalized in a (larger) context."""
        if context is self.context or context == self.context:
            return self
        return Polynomial.from_raw(self.shape, self.raw(), context)

    def _aligned(self, other: "Polynomial") -> tuple:
        """Both operands in their merged context (re-canonicalized where it differs)."""
        context = self.context.merge(other.context)
        return context, self.in_context(context), other.in_context(context)

    # ---------------------------------------------------------------- algebra
    def __add__(self, other):
        other = self._coerce(other)
        if other.shape != self.shape:
            raise ExpressionError(f"cannot add a {shape_name(self.shape)} and a {shape_name(other.shape)}")
        context, mine, theirs = self._aligned(other)
        terms = dict(mine.terms)
        for chain, coef in theirs.terms.items():
            terms[chain] = sympy.expand(terms.get(chain, 0) + coef)
        return Polynomial(self.shape, terms, context)

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
                context = self.context.merge(other.context)
                return Polynomial.from_raw(self.shape, [product(a, b) for a in self.raw() for b in other.raw()], context)
            if self.shape == SCALAR:
                return other * self
            raise ExpressionError("'*' needs a scalar factor")
        other = sympy.sympify(other)
        return Polynomial(self.shape, {c: sympy.expand(v * other) for c, v in self.terms.items()}, self.context)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, Polynomial):
            if other.shape != SCALAR or len(other.terms) != 1 or () not in other.terms:
                raise ExpressionError("can only divide by a scalar")
            other = other.terms[()]
        return self * (1 / sympy.sympify(other))

    def __matmul__(self, other: "Polynomial"):
        if self.shape[1] != other.shape[0]:
            raise ExpressionError(f"'@' shape mismatch: {shape_name(self.shape)} @ {shape_name(other.shape)}")
        context = self.context.merge(other.context)
        algebra = context.algebra
        terms = [matmul(a, b, self.shape[1], algebra) for a in self.raw() for b in other.raw()]
        return Polynomial.from_raw((self.shape[0], other.shape[1]), terms, context)

    @property
    def T(self) -> "Polynomial":
        return Polynomial.from_raw((self.shape[1], self.shape[0]), [transpose(t) for t in self.raw()], self.context)

    def trace(self) -> "Polynomial":
        if self.shape[0] != self.shape[1] or self.shape == SCALAR:
            raise ExpressionError(f"tr() needs a square matrix, got a {shape_name(self.shape)}")
        algebra = self.context.algebra
        return Polynomial.from_raw(SCALAR, [trace(t, algebra, self.shape[0]) for t in self.raw()], self.context)

    def _coerce(self, other) -> "Polynomial":
        if isinstance(other, Polynomial):
            return other
        if self.shape != SCALAR and other == 0:
            return Polynomial(self.shape, {}, self.context)
        return Polynomial(SCALAR, {(): sympy.sympify(other)}, self.context)

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
        """Names of every matrix, vector and scalar symbol that occurs (compounds by their letters)."""
        found: set = set()
        for chain, coef in self.terms.items():
            for strand in chain:
                found |= _strand_names(strand)
            for atom in coef.free_symbols:
                found |= _strand_names(atom.strand) if isinstance(atom, Contraction) else {atom.name}
        return found

    def expr(self) -> g.Expr:
        """This polynomial as a tree of the input grammar (grouped by monomial)."""
        return poly_expr(self)

    def xreplace(self, mapping: dict) -> "Polynomial":
        """Replace scalar sympy atoms (symbols, traces) by sympy values, e.g. ``{c: tr(A)**(-1/4)}``."""
        return Polynomial(self.shape, {k: sympy.expand(v.xreplace(mapping)) for k, v in self.terms.items()},
                          self.context)

    def substitute(self, values: dict) -> "Polynomial":
        """Replace symbols by expressions (``{"U11": "c * inv(Gamma)"}``) and re-canonicalize."""
        return Polynomial.of(self.expr(), self.context, values)

    def collect(self, *names: str) -> "Collected":
        """The terms grouped by monomials in the named scalars: ``η² (…) + η (…) + (…)``.

        >>> from derive.engine.pipeline import declare
        >>> ctx = declare(scalars=["eta"])
        >>> print(Polynomial.of("(I + eta * A) @ (I + eta * B) - I", ctx).collect("eta"))
        eta**2 * A @ B + eta * (A + B)
        """
        for name in names:
            if self.context.kind(name) not in ("scalar", "dimension", "count"):
                raise ExpressionError(f"collect() takes scalar names; {name!r} is a {self.context.kind(name)}")
        symbols = {self.context.symbol(n) for n in names}
        groups: dict = {}
        for chain, coef in self.terms.items():
            for term in sympy.Add.make_args(sympy.expand(coef)):
                key = sympy.Mul(*[f for f in sympy.Mul.make_args(term) if f.as_base_exp()[0] in symbols])
                bucket = groups.setdefault(key, {})
                bucket[chain] = bucket.get(chain, 0) + term / key
        parts = [(key, Polynomial(self.shape, {c: sympy.expand(v) for c, v in terms.items()}, self.context))
                 for key, terms in groups.items()]
        degree = lambda key: sum(float(e) for _, e in (f.as_base_exp() for f in sympy.Mul.make_args(key)))  # noqa
        parts.sort(key=lambda item: (-degree(item[0]) if item[0] != 1 else 0, str(item[0])))
        return Collected(names, [(k, p) for k, p in parts if not p.is_zero()], self)

    # ---------------------------------------------------------------- passes that read
    def to_sympy(self):
        """The same result as a sympy matrix expression (MatrixSymbol, Trace, Inverse, ...)."""
        from derive.engine.sympy_form import to_sympy

        return to_sympy(self)

    def text(self) -> str:
        """The polynomial in the input grammar (it parses back, in the same context, to an equal polynomial)."""
        return expr_text(self.expr())

    def latex(self, names: dict | None = None) -> str:
        return expr_latex(self.expr(), {**self.context.latex_names, **(names or {})})

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __str__(self):
        return self.text()

    def __repr__(self):
        return f"Polynomial({self.text()!r})"

    def evaluate(self, values: dict, d: int | None = None, N: int | None = None, **sizes):
        """Numeric value at concrete arrays and numbers (float64).

        Sizes are read off the arrays where possible (``d`` from a d×d matrix);
        counts such as ``N`` are given in ``values`` or as keywords.  Returns a
        float for scalars, an array ``(k,)`` for vectors and rows, ``(r, c)`` for matrices.
        """
        from derive.engine.evaluate import evaluate

        return evaluate(self, values, d, N, **sizes)


class Collected:
    """A polynomial grouped by monomials in some scalars: ``[(monomial, polynomial), ...]``."""

    def __init__(self, names, parts: list, whole: Polynomial):
        self.names, self.parts, self.whole = tuple(names), parts, whole

    def items(self) -> list:
        return list(self.parts)

    def expr(self) -> g.Expr:
        """``Σ monomial · (polynomial)``; a group of one negative term pulls its sign out."""
        pieces = []
        for key, poly in self.parts:
            body = poly.expr()
            terms = signed_terms(body)
            sign = 1
            if len(terms) == 1:
                sign, body = terms[0]
            if key == 1:
                pieces.append((sign, body))
            elif isinstance(body, g.Mul) and isinstance(body.left, g.Number):  # 2 * eta * tr(A), not eta * 2 * …
                pieces.append((sign, g.Mul(g.Mul(body.left, sympy_expr(key, poly.context)), body.right)))
            else:
                pieces.append((sign, g.Mul(sympy_expr(key, poly.context), body)))
        if not pieces:
            return self.whole.expr()
        total = pieces[0][1] if pieces[0][0] > 0 else g.Neg(pieces[0][1])
        for sign, piece in pieces[1:]:
            total = g.Add(total, piece) if sign > 0 else g.Sub(total, piece)
        return total

    def text(self) -> str:
        return expr_text(self.expr())

    def latex(self, names: dict | None = None) -> str:
        return expr_latex(self.expr(), {**self.whole.context.latex_names, **(names or {})})

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def __str__(self):
        return self.text()

    def __repr__(self):
        return f"Collected({self.text()!r})"


def as_exprs(env: dict | None, context: Context) -> dict:
    """Values of a substitution as grammar trees (text is parsed, polynomials written out)."""
    out = {}
    for name, value in (env or {}).items():
        if isinstance(value, str):
            value = g.parse(value)
        elif isinstance(value, Polynomial):
            value = value.expr()
        elif isinstance(value, (int, Fraction)):
            value = g.Number(Fraction(value))
        elif not isinstance(value, g.Expr):
            value = sympy_expr(sympy.sympify(value), context)
        out[name] = value
    return out


def _strand_names(strand) -> set:
    left, word, right = strand
    found = {l.name for l in word if isinstance(l.name, str)}
    for l in word:
        if not isinstance(l.name, str):
            for chain in l.name.value.terms:
                for s in chain:
                    found |= _strand_names(s)
    for end in (left, right):
        if end[0] == "vec":
            found.add(end[1])
    return found

