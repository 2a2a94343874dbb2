"""The per-derivation context: what every name means.

A :class:`Context` is immutable and passed explicitly to every pass; it holds

* **dimensions** (``d`` always, more declared: ``L``, ``K``) and **counts**
  (``N`` always, more declared: ``M``), both positive-integer symbols;
* constant **matrices** with their shapes (undeclared names are d×d), constant
  **vectors** (columns) with their dimension, **scalars** (real, or positive);
* which matrices are **symmetric** or **spd** (symmetric positive definite),
  and groups of symbols that **commute**;
* **Gaussian families** (:class:`Family`): a name, its dimension (1 for a
  scalar family such as label noise), its covariance as a sum of pairing
  branches, and an optional mean;
* **named compounds** such as ``Gamma``: a name standing for a matrix
  polynomial, defined by a derivation with :meth:`Context.define`, which
  returns a new context (nothing is registered globally, so what ``Gamma``
  means never depends on which derivation ran first).

Contexts are built by :func:`derive.engine.pipeline.declare`, which parses and
checks covariances and means; this module only stores and answers questions.
Shapes are pairs ``(rows, cols)`` whose entries are dimension names or ``1``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

import sympy

from derive.engine.errors import ExpressionError
from derive.engine.grammar import RESERVED, Expr
from derive.engine.words import Algebra, Compound

__all__ = ["Context", "Family", "SCALAR", "shape_name", "dimension_symbol"]

SCALAR = (1, 1)
Shape = tuple


def shape_name(shape: Shape) -> str:
    """``(1, 1)`` → "scalar", ``("L", 1)`` → "vector of length L", ``(1, "L")`` → "row of length L", else "R×C matrix"."""
    rows, cols = shape
    if shape == SCALAR:
        return "scalar"
    if cols == 1:
        return f"vector of length {rows}"
    if rows == 1:
        return f"row of length {cols}"
    return f"{rows}×{cols} matrix"


@functools.lru_cache(maxsize=None)
def dimension_symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a dimension or count: a positive integer."""
    return sympy.Symbol(name, positive=True, integer=True)


@dataclass(frozen=True)
class Family:
    """A Gaussian family ``x ~ N(mean, covariance)``; draws ``x[i]`` are i.i.d., families independent.

    ``branches`` is the covariance written as ``Σ_k coef_k · word_k`` (canonical
    terms): a Wick pairing of two ends of this family joins them through each
    ``word_k`` with weight ``coef_k``.  ``dim`` is ``1`` for a scalar family.
    ``mean`` is an expression of the family's shape, or ``None``.
    """

    name: str
    dim: Any
    covariance: str
    branches: tuple = ()
    mean: Expr | None = None
    mean_text: str = ""

    @property
    def shape(self) -> Shape:
        return (self.dim, 1)


def _frozen(mapping) -> tuple:
    return tuple(sorted((mapping or {}).items(), key=lambda item: item[0]))


