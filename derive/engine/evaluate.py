"""Evaluation pass: a canonical polynomial at concrete values (numpy float64).

Matrix symbols take arrays of their declared shape, vectors arrays of shape
``(k,)``, scalars numbers.  Sizes (``d``, ``L``, ...) are inferred from the
arrays; counts (``N``, ``M``) and sizes that no array fixes are given by name
in ``values`` or as keywords.  Rational powers of SPD symbols use the
eigendecomposition; a compound letter (``inv(Λ + I)``) is its polynomial
evaluated, then powered.  A missing or ill-shaped value is a ``KeyError`` /
``ValueError`` with one line naming the symbol.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy

from derive.engine.canonical import Contraction
from derive.engine.strands import is_loop

__all__ = ["evaluate", "evaluate_terms", "infer_sizes", "largest_term", "MissingValue"]


class MissingValue(KeyError):
    """No value was given for a symbol (``name``); the message is one line."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def _matrix_power(m: np.ndarray, p: Fraction, name: str) -> np.ndarray:
    if p == 1:
        return m
    if p.denominator == 1:
        if p < 0:
            m, p = np.linalg.inv(m), -p
        return np.linalg.matrix_power(m, int(p))
    w, v = np.linalg.eigh((m + m.T) / 2)
    if np.any(w <= 0):
        raise ValueError(f"fractional power of {name}, which is not positive definite at these values")
    return (v * w ** float(p)) @ v.T


class _Evaluator:
    def __init__(self, context, values: dict, sizes: dict):
        self.context, self.values, self.sizes = context, values, sizes
        self._letters: dict = {}

    def size(self, dim) -> int:
        if dim == 1:
            return 1
        if dim not in self.sizes:
            raise MissingValue(dim, f"the size {dim!r} is not known: give it (e.g. {dim}=3) or an array that fixes it")
        return int(self.sizes[dim])

    def letter(self, l) -> np.ndarray:
        key = (l.name, l.power, l.transposed)
        found = self._letters.get(key)
        if found is not None:
            return found
        name = l.name
        if isinstance(name, str):
            if name not in self.values:
                raise MissingValue(name, f"no value given for matrix {name!r}")
            m = np.asarray(self.values[name], dtype=np.float64)
            shape = tuple(self.size(s) for s in self.context.matrix_shape(name))
            if m.shape != shape:
                raise ValueError(f"{name!r} must have shape {shape}, got {m.shape}")
            label = repr(name)
        else:
            m = np.asarray(self.terms(name.value.shape, name.value.terms), dtype=np.float64)
            label = "a compound matrix"
        m = _matrix_power(m, l.power, label)
        found = self._letters[key] = m.T if l.transposed else m
        return found

    def word(self, word, dim) -> np.ndarray:
        result = None
        for l in word:
            m = self.letter(l)
            result = m if result is None else result @ m
        return np.eye(self.size(dim)) if result is None else result

    def vector(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise MissingValue(name, f"no value given for vector {name!r}")
        v = np.asarray(self.values[name], dtype=np.float64).reshape(-1)
        k = self.size(self.context.vectors.get(name, "d"))
        if v.shape != (k,):
            raise ValueError(f"{name!r} must have shape ({k},), got {v.shape}")
        return v

    def strand(self, strand, dim="d"):
        left, word, right = strand
        if is_loop(strand):
            return float(np.trace(self.word(word, dim)))
        if not word:  # vᵀu, W v with W = I, or I
            if left[0] == "vec" and right[0] == "vec":
                return float(self.vector(left[1]) @ self.vector(right[1]))
            if left[0] == "vec":
                return self.vector(left[1])
            if right[0] == "vec":
                return self.vector(right[1])
            return np.eye(self.size(dim))
        out = self.word(word, dim)
        if right[0] == "vec":
            out = out @ self.vector(right[1])
        if left[0] == "vec":
            out = self.vector(left[1]) @ out
        return out

    def scalar(self, expr: sympy.Expr) -> float:
        substitutions = {}
        for atom in expr.free_symbols:
            if isinstance(atom, Contraction):
                substitutions[atom] = float(self.strand(atom.strand))
            elif atom.name in self.sizes:
                substitutions[atom] = self.sizes[atom.name]
            elif atom.name in self.values:
                substitutions[atom] = float(self.values[atom.name])
            else:
                raise MissingValue(atom.name, f"no value given for scalar {atom.name!r}")
        value = complex(expr.xreplace(substitutions)) if substitutions else complex(expr)
        if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
            raise ValueError(f"{expr} is not real at these values")
        return value.real

    def chain(self, chain, shape):
        pieces = [self.strand(s, shape[k]) for k, s in enumerate(chain)]
        return pieces[0] if len(pieces) == 1 else np.outer(pieces[0], pieces[1])

    def terms(self, shape, terms: dict):
        out_shape = tuple(self.size(s) for s in shape if s != 1) if shape != (1, 1) else ()
        total = np.zeros(out_shape)
        for chain, coef in terms.items():
            c = self.scalar(coef)
            total = total + (c if not chain else c * self.chain(chain, shape))
        return float(total) if out_shape == () else total


def infer_sizes(context, values: dict, given: dict) -> dict:
    """Sizes of dimensions and counts: given by name, or read off the arrays' shapes (must agree)."""
    sizes = {k: int(v) for k, v in given.items() if v is not None}
    for name in context.dims + context.counts:
        if name in values and name not in sizes:
            sizes[name] = int(values[name])

    def fix(dim, n, who):
        if dim == 1:
            return
        if dim in sizes and sizes[dim] != n:
            raise ValueError(f"{who} has size {n} along {dim!r}, but {dim} = {sizes[dim]}")
        sizes[dim] = n

    for name, value in values.items():
        kind = context.kind(name)
        shape = np.shape(value)
        if kind == "vector":
            fix(context.vectors[name], int(np.prod(shape)) if shape else 1, repr(name))
        elif kind == "matrix" and len(shape) == 2:
            rows, cols = context.matrix_shape(name)
            fix(rows, shape[0], repr(name))
            fix(cols, shape[1], repr(name))
    return sizes


def evaluate(poly, values: dict, d: int | None = None, N: int | None = None, **sizes):
    """The polynomial's value: a float (scalar), a ``(k,)`` array (vector or row), or an ``(r, c)`` array."""
    all_sizes = infer_sizes(poly.context, values, {"d": d, "N": N, **sizes})
    return _Evaluator(poly.context, values, all_sizes).terms(poly.shape, poly.terms)


def evaluate_terms(shape, terms: dict, context, values: dict, **sizes):
    """:func:`evaluate` of bare ``{chain: coefficient}`` data."""
    all_sizes = infer_sizes(context, values, sizes)
    return _Evaluator(context, values, all_sizes).terms(shape, terms)


def largest_term(poly, values: dict, d: int | None = None, N: int | None = None, **sizes) -> float:
    """max over the monomials of ``poly`` of their largest absolute entry at these values.

    The natural size of a formula whose terms cancel (a gradient at a stationary
    point): relative errors of such a formula are measured against this.
    """
    all_sizes = infer_sizes(poly.context, values, {"d": d, "N": N, **sizes})
    ev = _Evaluator(poly.context, values, all_sizes)
    largest = 0.0
    for chain, coef in poly.terms.items():
        value = 1.0 if not chain else ev.chain(chain, poly.shape)
        for monomial in sympy.Add.make_args(sympy.expand(coef)):
            largest = max(largest, float(np.max(np.abs(ev.scalar(monomial) * np.asarray(value)))))
    return largest
