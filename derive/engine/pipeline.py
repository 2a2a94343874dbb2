"""The engine's pipeline, one visible pass after another, and the declarations that feed it.

    text ──parse──▶ tree ──apply_expansion──▶ raw terms ──apply_wick──▶ Gaussian-free terms
         ──apply_canonical_form──▶ Polynomial ──▶ printing / evaluation / calculus

:func:`declare` builds the :class:`~derive.engine.context.Context` (parsing and
checking covariances and means); :func:`expectation` runs the passes;
:func:`expect` is the one-call Python API::

    >>> print(expect("x @ x.T @ A @ x @ x.T", gaussians={"x": "Lambda"}))
    Lambda @ A @ Lambda + Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda
    >>> print(expect("sum(i, (w.T @ x[i] + eps[i])**2, M)", gaussians={"x": "I", "w": "I", "eps": "sigma**2"},
    ...              scalars=["sigma"], counts=["M"]))
    M * sigma**2 + M * d
"""

from __future__ import annotations

from typing import Iterable, Mapping

import sympy

from derive.engine import grammar as g
from derive.engine.canonical import collect, gather, is_psd_terms
from derive.engine.context import SCALAR, Context, Family, shape_name
from derive.engine.errors import ExpressionError
from derive.engine.expand import CanonicalTerms, Expander, Expanded, gaussian_ends, make_compound
from derive.engine.polynomial import Polynomial, as_exprs
from derive.engine.strands import COL, ROW, RawTerm, transpose
from derive.engine.wick import Budget, apply_wick

__all__ = ["declare", "expect", "expectation", "polynomial", "define", "apply_expansion", "apply_wick",
           "apply_canonical_form", "parse_matrix_spec"]

PROPERTIES = ("spd", "symmetric", "orthonormal", "orthogonal")


# ---------------------------------------------------------------- declarations

def parse_matrix_spec(name: str, spec) -> tuple[tuple, str | None]:
    """``"L,d"`` → ``(("L", "d"), None)``; ``"spd"`` → ``(("d", "d"), "spd")``; ``"L:symmetric"`` → L×L symmetric.

    A spec is ``[SHAPE][:PROPERTY]`` with SHAPE ``R,C`` or ``R`` (square) and
    PROPERTY ``spd``, ``symmetric``, ``orthogonal`` (square, ``Qᵀ = Q⁻¹``) or ``orthonormal``
    (orthonormal columns, ``Uᵀ U = I``); a tuple ``(R, C)`` is a shape.
    """
    if spec is None or spec == "":
        return ("d", "d"), None
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ExpressionError(f"the shape of matrix {name!r} must be (rows, cols), got {spec!r}")
        return tuple(spec), None
    shape, prop = ("d", "d"), None
    for part in str(spec).split(":"):
        part = part.strip()
        if part in PROPERTIES:
            if prop is not None:
                raise ExpressionError(f"matrix {name!r}: two properties in {spec!r}")
            prop = part
        elif part:
            sides = [s.strip() for s in part.split(",")]
            if len(sides) == 1:
                sides = sides * 2
            if len(sides) != 2 or not all(s == "1" or s.isidentifier() for s in sides):
                raise ExpressionError(f"matrix {name!r}: expected a shape such as L,d or a property "
                                      f"({', '.join(PROPERTIES)}), got {part!r}")
            shape = tuple(1 if s == "1" else s for s in sides)
        else:
            raise ExpressionError(f"matrix {name!r}: empty part in {spec!r}")
    if prop is not None and prop != "orthonormal" and shape[0] != shape[1]:
        raise ExpressionError(f"matrix {name!r} is {shape[0]}×{shape[1]}: only square matrices are {prop}")
    return shape, prop