class Context:
    """Declarations plus defined compounds; immutable, hashable, compared by content."""

    __slots__ = ("dims", "counts", "matrices", "vectors", "scalars", "positive", "symmetric", "spd", "orthonormal",
                 "orthogonal", "commuting", "families", "compounds", "latex_names", "_key", "_algebra", "_symbols")

    def __init__(self, *, dims=(), counts=(), matrices: Mapping | None = None, vectors: Mapping | None = None,
                 scalars=(), positive=(), symmetric=(), spd=(), orthonormal=(), orthogonal=(), commuting=(),
                 families: Mapping | None = None,
                 compounds: Mapping | None = None, latex_names: Mapping | None = None):
        set_ = object.__setattr__
        set_(self, "dims", ("d",) + tuple(x for x in dims if x != "d"))
        set_(self, "counts", ("N",) + tuple(x for x in counts if x != "N"))
        set_(self, "matrices", dict(matrices or {}))
        set_(self, "vectors", dict(vectors or {}))
        set_(self, "scalars", frozenset(scalars) | frozenset(positive))
        set_(self, "positive", frozenset(positive))
        set_(self, "spd", frozenset(spd))
        set_(self, "symmetric", frozenset(symmetric) | frozenset(spd))
        set_(self, "orthonormal", frozenset(orthonormal))
        set_(self, "orthogonal", frozenset(orthogonal))
        set_(self, "commuting", tuple(tuple(group) for group in commuting))
        set_(self, "families", dict(families or {}))
        set_(self, "compounds", dict(compounds or {}))
        set_(self, "latex_names", dict(latex_names or {}))
        set_(self, "_key", (self.dims, self.counts, _frozen(self.matrices), _frozen(self.vectors),
                            tuple(sorted(self.scalars)), tuple(sorted(self.positive)), tuple(sorted(self.symmetric)),
                            tuple(sorted(self.spd)), tuple(sorted(self.orthonormal)), tuple(sorted(self.orthogonal)),
                            self.commuting,
                            tuple((n, f.dim, f.covariance, f.mean_text) for n, f in _frozen(self.families)),
                            tuple((n, c.key) for n, c in _frozen(self.compounds))))
        set_(self, "_algebra", None)
        set_(self, "_symbols", {})
        self._validate()

    def __setattr__(self, name, value):
        raise AttributeError("a Context is immutable; use define() or replace()")

    def __eq__(self, other):
        return isinstance(other, Context) and other._key == self._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        parts = [f"dims={self.dims}", f"counts={self.counts}"]
        for label, value in (("matrices", self.matrices), ("vectors", self.vectors), ("scalars", sorted(self.scalars)),
                             ("spd", sorted(self.spd)), ("gaussians", {n: f.covariance for n, f in self.families.items()}),
                             ("compounds", sorted(self.compounds))):
            if value:
                parts.append(f"{label}={value}")
        return f"Context({', '.join(parts)})"

    # ---------------------------------------------------------------- validation
    def _validate(self) -> None:
        seen: dict[str, str] = {}

        def claim(name: str, kind: str):
            if not isinstance(name, str) or not name.isidentifier():
                raise ExpressionError(f"{name!r} is not a valid name for a {kind}")
            if name in RESERVED and not (kind == "dimension" and name == "d") and not (kind == "count" and name == "N"):
                raise ExpressionError(f"{name!r} is reserved and cannot be declared as a {kind}")
            if name in seen and seen[name] != kind:
                raise ExpressionError(f"{name!r} is declared both as a {seen[name]} and as a {kind}")
            seen[name] = kind

        for name in self.dims:
            claim(name, "dimension")
        for name in self.counts:
            claim(name, "count")
        for name, shape in self.matrices.items():
            claim(name, "matrix")
            for side in shape:
                self.check_dimension(side, f"the shape of matrix {name!r}")
        for name, dim in self.vectors.items():
            claim(name, "vector")
            self.check_dimension(dim, f"the dimension of vector {name!r}", allow_one=False)
        for name in self.scalars:
            claim(name, "scalar")
        for name, family in self.families.items():
            claim(name, "Gaussian family")
            self.check_dimension(family.dim, f"the dimension of Gaussian {name!r}")
        for name in self.compounds:
            claim(name, "defined matrix")
        for names, what, square in ((self.symmetric, "symmetric", True), (self.orthogonal, "orthogonal", True),
                                    (self.orthonormal, "orthonormal", False)):
            for name in names:
                rows, cols = self.matrices.get(name, ("d", "d"))
                if square and rows != cols:
                    raise ExpressionError(f"{name!r} is declared {what} but has shape {rows}×{cols}")
                if name in seen and seen[name] != "matrix":
                    raise ExpressionError(f"{name!r} is a {seen[name]}, not a matrix: it cannot be {what}")
        both = (self.orthonormal | self.orthogonal) & self.symmetric
        if both:
            raise ExpressionError(f"{sorted(both)[0]!r} cannot be both symmetric and orthonormal here")

    def check_dimension(self, dim, what: str, allow_one: bool = True) -> None:
        if dim == 1 and allow_one:
            return
        if dim not in self.dims:
            raise ExpressionError(f"{what} uses {dim!r}, which is not a declared dimension (declare it with --dim {dim})")

    # ---------------------------------------------------------------- questions
    def kind(self, name: str) -> str:
        """"gaussian", "vector", "scalar", "dimension", "count", "compound" or "matrix"."""
        if name in self.families:
            return "gaussian"
        if name in self.vectors:
            return "vector"
        if name in self.scalars:
            return "scalar"
        if name in self.dims:
            return "dimension"
        if name in self.counts:
            return "count"
        if name in self.compounds:
            return "compound"
        return "matrix"

    def matrix_shape(self, name: str) -> Shape:
        """The shape of a matrix symbol: declared, or d×d."""
        if name in self.compounds:
            dim = self.compounds[name].dim
            return (dim, dim)
        return tuple(self.matrices.get(name, ("d", "d")))

    def symbol(self, name: str) -> sympy.Symbol:
        """The sympy symbol of a scalar, dimension or count name (positive where declared so)."""
        found = self._symbols.get(name)
        if found is None:
            if name in self.dims or name in self.counts:
                found = dimension_symbol(name)
            elif name in self.positive:
                found = sympy.Symbol(name, positive=True)
            else:
                found = sympy.Symbol(name, real=True)
            self._symbols[name] = found
        return found

    def dim_value(self, dim) -> sympy.Expr:
        """The size of a dimension as a sympy value (``1`` for scalars)."""
        return sympy.Integer(1) if dim == 1 else dimension_symbol(dim)

    @property
    def size_symbols(self) -> frozenset:
        """The symbols of all dimensions and counts (the coefficients' "numbers")."""
        return frozenset(dimension_symbol(n) for n in self.dims + self.counts)

    @property
    def algebra(self) -> Algebra:
        if self._algebra is None:
            pairs = tuple((name, f"group{k}") for k, group in enumerate(self.commuting) for name in group)
            columns = tuple(sorted((name, self.matrix_shape(name)[1]) for name in self.orthonormal))
            object.__setattr__(self, "_algebra", Algebra(frozenset(self.symmetric), frozenset(self.spd), pairs,
                                                         columns, frozenset(self.orthogonal)))
        return self._algebra

    # ---------------------------------------------------------------- new contexts
    def _fields(self) -> dict:
        return dict(dims=self.dims, counts=self.counts, matrices=self.matrices, vectors=self.vectors,
                    scalars=self.scalars - self.positive, positive=self.positive, symmetric=self.symmetric - self.spd,
                    spd=self.spd, orthonormal=self.orthonormal, orthogonal=self.orthogonal,
                    commuting=self.commuting, families=self.families, compounds=self.compounds,
                    latex_names=self.latex_names)

    def replace(self, **changes) -> "Context":
        """A copy with some fields replaced (e.g. ``latex_names=...``)."""
        return Context(**{**self._fields(), **changes})

    def define(self, name: str, compound: Compound) -> "Context":
        """A new context in which ``name`` stands for ``compound`` (see ``pipeline.define``)."""
        if name in self.compounds and self.compounds[name] != compound:
            raise ExpressionError(f"{name!r} is already defined in this context as another matrix")
        if self.kind(name) not in ("matrix", "compound") or name in self.matrices:
            raise ExpressionError(f"{name!r} is already declared as a {self.kind(name)}; cannot define it")
        return self.replace(compounds={**self.compounds, name: compound})

    def merge(self, other: "Context") -> "Context":
        """The context of a result combining polynomials of ``self`` and ``other``: the union of both.

        A name declared differently in the two (a vector here, a scalar there;
        two shapes; a positive and a real scalar; two meanings of a defined
        matrix or of a Gaussian) is an error.
        """
        if other is self or other == self:
            return self

        def union(mine: dict, theirs: dict, what: str) -> dict:
            out = dict(mine)
            for name, value in theirs.items():
                if name in out and out[name] != value:
                    raise ExpressionError(f"{name!r} is declared as two different {what}s in the two contexts")
                out[name] = value
            return out

        clash = (self.positive & (other.scalars - other.positive)) | (other.positive & (self.scalars - self.positive))
        if clash:
            raise ExpressionError(f"scalar {sorted(clash)[0]!r} is positive in one context and real in the other")
        families = union({n: (f.dim, f.covariance, f.mean_text) for n, f in self.families.items()},
                         {n: (f.dim, f.covariance, f.mean_text) for n, f in other.families.items()}, "Gaussian")
        return Context(dims=self.dims + tuple(x for x in other.dims if x not in self.dims),
                       counts=self.counts + tuple(x for x in other.counts if x not in self.counts),
                       matrices=union(self.matrices, other.matrices, "matrix shape"),
                       vectors=union(self.vectors, other.vectors, "vector dimension"),
                       scalars=(self.scalars | other.scalars) - self.positive - other.positive,
                       positive=self.positive | other.positive,
                       symmetric=(self.symmetric | other.symmetric) - self.spd - other.spd,
                       spd=self.spd | other.spd, orthonormal=self.orthonormal | other.orthonormal,
                       orthogonal=self.orthogonal | other.orthogonal,
                       commuting=self.commuting + tuple(g for g in other.commuting if g not in self.commuting),
                       families={**other.families, **self.families} if families is not None else {},
                       compounds=union(self.compounds, other.compounds, "defined matrice"),
                       latex_names={**other.latex_names, **self.latex_names})

    def compound_name(self, compound: Compound) -> str | None:
        """The name under which ``compound`` is defined here, if any (for printing)."""
        for name, value in self.compounds.items():
            if value == compound:
                return name
        return None

    def describe(self) -> dict:
        """The declarations as plain data (for JSON output)."""
        return {"dims": list(self.dims), "counts": list(self.counts),
                "matrices": {n: list(s) for n, s in sorted(self.matrices.items())},
                "vectors": dict(sorted(self.vectors.items())), "scalars": sorted(self.scalars),
                "positive": sorted(self.positive), "spd": sorted(self.spd),
                "symmetric": sorted(self.symmetric - self.spd), "orthonormal": sorted(self.orthonormal),
                "orthogonal": sorted(self.orthogonal),
                "gaussians": {n: {"covariance": f.covariance, **({"mean": f.mean_text} if f.mean_text else {})}
                              for n, f in sorted(self.families.items())},
                "defined": sorted(self.compounds)}
