"""Statement pass: expressions with ``E(...)``, ``grad(...)``, ``at(...)`` and defined names → polynomials.

A result states its claims as equations in the grammar, e.g.
``E(x @ x.T @ A @ x @ x.T) = Lambda @ (A + A.T) @ Lambda + tr(A @ Lambda) * Lambda``
or ``at(grad(ltilde, U11), U11=c * inv(Gamma), u=1/c) = zeros(d, d)``.  This
pass evaluates either side:

* defined names (``S``, ``ltilde``, ``yhat``) are replaced by their definitions,
  at the level of the tree, so a definition holding Gaussians (``S =
  sum(i, x[i] @ x[i].T) / N``) is expanded afresh at every occurrence;
* ``E(X)`` is the expectation pipeline, ``grad(f, X)`` the engine's matrix
  calculus, ``at(f, X=v)`` a substitution, innermost first;
* what remains is expanded as a deterministic polynomial (a Gaussian outside
  ``E(...)`` is an error).

>>> from derive.engine.pipeline import declare
>>> ctx = declare(gaussians={"x": "Lambda"}, scalars=["c"])
>>> print(evaluate("E(S @ S) - Lambda @ Lambda", ctx, {"S": "sum(i, x[i] @ x[i].T) / N"}))
Lambda**2/N + tr(Lambda)/N * Lambda
>>> print(evaluate("at(grad(c**2 * tr(A @ A.T), A), c=2)", ctx))
8 * A
"""

from __future__ import annotations

import itertools

from derive.engine import grammar as g
from derive.engine.calculus import gradient
from derive.engine.context import Context
from derive.engine.errors import ExpressionError
from derive.engine.pipeline import expectation
from derive.engine.polynomial import Polynomial

__all__ = ["evaluate", "resolve", "unfold"]


def _tree(value) -> g.Expr:
    if isinstance(value, g.Expr):
        return value
    if isinstance(value, str):
        return g.parse(value)
    if isinstance(value, Polynomial):
        return value.expr()
    raise ExpressionError(f"a definition must be an expression or a polynomial, got {type(value).__name__}")


def _rebuild(node: g.Expr, transform) -> g.Expr:
    """``node`` with ``transform`` applied to each operand."""
    fields = {}
    for key, value in vars(node).items():
        if isinstance(value, g.Expr):
            fields[key] = transform(value)
        elif key == "values" and isinstance(node, g.Substitution):
            fields[key] = tuple((name, transform(v)) for name, v in value)
        else:
            fields[key] = value
    return type(node)(**fields)


def resolve(expr, definitions: dict | None = None, _seen: tuple = ()) -> g.Expr:
    """``expr`` with every defined name replaced by its (resolved) definition."""
    tree = _tree(expr)
    definitions = definitions or {}
    if not definitions:
        return tree

    def walk(node: g.Expr) -> g.Expr:
        if isinstance(node, g.Name) and node.name in definitions:
            if node.name in _seen:
                raise ExpressionError(f"the definition of {node.name!r} refers to itself")
            return resolve(definitions[node.name], definitions, _seen + (node.name,))
        if isinstance(node, g.Substitution):  # at(f, X=v): X names a symbol, never a definition
            return g.Substitution(walk(node.operand), tuple((name, walk(v)) for name, v in node.values))
        return _rebuild(node, walk)

    return walk(tree)


def evaluate(expr, context: Context, definitions: dict | None = None, timeout: float | None = None) -> Polynomial:
    """The polynomial a statement expression stands for (see the module docstring)."""
    tree = resolve(expr, definitions)
    env: dict = {}
    names = (f"_op{k}" for k in itertools.count(1))

    def reduce(node: g.Expr) -> g.Expr:
        if isinstance(node, g.Expectation):
            inner = reduce_inside(node.operand)
            value = expectation(inner, context, env=dict(env), timeout=timeout)
        elif isinstance(node, g.Gradient):
            value = gradient(polynomial(node.operand), node.name)
        elif isinstance(node, g.Substitution):
            operand = polynomial(node.operand)
            value = operand.substitute({name: polynomial(v) for name, v in node.values})
        else:
            return _rebuild(node, reduce)
        name = next(names)
        env[name] = value
        return g.Name(name)

    def reduce_inside(node: g.Expr) -> g.Expr:
        # inside E(...) Gaussians stay; only nested operators are evaluated
        return reduce(node)

    def polynomial(node: g.Expr) -> Polynomial:
        return Polynomial.of(reduce(node), context, dict(env))

    return polynomial(tree)


def unfold(poly: Polynomial) -> Polynomial:
    """``poly`` with the context's named compounds written out where they are factors (``Gamma`` → its
    polynomial); their inverses and roots stay letters.  Two statements about ``Gamma`` are compared this way,
    so that ``Gamma = (1 + 1/N) * Lambda + …`` can hold."""
    context = poly.context
    if not context.compounds:
        return poly
    values = {name: Polynomial(compound.value.shape, dict(compound.value.terms), context)
              for name, compound in context.compounds.items()}
    return poly.substitute(values)