def _named(spec, default) -> dict:
    """A mapping name → spec from a mapping or an iterable of names (each with ``default``)."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, str):
        return {spec: default}
    return {name: default for name in spec}


def _bare_names(tree: g.Expr, scalar_like: set) -> set:
    """Names that make up a whole term of a covariance, up to scalar factors (``Lambda`` in ``c**2 * Lambda``)."""
    found = set()
    terms, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (g.Add, g.Sub)):
            stack += [node.left, node.right]
        elif isinstance(node, g.Neg):
            stack.append(node.operand)
        else:
            terms.append(node)
    for term in terms:
        factors, stack = [], [term]
        while stack:
            node = stack.pop()
            if isinstance(node, g.Mul):
                stack += [node.left, node.right]
            elif isinstance(node, g.Div):
                stack.append(node.left)
            else:
                factors.append(node)
        rest = [f for f in factors if not _is_scalar_factor(f, scalar_like)]
        if len(rest) == 1 and isinstance(rest[0], g.Name) and rest[0].name != "I":
            found.add(rest[0].name)  # Lambda in c**2 * Lambda
        elif not rest:  # a purely scalar term: a bare scalar name in it is a variance (rho in 2 * rho)
            found |= {f.name for f in factors if isinstance(f, g.Name) and f.name in scalar_like}
    return found


def _is_scalar_factor(node: g.Expr, scalar_like: set) -> bool:
    base = node.base if isinstance(node, g.Pow) else node
    return isinstance(base, g.Number) or (isinstance(base, g.Name) and base.name in scalar_like)


def declare(*, gaussians: Mapping | None = None, vectors=None, matrices=None, scalars=None, dims: Iterable = (),
            counts: Iterable = (), spd: Iterable = (), symmetric: Iterable = (), commuting: Iterable = (),
            latex_names: Mapping | None = None) -> Context:
    """The context of a computation, from declarations in the grammar.

    ``gaussians``: name → ``COV`` or ``(COV, MEAN)``, each a grammar text; COV
    is a symmetric positive semi-definite matrix (``"Lambda"``, ``"I"``,
    ``"c**2 * Lambda"``, ``"I(L)"``) or a non-negative scalar (``"sigma**2"``:
    a scalar family).  A name that is a whole term of a covariance is
    declared SPD (a scalar one: positive) unless declared otherwise.
    ``vectors``: names (d-vectors) or name → dimension.  ``matrices``: names
    (d×d) or name → spec (``"L,d"``, ``"spd"``, ``"L:symmetric"``).
    ``scalars``: names or name → ``"positive"``.  ``dims``/``counts``: extra
    dimension and count names.  Raises :class:`ExpressionError` (one line) for
    anything inconsistent.

    >>> ctx = declare(gaussians={"x": "c**2 * Lambda", "eps": "sigma**2"}, scalars=["c", "sigma"])
    >>> ctx.families["eps"].dim, sorted(ctx.spd)
    (1, ['Lambda'])
    """
    gaussians = dict(gaussians or {})
    vector_dims = {n: (dim or "d") for n, dim in _named(vectors, "d").items()}
    matrix_shapes, spd, symmetric, orthonormal, orthogonal = {}, set(spd), set(symmetric), set(), set()
    declared_matrix_property: dict = {}
    for name, spec in _named(matrices, None).items():
        shape, prop = parse_matrix_spec(name, spec)
        matrix_shapes[name] = shape
        declared_matrix_property[name] = prop
        {"spd": spd, "symmetric": symmetric, "orthonormal": orthonormal, "orthogonal": orthogonal,
         None: set()}[prop].add(name)
    scalar_specs = _named(scalars, "real")
    positive = {n for n, kind in scalar_specs.items() if kind == "positive"}
    for name, kind in scalar_specs.items():
        if kind not in ("real", "positive"):
            raise ExpressionError(f"scalar {name!r}: expected 'real' or 'positive', got {kind!r}")
    dims, counts = tuple(dims), tuple(counts)

    parsed = {}
    for name, spec in gaussians.items():
        cov, mean = (spec, None) if isinstance(spec, str) else tuple(spec) + (None,) * (2 - len(tuple(spec)))
        if not isinstance(cov, str) or not cov.strip():
            raise ExpressionError(f"Gaussian {name!r} needs a covariance")
        parsed[name] = (g.parse(cov), None if mean in (None, "") else g.parse(mean), cov, mean or "")
    scalar_like = set(scalar_specs) | set(dims) | set(counts) | {"d", "N"}
    for name, (tree, _, _, _) in parsed.items():
        for bare in _bare_names(tree, scalar_like):
            if bare in scalar_specs:
                positive.add(bare)
            elif bare not in vector_dims and declared_matrix_property.get(bare, "spd") == "spd" and bare not in gaussians:
                spd.add(bare)
                symmetric.discard(bare)

    base = Context(dims=dims, counts=counts, matrices=matrix_shapes, vectors=vector_dims,
                   scalars=set(scalar_specs) - positive, positive=positive, symmetric=symmetric, spd=spd,
                   orthonormal=orthonormal, orthogonal=orthogonal,
                   commuting=commuting, latex_names=latex_names)
    families = {name: _family(name, *parsed[name], base, set(gaussians)) for name in gaussians}
    return base.replace(families=families)


def _family(name, cov_tree, mean_tree, cov_text, mean_text, base: Context, family_names: set) -> Family:
    for tree, what in ((cov_tree, "covariance"), (mean_tree, "mean")):
        if tree is not None:
            clash = g.names(tree) & family_names
            if clash:
                raise ExpressionError(f"the {what} of Gaussian {name!r} refers to the Gaussian {sorted(clash)[0]!r}")
    expanded = Expander(base).expand(cov_tree)
    rows, cols = expanded.shape
    if rows != cols:
        raise ExpressionError(f"the covariance of {name!r} must be square, got a {shape_name(expanded.shape)}")
    terms = collect(expanded.terms, base.algebra)
    if not terms:
        raise ExpressionError(f"the covariance of {name!r} is zero")
    transposed = collect([transpose(RawTerm(c, chain)) for chain, c in terms.items()], base.algebra)
    if transposed != terms:
        raise ExpressionError(f"the covariance of {name!r}, {cov_text!r}, is not symmetric "
                              "(declare its matrices spd or symmetric, or write e.g. A @ A.T)")
    if not is_psd_terms(terms, base.algebra):
        raise ExpressionError(f"the covariance of {name!r}, {cov_text!r}, is not evidently positive semi-definite "
                              "(use SPD matrices, B @ S @ B.T forms and non-negative coefficients)")
    branches = []
    for chain, coef in terms.items():
        if chain == ():
            branches.append(((), coef))
        elif len(chain) == 1 and chain[0][0] == ROW and chain[0][2] == COL:
            branches.append((chain[0][1], coef))
        else:
            raise ExpressionError(f"the covariance of {name!r} has an outer-product term; write it as a matrix")
    dim = 1 if expanded.shape == SCALAR else rows
    if mean_tree is not None:
        mean = Expander(base).expand(mean_tree)
        if any(gaussian_ends(t, base) for t in mean.terms):
            raise ExpressionError(f"the mean of {name!r} must be deterministic")
        want = SCALAR if dim == 1 else (dim, 1)
        if mean.shape != want:
            raise ExpressionError(f"the mean of {name!r} must be a {shape_name(want)}, got a {shape_name(mean.shape)}")
    return Family(name, dim, cov_text, tuple(sorted(branches, key=lambda b: str(b))), mean_tree, mean_text)


# ---------------------------------------------------------------- the passes

def apply_expansion(expr, context: Context, env: dict | None = None) -> Expanded:
    """Pass 1: text or tree → raw terms of a shape (substituting ``env``)."""
    tree = g.parse(expr) if isinstance(expr, str) else expr
    try:
        return Expander(context, as_exprs(env, context)).expand(tree)
    except RecursionError:
        raise ExpressionError("the expression nests too deeply to expand; split it") from None


def apply_canonical_form(shape, groups: dict, context: Context) -> Polynomial:
    """Pass 3: grouped Gaussian-free terms → a canonical :class:`Polynomial` (refused if not real)."""
    terms = gather(groups)
    for coef in terms.values():
        if coef.has(sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise ExpressionError(f"the result is not a finite real number: a coefficient is {coef}")
    return Polynomial(shape, terms, context)


def expectation(expr, context: Context, env: dict | None = None, timeout: float | None = None) -> Polynomial:
    """E[expr] over the context's Gaussian families, in canonical coordinate-free form.

    ``timeout`` (seconds) bounds the Wick enumeration; every other limit is a
    count checked before the work starts (see :mod:`derive.engine.wick`).
    """
    expanded = apply_expansion(expr, context, env)
    groups = apply_wick(expanded.terms, context, Budget(seconds=timeout))
    return apply_canonical_form(expanded.shape, groups, context)


def polynomial(expr, context: Context, env: dict | None = None) -> Polynomial:
    """A deterministic expression (no Gaussian) in canonical form."""
    return Polynomial.of(expr, context, env)


def define(context: Context, name: str, poly: Polynomial) -> Context:
    """A new context in which ``name`` is one opaque square letter standing for ``poly``.

    The letter joins the commuting group of ``poly``'s letters (Γ = aΛ + bI
    commutes with Λ), is symmetric when ``poly`` is, and prints as ``name``.
    """
    if poly.shape[0] != poly.shape[1] or poly.shape == SCALAR:
        raise ExpressionError(f"only square matrices can be defined, {name!r} is a {shape_name(poly.shape)}")
    compound = make_compound(CanonicalTerms(poly.shape, dict(poly.terms)), context)
    return context.define(name, compound)


def expect(expr, gaussians: Mapping | None = None, *, vectors=None, matrices=None, scalars=None, dims: Iterable = (),
           counts: Iterable = (), context: Context | None = None, env: dict | None = None,
           timeout: float | None = None) -> Polynomial:
    """E[expr] for the declared Gaussian families: the engine in one call.

    Either pass the declarations (see :func:`declare`) or a ready ``context``.
    Returns a :class:`~derive.engine.polynomial.Polynomial` with ``.text()``,
    ``.latex()``, ``.to_sympy()``, ``.evaluate(values)`` and ``.collect(*names)``.

    >>> p = expect("(q.T @ A @ x)**2", gaussians={"x": "Lambda", "q": "Lambda"})
    >>> print(p)
    tr(A @ Lambda @ A.T @ Lambda)
    >>> import numpy as np
    >>> round(p.evaluate({"A": np.eye(2), "Lambda": np.diag([1.0, 2.0])}), 12)
    5.0
    """
    if context is None:
        context = declare(gaussians=gaussians, vectors=vectors, matrices=matrices, scalars=scalars, dims=dims,
                          counts=counts)
    elif any(x for x in (gaussians, vectors, matrices, scalars, tuple(dims), tuple(counts))):
        raise ExpressionError("pass either declarations or a context, not both")
    return expectation(expr, context, env, timeout)
