"""Reference oracles for Gaussian expectations, independent of the engine.

Nothing here uses the engine's pairing logic: the only import from ``derive``
is the grammar (:func:`derive.engine.grammar.parse` and its node types), which
turns the text into an expression tree.  Independent ways of obtaining
``E[expr]`` are provided, plus hand-written closed forms from the Matrix
Cookbook (Petersen & Pedersen, section 8.2):

(a) :func:`evaluate_expr` evaluates an expression tree numerically at concrete
    values (every Gaussian draw given as an array).  It is the semantics of the
    grammar written out once, used by the two oracles below.

(b) :func:`gauss_hermite_expectation`: every Gaussian family
    ``x ~ N(m, Σ)`` is written ``x = m + L z`` with ``L Lᵀ = Σ`` and ``z``
    standard normal, and the expectation is the tensor-product Gauss-Hermite
    quadrature over all scalar coordinates of ``z``.  A rule with ``n`` nodes
    integrates polynomials of degree ``<= 2n - 1`` in each coordinate exactly
    against ``N(0, 1)``; the product rule is therefore exact (up to floating
    point) for a polynomial whose degree in every coordinate is at most ``2n - 1``.

(c) :func:`moment_expectation`: the same substitution is made with ``z`` a
    vector of *symbolic* standard normals, the expression is expanded into a
    polynomial in those scalar coordinates (a sparse polynomial with float
    coefficients), and every monomial ``∏_k z_k^{e_k}`` is replaced by its
    exact moment ``∏_k E[z_k^{e_k}]`` with ``E[z^e] = (e-1)!!`` for even ``e``
    and ``0`` for odd ``e`` (the coordinates are independent).

Semantics (shared with the engine's grammar): names not given as Gaussians
are constants (a matrix, a vector or a scalar, told apart by the shape of the
value given for them); sizes (``d``, ``N`` and declared dimensions and counts
such as ``L``, ``M``) are given in ``sizes``; ``I`` is the d×d identity,
``I(L)`` the L×L one, ``zeros(R, C)`` a zero matrix; ``sum(i, E, M) =
Σ_{i=1..M} E`` (``N`` by default); ``x[i]`` is the i-th i.i.d. draw of the
family ``x`` *within its count*: the draws indexed by a sum over ``M`` and
those indexed by a sum over ``N`` are separate samples (their value: an array
under the key ``"x[M]"`` of shape ``(M, k)``); a family used without an index
is a single draw (value: shape ``(k,)``), independent of everything else;
distinct families are independent.  A family's covariance is an expression
(``"c**2 * Lambda"``, ``"I(L)"``, ``"sigma**2"`` — a scalar covariance makes a
scalar family) and its optional mean an expression of its shape.

Results are returned as: a Python float for a 1×1 result, a 1-D array of
shape ``(r,)`` for a column ``r×1``, and a 2-D array otherwise.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Iterable, Mapping

import numpy as np
from hypothesis import strategies as st
from numpy.polynomial.hermite_e import hermegauss

from derive.engine.grammar import (
    Add,
    Div,
    Expr,
    Identity,
    Indexed,
    Inverse,
    MatMul,
    Mul,
    Name,
    Neg,
    Number,
    Pow,
    Sub,
    Sum,
    Trace,
    Transpose,
    Zeros,
    parse,
)

__all__ = [
    "evaluate_expr",
    "gauss_hermite_expectation",
    "moment_expectation",
    "gaussian_degrees",
    "gaussian_usage",
    "quadrature_points",
    "SparsePolynomial",
    "random_spd",
    "random_instance",
    "as_result",
    "cookbook_quadratic_form",
    "cookbook_linear_outer",
    "cookbook_x_xT_A_x_xT",
    "cookbook_two_quadratic_forms",
    "cookbook_three_quadratic_forms",
    "cookbook_norm4_x_xT_identity",
    "sample_second_moment_sandwich",
    "wishart_quadratic_form_squared",
    "assert_entrywise_close",
    "matrix_words",
    "single_draw_expressions",
    "sample_sum_expressions",
]


# ----------------------------------------------------------------------------
# (a) numerical evaluation of an expression tree
# ----------------------------------------------------------------------------


def _as_tree(expr: Expr | str) -> Expr:
    return parse(expr) if isinstance(expr, str) else expr


def as_result(array: np.ndarray):
    """Shape convention of the oracles: 1×1 -> float, r×1 -> (r,), else 2-D."""
    if array.shape == (1, 1):
        value = array[0, 0]
        return float(value) if not isinstance(value, SparsePolynomial) else value
    if array.shape[1] == 1:
        return array[:, 0]
    return array


def _sizes(d: int | None, N: int | None, sizes: Mapping[str, int] | None) -> dict:
    out = dict(sizes or {})
    if d is not None:
        out["d"] = d
    if N is not None:
        out["N"] = N
    return out


class _Evaluator:
    """Evaluates an expression tree on stacks of matrices.

    Every intermediate value is a 3-D numpy array ``(B, rows, cols)``: ``B`` is
    the batch of quadrature points (1 for an unbatched evaluation; constants
    carry ``B = 1`` and broadcast), a scalar is ``(B, 1, 1)`` and a column
    vector ``(B, k, 1)``.  The arrays may hold floats or, for the moment
    oracle, :class:`SparsePolynomial` objects (dtype ``object``).

    ``batched`` names the entries of ``values`` whose first axis is the batch;
    ``sizes`` gives every dimension and count by name.
    """

    def __init__(self, values: Mapping[str, object], sizes: Mapping[str, int], batched: Iterable[str] = ()):
        self.values = values
        self.batched = set(batched)
        self.sizes = dict(sizes)
        if "d" not in self.sizes:
            inferred = self._infer_dimension()
            if inferred is not None:
                self.sizes["d"] = inferred
        self.index_values: dict[str, tuple[int, str]] = {}

    def _infer_dimension(self) -> int | None:
        for name, value in self.values.items():
            shape = np.shape(value)
            if name in self.batched:
                shape = shape[1:]
            if len(shape) >= 1:
                return shape[-1]
        return None

    def size(self, name) -> int:
        if name == 1:
            return 1
        if name not in self.sizes:
            raise ValueError(f"the size {name!r} is needed to evaluate this expression")
        return int(self.sizes[name])

    # -- leaves --------------------------------------------------------------

    def _leaf(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise KeyError(f"no value given for {name!r}")
        value = np.asarray(self.values[name])
        if name not in self.batched:
            value = value[None]
        if value.ndim == 1:  # scalar
            return value[:, None, None]
        if value.ndim == 2:  # column vector
            return value[:, :, None]
        if value.ndim == 3:  # matrix
            return value
        raise ValueError(f"value of {name!r} has unsupported shape {np.shape(self.values[name])}")

    def name(self, node: Name) -> np.ndarray:
        if node.name == "I":
            return np.eye(self.size("d"))[None]
        if node.name in self.sizes and node.name not in self.values:
            return np.full((1, 1, 1), float(self.sizes[node.name]))
        return self._leaf(node.name)

    def indexed(self, node: Indexed) -> np.ndarray:
        if node.index not in self.index_values:
            raise ValueError(f"index {node.index!r} of {node.name}[{node.index}] is not bound by a sum")
        position, count = self.index_values[node.index]
        for key in (f"{node.name}[{count}]", node.name + "[]", node.name):
            if key in self.values:
                break
        draws = np.asarray(self.values[key])
        if key not in self.batched:
            draws = draws[None]
        if draws.ndim != 3:
            raise ValueError(f"the draws of {node.name!r} must have shape (count, k)")
        return draws[:, position, :, None]

    # -- the tree --------------------------------------------------------------

    def __call__(self, node: Expr) -> np.ndarray:
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Number):
            return np.full((1, 1, 1), float(node.value))
        if isinstance(node, Indexed):
            return self.indexed(node)
        if isinstance(node, Identity):
            return np.eye(self.size(node.dim))[None]
        if isinstance(node, Zeros):
            return np.zeros((1, self.size(node.rows), self.size(node.cols)))
        if isinstance(node, (Add, Sub)):
            left, right = self(node.left), self(node.right)
            if left.shape[1:] != right.shape[1:]:
                raise ValueError(f"cannot add shapes {left.shape[1:]} and {right.shape[1:]}")
            return left + right if isinstance(node, Add) else left - right
        if isinstance(node, Mul):
            left, right = self(node.left), self(node.right)
            if left.shape[1:] != (1, 1) and right.shape[1:] != (1, 1):
                raise ValueError("'*' needs a scalar on one side")
            return left * right
        if isinstance(node, Div):
            left, right = self(node.left), self(node.right)
            if right.shape[1:] != (1, 1):
                raise ValueError("can only divide by a scalar")
            return left * (1.0 / _constant_floats(right))
        if isinstance(node, MatMul):
            left, right = self(node.left), self(node.right)
            if left.shape[2] != right.shape[1]:
                raise ValueError(f"shapes {left.shape[1:]} and {right.shape[1:]} do not chain in '@'")
            return _matmul(left, right)
        if isinstance(node, Neg):
            return -self(node.operand)
        if isinstance(node, Transpose):
            return np.swapaxes(self(node.operand), 1, 2)
        if isinstance(node, Trace):
            value = self(node.operand)
            if value.shape[1] != value.shape[2]:
                raise ValueError("trace of a non-square matrix")
            return _trace(value)
        if isinstance(node, Inverse):
            return np.linalg.inv(_constant_floats(self(node.operand)))
        if isinstance(node, Pow):
            return self.power(self(node.base), node.power)
        if isinstance(node, Sum):
            count = self.size(node.count)
            if node.index in self.index_values:
                raise ValueError(f"index {node.index!r} is bound twice")
            total = None
            for i in range(count):
                self.index_values[node.index] = (i, node.count)
                term = self(node.body)
                total = term if total is None else total + term
            del self.index_values[node.index]
            if total is None:
                raise ValueError("sum over 0 samples")
            return total
        raise TypeError(f"unknown node {node!r}")

    @staticmethod
    def power(base: np.ndarray, power: Fraction) -> np.ndarray:
        if base.shape[1] != base.shape[2]:
            raise ValueError("power of a non-square matrix")
        if power.denominator == 1:
            k = int(power)
            if k < 0:
                base, k = np.linalg.inv(_constant_floats(base)), -k
            result = np.broadcast_to(np.eye(base.shape[1]), base.shape).astype(base.dtype)
            for _ in range(k):
                result = _matmul(result, base)
            return result
        # rational power of a constant symmetric positive definite matrix (or a positive scalar)
        eigenvalues, vectors = np.linalg.eigh(_constant_floats(base))
        if np.any(eigenvalues <= 0):
            raise ValueError("rational power of a matrix that is not positive definite")
        scaled = vectors * eigenvalues[:, None, :] ** float(power)
        return scaled @ np.swapaxes(vectors, 1, 2)


def _matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    if left.dtype != object and right.dtype != object:
        return np.matmul(left, right)
    batch = max(left.shape[0], right.shape[0])
    left = np.broadcast_to(left, (batch,) + left.shape[1:])
    right = np.broadcast_to(right, (batch,) + right.shape[1:])
    out = np.empty((batch, left.shape[1], right.shape[2]), dtype=object)
    for b in range(batch):
        for r in range(left.shape[1]):
            for c in range(right.shape[2]):
                total = 0.0
                for k in range(left.shape[2]):
                    total = total + left[b, r, k] * right[b, k, c]
                out[b, r, c] = total
    return out


def _trace(value: np.ndarray) -> np.ndarray:
    if value.dtype != object:
        return np.trace(value, axis1=1, axis2=2)[:, None, None]
    out = np.empty((value.shape[0], 1, 1), dtype=object)
    for b in range(value.shape[0]):
        total = 0.0
        for k in range(value.shape[1]):
            total = total + value[b, k, k]
        out[b, 0, 0] = total
    return out


def _constant_floats(value: np.ndarray) -> np.ndarray:
    """A float array from an array whose entries must not depend on a Gaussian."""
    if value.dtype != object:
        return value
    out = np.empty(value.shape, dtype=float)
    for position, entry in np.ndenumerate(value):
        if isinstance(entry, SparsePolynomial):
            entry = entry.constant_value()
        out[position] = float(entry)
    return out


def evaluate_expr(expr: Expr | str, values: Mapping[str, object], N: int | None = None, d: int | None = None,
                  sizes: Mapping[str, int] | None = None):
    """Numerically evaluate ``expr`` (an :class:`Expr` or its text) at ``values``.

    ``values`` maps every name to a float (scalar), an array ``(k,)`` (vector,
    or a single Gaussian draw), ``(r, c)`` (matrix) or, for a family used as
    ``x[i]`` in sums over a count ``M``, an array ``(M, k)`` under ``"x[M]"``
    (``"x[]"`` or ``"x"`` also work) whose row ``i`` is the draw ``x_{i+1}``.
    Sums are loops.  ``d`` defaults to the last axis of any given array.
    """
    tree = _as_tree(expr)
    result = _Evaluator(values, _sizes(d, N, sizes))(tree)
    return as_result(_collapse_batch(result))


def _collapse_batch(result: np.ndarray) -> np.ndarray:
    if result.shape[0] != 1:
        raise ValueError("expected an unbatched result")
    return result[0]


# ----------------------------------------------------------------------------
# structure of the expression: which Gaussians occur, with which degree
# ----------------------------------------------------------------------------


def _count_of(expr: Expr) -> dict[str, str]:
    """index name → count of the sum that binds it (index names are unique per sum in the tests)."""
    counts: dict[str, str] = {}

    def walk(node):
        if isinstance(node, Sum):
            counts[node.index] = node.count
        for child in vars(node).values():
            if isinstance(child, Expr):
                walk(child)

    walk(expr)
    return counts


def gaussian_usage(expr: Expr, gaussians: Iterable[str]) -> tuple[dict[str, set[str]], set[str]]:
    """The families used with an index (family → the counts of their sums) and those used plainly.

    A family may be in both: its plain use is one more independent draw.
    """
    gaussians = set(gaussians)
    counts = _count_of(expr)
    indexed: dict[str, set[str]] = {}
    plain: set[str] = set()

    def walk(node):
        if isinstance(node, Indexed):
            if node.name not in gaussians:
                raise ValueError(f"{node.name}[{node.index}] indexes a name that is not a Gaussian family")
            indexed.setdefault(node.name, set()).add(counts.get(node.index, "N"))
        elif isinstance(node, Name):
            if node.name in gaussians:
                plain.add(node.name)
        else:
            for child in vars(node).values():
                if isinstance(child, Expr):
                    walk(child)

    walk(expr)
    return indexed, plain


def gaussian_degrees(expr: Expr, gaussians: Iterable[str]) -> dict[str, int]:
    """An upper bound on the polynomial degree of ``expr`` in each block of draws.

    Keys: ``"x"`` for the single draw, ``"x[M]"`` for the draws indexed by sums
    over ``M``.  Occurrences of ``x[i]``, ``x[j]``, ... of one count all count
    towards it (they may be the same draw), so the bound holds for every single
    draw and hence every scalar coordinate.  Raises if a Gaussian occurs under
    ``inv``, a negative or fractional power, or in a denominator.
    """
    gaussians = set(gaussians)
    counts = _count_of(expr)

    def merge_max(a, b):
        return {k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()}

    def merge_sum(a, b):
        return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}

    def degree(node) -> dict[str, int]:
        if isinstance(node, Indexed):
            return {f"{node.name}[{counts.get(node.index, 'N')}]": 1}
        if isinstance(node, Name):
            return {node.name: 1} if node.name in gaussians else {}
        if isinstance(node, (Number, Identity, Zeros)):
            return {}
        if isinstance(node, (Add, Sub)):
            return merge_max(degree(node.left), degree(node.right))
        if isinstance(node, (Mul, MatMul)):
            return merge_sum(degree(node.left), degree(node.right))
        if isinstance(node, Div):
            if degree(node.right):
                raise ValueError("a Gaussian in a denominator is not a polynomial")
            return degree(node.left)
        if isinstance(node, (Neg, Transpose, Trace)):
            return degree(node.operand)
        if isinstance(node, Sum):
            return degree(node.body)
        if isinstance(node, Inverse):
            if degree(node.operand):
                raise ValueError("a Gaussian under inv() is not a polynomial")
            return {}
        if isinstance(node, Pow):
            inner = degree(node.base)
            if inner and (node.power.denominator != 1 or node.power < 0):
                raise ValueError("a Gaussian under a negative or fractional power is not a polynomial")
            return {k: int(node.power) * v for k, v in inner.items()}
        raise TypeError(f"unknown node {node!r}")

    return {k: v for k, v in degree(expr).items() if v > 0}


def _spec(spec) -> tuple[str, str | None]:
    if isinstance(spec, str):
        return spec, None
    spec = tuple(spec)
    return spec[0], (spec[1] if len(spec) > 1 else None)


def _family_law(spec, values: Mapping[str, object], sizes: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(L, m)`` with ``L Lᵀ = Σ`` and mean ``m`` (zeros when absent); a scalar Σ is a 1-dimensional family."""
    covariance_text, mean_text = _spec(spec)
    sigma = np.asarray(evaluate_expr(covariance_text, values, sizes=sizes), dtype=float)
    if sigma.ndim == 0:
        if sigma < 0:
            raise ValueError(f"covariance {covariance_text!r} is negative")
        sigma = sigma.reshape(1, 1)
    if sigma.shape[0] != sigma.shape[1]:
        raise ValueError(f"covariance {covariance_text!r} is not square")
    scale = max(1.0, float(np.abs(sigma).max()))
    if not np.allclose(sigma, sigma.T, rtol=1e-12, atol=1e-12 * scale):
        raise ValueError(f"covariance {covariance_text!r} is not symmetric")
    try:
        factor = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:  # positive semi-definite: symmetric square root
        eigenvalues, vectors = np.linalg.eigh(sigma)
        if eigenvalues.min() < -1e-12 * max(1.0, eigenvalues.max()):
            raise ValueError(f"covariance {covariance_text!r} is not positive semi-definite") from None
        factor = (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T
    k = factor.shape[0]
    mean = np.zeros(k)
    if mean_text is not None:
        mean = np.asarray(evaluate_expr(mean_text, values, sizes=sizes), dtype=float).reshape(-1)
        if mean.shape != (k,):
            raise ValueError(f"mean {mean_text!r} has shape {mean.shape}, expected ({k},)")
    return factor, mean


def _gaussian_blocks(text, gaussians, values, sizes):
    """Parse, find the blocks of draws used, the families' laws and the degrees."""
    expr = parse(text)
    indexed, plain = gaussian_usage(expr, gaussians)
    degrees = gaussian_degrees(expr, gaussians)
    slots = [(name, name, 1, False) for name in sorted(plain)]
    for name in sorted(indexed):
        for count in sorted(indexed[name]):
            if count not in sizes:
                raise ValueError(f"the count {count!r} is needed: the expression sums over it")
            slots.append((f"{name}[{count}]", name, int(sizes[count]), True))
    laws = {name: _family_law(gaussians[name], values, sizes) for name in set(indexed) | plain}
    for name in set(indexed) | plain:
        if name in values or any(key.startswith(name + "[") for key in values):
            raise ValueError(f"{name!r} is a Gaussian family; do not give a value for it")
    return expr, slots, laws, degrees


# ----------------------------------------------------------------------------
# (b) tensor-product Gauss-Hermite quadrature
# ----------------------------------------------------------------------------


def gauss_hermite_expectation(
    text: str,
    gaussians: Mapping[str, object],
    vectors: Iterable[str] = (),
    scalars: Iterable[str] = (),
    values: Mapping[str, object] | None = None,
    d: int = 2,
    N: int | None = None,
    sizes: Mapping[str, int] | None = None,
    max_points: int = 2_500_000,
    chunk: int = 1 << 15,
):
    """``E[text]`` by exact tensor-product Gauss-Hermite quadrature.

    ``gaussians`` maps each family to the text of its covariance, or to a pair
    ``(covariance, mean)``, evaluated at ``values``.  Each draw is
    ``x = m + L z`` with ``z ~ N(0, I_k)``; each coordinate of ``z`` gets
    ``n = ⌊p/2⌋ + 1`` nodes of the probabilists' Hermite rule, where ``p``
    bounds the degree of the expression in that block of draws, so the rule is
    exact for the polynomial.  ``sizes`` gives further dimensions and counts
    (``{"L": 2, "M": 3}``).  ``vectors`` and ``scalars`` are only checked
    against the shapes of ``values``.  Above ``max_points`` points a
    ``ValueError`` asks for smaller sizes.
    """
    values = dict(values or {})
    all_sizes = _sizes(d, N, sizes)
    _check_declarations(vectors, scalars, values)
    expr, slots, laws, degrees = _gaussian_blocks(text, gaussians, values, all_sizes)
    layout, nodes_per_axis, total_points = _quadrature_layout(slots, degrees, laws)
    if total_points > max_points:
        raise ValueError(f"{total_points} quadrature points exceed max_points={max_points}; use smaller sizes")

    rules = {}
    for n in set(nodes_per_axis):
        nodes, weights = hermegauss(n)
        rules[n] = (nodes, weights / np.sqrt(2.0 * np.pi))

    total = None
    for start in range(0, total_points, chunk):
        flat = np.arange(start, min(start + chunk, total_points))
        digits = np.unravel_index(flat, nodes_per_axis) if nodes_per_axis else ()
        weight = np.ones(flat.size)
        batch_values = dict(values)
        axis = 0
        for key, name, draws, is_indexed, n in layout:
            nodes, weights = rules[n]
            factor, mean = laws[name]
            k = factor.shape[0]
            z = np.empty((flat.size, draws, k))
            for j in range(draws):
                for a in range(k):
                    z[:, j, a] = nodes[digits[axis]]
                    weight *= weights[digits[axis]]
                    axis += 1
            x = z @ factor.T + mean  # each draw x = m + L z
            batch_values[key] = x if is_indexed else x[:, 0, :]
        evaluator = _Evaluator(batch_values, all_sizes, batched=[slot[0] for slot in slots])
        result = evaluator(expr)
        result = np.broadcast_to(result, (flat.size,) + result.shape[1:])
        contribution = np.einsum("b,brc->rc", weight, result)
        total = contribution if total is None else total + contribution
    return as_result(total)


def _quadrature_layout(slots, degrees, laws):
    """Per slot ``(key, family, draws, indexed?, nodes per coordinate)``, the nodes of every axis, the point count.

    Each draw has ``k`` coordinates (the family's dimension), each with
    ``⌊p/2⌋ + 1`` nodes (``p``: the degree bound of its slot).
    """
    layout = [slot + (degrees.get(slot[0], 0) // 2 + 1,) for slot in slots]
    nodes_per_axis = [n for (_, name, draws, _, n) in layout for _ in range(draws * laws[name][0].shape[0])]
    total_points = int(np.prod(nodes_per_axis, dtype=object)) if nodes_per_axis else 1
    return layout, nodes_per_axis, total_points


def quadrature_points(text: str, gaussians: Mapping[str, object], d: int, N: int | None = None,
                      values: Mapping[str, object] | None = None, sizes: Mapping[str, int] | None = None) -> int:
    """How many points :func:`gauss_hermite_expectation` would use for ``text``."""
    values = dict(values or {})
    all_sizes = _sizes(d, N, sizes)
    if not values:  # identity laws of the right sizes are enough to count points
        values = {}
    expr = parse(text)
    indexed, plain = gaussian_usage(expr, gaussians)
    degrees = gaussian_degrees(expr, gaussians)
    total = 1
    for name in plain:
        total *= (degrees.get(name, 0) // 2 + 1) ** _family_dim(gaussians[name], values, all_sizes)
    for name, counts in indexed.items():
        for count in counts:
            key = f"{name}[{count}]"
            total *= (degrees.get(key, 0) // 2 + 1) ** (_family_dim(gaussians[name], values, all_sizes)
                                                         * int(all_sizes[count]))
    return total


def _family_dim(spec, values, sizes) -> int:
    covariance_text, _ = _spec(spec)
    try:
        sigma = np.asarray(evaluate_expr(covariance_text, values, sizes=sizes), dtype=float)
    except (KeyError, ValueError):
        return int(sizes.get("d", 1))  # a named covariance without a value: d×d
    return 1 if sigma.ndim == 0 else sigma.shape[0]


def _check_declarations(vectors, scalars, values):
    for name in vectors:
        if name in values and np.ndim(values[name]) != 1:
            raise ValueError(f"vector {name!r} must be one-dimensional, got shape {np.shape(values[name])}")
    for name in scalars:
        if name in values and np.ndim(values[name]) != 0:
            raise ValueError(f"scalar {name!r} must be a number")


# ----------------------------------------------------------------------------
# (c) exact moments of a polynomial in scalar standard normals
# ----------------------------------------------------------------------------

_BITS = 8  # bits per variable exponent in a packed monomial (exponents < 256)


class SparsePolynomial:
    """A polynomial in standard-normal variables ``z_0, z_1, ...``, float coefficients.

    A monomial ``∏ z_k^{e_k}`` is packed into one integer ``Σ e_k 2^{8k}`` so
    that the product of monomials is the sum of their keys.  Only ``+``, ``-``,
    ``*`` (with polynomials or numbers) and division by a number are supported.
    """

    __slots__ = ("terms",)

    def __init__(self, terms: dict[int, float] | None = None):
        self.terms = terms or {}

    @classmethod
    def variable(cls, k: int) -> "SparsePolynomial":
        return cls({1 << (_BITS * k): 1.0})

    @staticmethod
    def _terms_of(other) -> dict[int, float]:
        if isinstance(other, SparsePolynomial):
            return other.terms
        return {0: float(other)} if other != 0 else {}

    def __add__(self, other):
        terms = dict(self.terms)
        for key, coefficient in self._terms_of(other).items():
            terms[key] = terms.get(key, 0.0) + coefficient
        return SparsePolynomial(terms)

    __radd__ = __add__

    def __neg__(self):
        return SparsePolynomial({k: -c for k, c in self.terms.items()})

    def __sub__(self, other):
        return self + (-other if isinstance(other, SparsePolynomial) else -float(other))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if not isinstance(other, SparsePolynomial):
            factor = float(other)
            return SparsePolynomial({k: c * factor for k, c in self.terms.items()} if factor != 0 else {})
        terms: dict[int, float] = {}
        get = terms.get
        for k1, c1 in self.terms.items():
            for k2, c2 in other.terms.items():
                key = k1 + k2
                terms[key] = get(key, 0.0) + c1 * c2
        return SparsePolynomial(terms)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self * (1.0 / float(other))

    def constant_value(self) -> float:
        nonconstant = [k for k, c in self.terms.items() if k != 0 and c != 0]
        if nonconstant:
            raise ValueError("expected a constant, got a polynomial in the Gaussians")
        return self.terms.get(0, 0.0)

    def expectation(self) -> float:
        """``Σ c ∏_k E[z_k^{e_k}]`` with ``E[z^e] = (e-1)!!`` (e even), 0 (e odd)."""
        mask = (1 << _BITS) - 1
        total = 0.0
        for key, coefficient in self.terms.items():
            moment = 1
            while key:
                e = key & mask
                if e & 1:
                    moment = 0
                    break
                moment *= _double_factorial(e - 1)
                key >>= _BITS
            total += coefficient * moment
        return total

    def degree(self) -> int:
        mask = (1 << _BITS) - 1
        best = 0
        for key in self.terms:
            total = 0
            while key:
                total += key & mask
                key >>= _BITS
            best = max(best, total)
        return best


def _double_factorial(n: int) -> int:
    result = 1
    while n > 1:
        result *= n
        n -= 2
    return result


def moment_expectation(
    text: str,
    gaussians: Mapping[str, object],
    vectors: Iterable[str] = (),
    scalars: Iterable[str] = (),
    values: Mapping[str, object] | None = None,
    d: int = 2,
    N: int | None = None,
    sizes: Mapping[str, int] | None = None,
):
    """``E[text]`` by expansion in scalar standard normals and exact moments.

    Every draw of every block used is ``x = m + L z`` with ``z`` a fresh block
    of ``k`` symbolic standard normal coordinates; the expression is evaluated
    with entries that are :class:`SparsePolynomial` in all those coordinates,
    and each entry's monomials are replaced by their moments
    ``E[∏ z_k^{e_k}] = ∏ (e_k - 1)!!`` (0 if some ``e_k`` is odd).
    """
    values = dict(values or {})
    all_sizes = _sizes(d, N, sizes)
    _check_declarations(vectors, scalars, values)
    expr, slots, laws, _ = _gaussian_blocks(text, gaussians, values, all_sizes)
    symbolic_values = dict(values)
    next_variable = itertools.count()
    for key, name, draws, is_indexed in slots:
        factor, mean = laws[name]
        k = factor.shape[0]
        block = np.empty((1, draws, k), dtype=object)
        for j in range(draws):
            z = [SparsePolynomial.variable(next(next_variable)) for _ in range(k)]
            for a in range(k):
                entry = SparsePolynomial({0: float(mean[a])} if mean[a] != 0 else {})
                for b in range(k):
                    if factor[a, b] != 0:
                        entry = entry + z[b] * float(factor[a, b])
                block[0, j, a] = entry
        symbolic_values[key] = block if is_indexed else block[:, 0, :]
    result = _Evaluator(symbolic_values, all_sizes, batched=[slot[0] for slot in slots])(expr)[0]
    out = np.empty(result.shape, dtype=float)
    for position, entry in np.ndenumerate(result):
        out[position] = entry.expectation() if isinstance(entry, SparsePolynomial) else float(entry)
    return as_result(out)


# ----------------------------------------------------------------------------
# random instances
# ----------------------------------------------------------------------------


def random_spd(rng: np.random.Generator, d: int, floor: float = 0.3) -> np.ndarray:
    """A random symmetric positive definite matrix ``G Gᵀ/d + floor·I``."""
    G = rng.standard_normal((d, d))
    return G @ G.T / d + floor * np.eye(d)


def random_instance(d: int, seed: int) -> dict[str, object]:
    """Random values for the names the tests use.

    ``Lambda``, ``Sigma`` SPD; ``A``, ``B``, ``C`` non-symmetric d×d; ``u``,
    ``v`` vectors ``(d,)``; ``c`` a scalar.  Entries are standard normal.
    """
    rng = np.random.default_rng(seed)
    return {
        "Lambda": random_spd(rng, d),
        "Sigma": random_spd(rng, d),
        "A": rng.standard_normal((d, d)),
        "B": rng.standard_normal((d, d)),
        "C": rng.standard_normal((d, d)),
        "u": rng.standard_normal(d),
        "v": rng.standard_normal(d),
        "c": float(rng.standard_normal()),
    }


# ----------------------------------------------------------------------------
# closed forms, zero mean x ~ N(0, Σ) (Matrix Cookbook, section 8.2)
# ----------------------------------------------------------------------------


def cookbook_quadratic_form(A, Sigma):
    """``E[xᵀ A x] = tr(A Σ)``."""
    return float(np.trace(A @ Sigma))


def cookbook_linear_outer(A, a, B, b, Sigma):
    """``E[(A x + a)(B x + b)ᵀ] = A Σ Bᵀ + a bᵀ``."""
    return A @ Sigma @ B.T + np.outer(a, b)


def cookbook_x_xT_A_x_xT(A, Sigma):
    """``E[x xᵀ A x xᵀ] = Σ (A + Aᵀ) Σ + tr(A Σ) Σ`` (Isserlis, three pairings)."""
    return Sigma @ (A + A.T) @ Sigma + np.trace(A @ Sigma) * Sigma


def cookbook_two_quadratic_forms(A, B, Sigma):
    """``E[xᵀAx · xᵀBx] = tr(A Σ (B + Bᵀ) Σ) + tr(A Σ) tr(B Σ)``."""
    return float(np.trace(A @ Sigma @ (B + B.T) @ Sigma) + np.trace(A @ Sigma) * np.trace(B @ Sigma))


def cookbook_three_quadratic_forms(A, B, C, Sigma):
    """``E[xᵀAx · xᵀBx · xᵀCx]`` for general (non-symmetric) A, B, C.

    With the symmetric parts ``a = (A+Aᵀ)/2`` etc. (``xᵀAx = xᵀax``) and
    ``tr_X = tr(X Σ)``:
    ``tr_a tr_b tr_c + 2 tr_a tr(bΣcΣ) + 2 tr_b tr(aΣcΣ) + 2 tr_c tr(aΣbΣ)
    + 8 tr(aΣbΣcΣ)`` (the third cumulant of Gaussian quadratic forms).
    """
    a, b, c = ((M + M.T) / 2 for M in (A, B, C))
    ta, tb, tc = (np.trace(M @ Sigma) for M in (a, b, c))
    return float(
        ta * tb * tc
        + 2 * ta * np.trace(b @ Sigma @ c @ Sigma)
        + 2 * tb * np.trace(a @ Sigma @ c @ Sigma)
        + 2 * tc * np.trace(a @ Sigma @ b @ Sigma)
        + 8 * np.trace(a @ Sigma @ b @ Sigma @ c @ Sigma)
    )


def cookbook_norm4_x_xT_identity(d):
    """``E[(xᵀx)² x xᵀ] = (d+2)(d+4) I`` for ``x ~ N(0, I_d)``."""
    return (d + 2) * (d + 4) * np.eye(d)


def sample_second_moment_sandwich(A, Sigma, N):
    """``E[S A S]`` with ``S = (1/N) Σ_i x_i x_iᵀ``, ``x_i ~ N(0, Σ)`` i.i.d.

    Pairs ``i ≠ j`` give ``ΣAΣ`` (``N(N-1)`` of them) and ``i = j`` gives the
    fourth moment ``ΣAΣ + ΣAᵀΣ + tr(AΣ)Σ``, so
    ``E[SAS] = ΣAΣ + (ΣAᵀΣ + tr(AΣ)Σ)/N``.
    """
    return Sigma @ A @ Sigma + (Sigma @ A.T @ Sigma + np.trace(A @ Sigma) * Sigma) / N


def wishart_quadratic_form_squared(Sigma, N):
    """``E[(wᵀ S w)²]`` with ``S = Σ_i x_i x_iᵀ`` (unnormalised), ``w ~ N(0, I)`` independent.

    ``E_w[(wᵀSw)² | S] = 2 tr(S²) + tr(S)²``, ``E[S²] = N(N+1)Σ² + N tr(Σ)Σ``
    and ``E[tr(S)²] = N² tr(Σ)² + 2N tr(Σ²)``, so the result is
    ``2N(N+1) tr(Σ²) + 2N tr(Σ)² + N² tr(Σ)² + 2N tr(Σ²)``.
    """
    t1, t2 = np.trace(Sigma), np.trace(Sigma @ Sigma)
    return float(2 * N * (N + 1) * t2 + 2 * N * t1**2 + N**2 * t1**2 + 2 * N * t2)


# ----------------------------------------------------------------------------
# the comparison used by every test
# ----------------------------------------------------------------------------


def assert_entrywise_close(actual, expected, rtol: float = 1e-9, atol: float = 1e-12, label: str = ""):
    """Assert ``max |actual - expected| <= rtol · max(|expected|, |actual|) + atol``.

    The relative part is taken against the largest entry (of either side), so
    an entry that is zero in the exact answer must be zero to the same
    precision as the largest entry.  Shapes must agree after flattening
    (``(d,)`` and ``(d, 1)`` compare equal; a float compares with a 1×1).
    """
    a = np.asarray(actual, dtype=float).reshape(-1)
    e = np.asarray(expected, dtype=float).reshape(-1)
    if a.shape != e.shape:
        raise AssertionError(f"{label}: shapes differ: {np.shape(actual)} vs {np.shape(expected)}")
    scale = max(np.abs(e).max(initial=0.0), np.abs(a).max(initial=0.0))
    error = np.abs(a - e).max(initial=0.0)
    tolerance = rtol * scale + atol
    if not np.all(np.isfinite(a)) or not error <= tolerance:
        raise AssertionError(
            f"{label}: max |difference| {error:.3e} > tolerance {tolerance:.3e}\n"
            f"  actual   = {np.array2string(np.asarray(actual, dtype=float), precision=15)}\n"
            f"  expected = {np.array2string(np.asarray(expected, dtype=float), precision=15)}"
        )


# ----------------------------------------------------------------------------
# hypothesis strategies: random expressions in the grammar
# ----------------------------------------------------------------------------

CONSTANT_LETTERS = ("A", "B", "A.T", "B.T", "Lambda", "inv(Lambda)", "C")


@st.composite
def _constants(draw, most=2):
    return [draw(st.sampled_from(CONSTANT_LETTERS)) for _ in range(draw(st.integers(0, most)))]


@st.composite
def matrix_words(draw, vector="x", n_vectors=st.sampled_from([2, 4, 6]), start=None):
    """A product ``[C*] v vᵀ [C*] v vᵀ ... [C*]`` of constants and a vector ``v``.

    Shapes force the pattern: ``v`` (d×1) is followed by ``vᵀ`` (1×d), and
    ``vᵀ`` by constants (d×d) and then ``v``.  A word starting with ``v`` is
    d×d (with an even number of vectors); one starting with ``vᵀ`` is 1×1.
    ``start`` (``"column"``/``"row"``) fixes which; returns ``(text, shape)``.
    """
    n = draw(n_vectors) if not isinstance(n_vectors, int) else n_vectors
    start = start or draw(st.sampled_from(["column", "row"]))
    transposed = f"{vector}.T"
    letters = [] if start == "row" else draw(_constants())
    current = vector if start == "column" else transposed
    for k in range(n):
        letters.append(current)
        if current == transposed and k < n - 1:
            letters.extend(draw(_constants()))
        current = transposed if current == vector else vector
    if letters[-1] == transposed:
        letters.extend(draw(_constants()))
    text = " @ ".join(letters)
    rows = "1" if start == "row" else "d"
    columns = "1" if letters[-1] == vector else "d"
    return text, (rows, columns)


@st.composite
def single_draw_expressions(draw, vector="x", max_degree=6):
    """Random polynomials of degree ≤ ``max_degree`` in one Gaussian ``vector``.

    A word (possibly under ``tr``), the ``*``-product of two scalar words, or
    a linear combination of two words of the same shape.
    """
    kind = draw(st.sampled_from(["word", "trace", "product", "combination", "odd"]))
    if kind == "odd":
        text, _ = draw(matrix_words(vector, n_vectors=st.sampled_from([1, 3])))
        return text
    if kind in ("word", "trace"):
        text, shape = draw(matrix_words(vector, n_vectors=st.sampled_from([2, 4, 6][: max_degree // 2])))
        return f"tr({text})" if kind == "trace" and shape == ("d", "d") else text
    if kind == "product":
        first = draw(st.sampled_from([2, 4][: max(1, max_degree // 2 - 1)]))
        left, _ = draw(matrix_words(vector, n_vectors=first, start="row"))
        right, _ = draw(matrix_words(vector, n_vectors=2, start="row"))
        return f"({left}) * ({right})"
    start = draw(st.sampled_from(["column", "row"]))
    left, _ = draw(matrix_words(vector, n_vectors=st.sampled_from([2, 4]), start=start))
    right, _ = draw(matrix_words(vector, n_vectors=st.sampled_from([2, 4, 6][: max_degree // 2]), start=start))
    coefficient = draw(st.sampled_from(["2", "-1", "c", "(1/3)", "d"]))
    return f"{left} - {coefficient} * ({right})"


@st.composite
def sample_sum_expressions(draw, max_x_degree=6):
    """Random products of sample sums ``Σ_i x_i x_iᵀ`` (and quartic ones), constants,
    outer products of independent draws ``w wᵀ``/``q qᵀ``/``x xᵀ`` (a bare ``x``
    is a draw independent of the ``x[i]``), optionally scaled by ``1/N^k`` and
    traced; degree ≤ ``max_x_degree`` in the ``x[i]`` and ≤ 4 in ``w``, ``q``, ``x`` together.
    """
    indices = iter("ijklmn")
    factors, x_degree, other_degree = [], 0, {"w": 0, "q": 0, "x": 0}
    for _ in range(draw(st.integers(1, 4))):
        options = ["constant"]
        if x_degree + 2 <= max_x_degree:
            options.append("second")
        if x_degree + 4 <= max_x_degree:
            options.append("fourth")
        if sum(other_degree.values()) + 2 <= 4:
            options += ["w", "q", "x"]
        kind = draw(st.sampled_from(options))
        if kind == "constant":
            factors.append(draw(st.sampled_from(CONSTANT_LETTERS)))
        elif kind == "second":
            i = next(indices)
            factors.append(f"sum({i}, x[{i}] @ x[{i}].T)")
            x_degree += 2
        elif kind == "fourth":
            i = next(indices)
            middle = draw(st.sampled_from(CONSTANT_LETTERS))
            factors.append(f"sum({i}, x[{i}] @ x[{i}].T @ {middle} @ x[{i}] @ x[{i}].T)")
            x_degree += 4
        else:
            factors.append(f"{kind} @ {kind}.T")
            other_degree[kind] += 2
    if x_degree == 0:
        i = next(indices)
        factors.insert(draw(st.integers(0, len(factors))), f"sum({i}, x[{i}] @ x[{i}].T)")
    text = " @ ".join(factors)
    scale = draw(st.sampled_from(["", " / N", " / N**2"]))
    if draw(st.booleans()):
        return f"tr({text}){scale}"
    return f"{text}{scale}"
