"""Terms as networks of strands; the algebra every pass is built on.

Every monomial of a matrix polynomial is a network of 2-index objects (matrix
letters) and 1-index objects (vectors).  Following it from one end gives
*strands*:

* a **loop** ``tr(W)``, written ``(LOOP(dim), W, LOOP(dim))`` (the dimension
  is needed when ``W`` is empty: ``tr(I_L) = L``);
* an **open strand** ``(left, W, right)`` meaning ``leftᵀ W right``, where an
  end is a vector (``("vec", name, label, uid)``), a free index of the result
  (``ROW`` or ``COL``), or ``ONE`` (the index of a 1×1 object: a scalar
  Gaussian draw ``ε`` is the strand ``(ε, (), ONE)``).  ``(ROW, W, COL)`` is
  the matrix ``W``, ``(ROW, W, v)`` the column ``W v``, ``(v, W, COL)`` the row
  ``vᵀ W``, and ``(ROW, W, v), (u, V, COL)`` the outer product ``W v uᵀ V``.

A :class:`RawTerm` is ``coef × ∏ strands``, summed over its bound sample
labels (each label ``(id, count)`` runs over ``1..count``).  The matrix
product joins a ``COL`` end with a ``ROW`` end, the trace joins a term's own
``ROW`` and ``COL`` ends, a Gaussian pairing joins two vector ends through
the covariance.  A vector end's ``uid`` tells apart the occurrences of one
draw; the expander hands them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy

from derive.engine.words import Algebra, Letter, Word, transpose_word

__all__ = ["ROW", "COL", "ONE", "loop_end", "is_loop", "vector_end", "RawTerm", "join", "product", "matmul", "trace",
           "transpose", "letter_strand", "Strand"]

ROW = ("free", "row")
COL = ("free", "col")
ONE = ("one",)

Strand = tuple  # (left_end, word, right_end)


def loop_end(dim) -> tuple:
    return ("loop", dim)


def is_loop(strand: Strand) -> bool:
    return strand[0][0] == "loop"


def vector_end(name: str, label=None, uid: int = 0) -> tuple:
    """A vector end; Gaussian ends carry a unique ``uid`` so that each occurrence is distinct."""
    return ("vec", name, label, uid)


@dataclass(frozen=True)
class RawTerm:
    coef: sympy.Expr
    strands: tuple
    labels: frozenset = frozenset()  # bound sample labels (id, count), each summed over 1..count


def reverse(strand: Strand, algebra: Algebra) -> Strand:
    left, word, right = strand
    return (right, transpose_word(word, algebra), left)


def _find_end(strands, end) -> tuple[int, str]:
    for k, (left, _, right) in enumerate(strands):
        if left == end:
            return k, "left"
        if right == end:
            return k, "right"
    raise KeyError(end)


def join(strands: tuple, a, b, middle: Word, algebra: Algebra, dim) -> tuple:
    """Contract end ``a`` with end ``b`` through the word ``middle``; ``dim`` is the contracted index's size.

    For vector ends this is ``… a] [bᵀ …`` → ``… middle …``; for free indices
    it is the index contraction of a product or trace.  Two ends of one strand
    close it into a loop.
    """
    ka, side_a = _find_end(strands, a)
    kb, side_b = _find_end(strands, b)
    sa, sb = strands[ka], strands[kb]
    if ka == kb:
        word = sa[1] if side_a == "right" else transpose_word(sa[1], algebra)
        end = loop_end(dim)
        return strands[:ka] + ((end, word + middle, end),) + strands[ka + 1:]
    if side_a == "left":
        sa = reverse(sa, algebra)
    if side_b == "right":
        sb = reverse(sb, algebra)
    joined = (sa[0], sa[1] + middle + sb[1], sb[2])
    rest = tuple(s for k, s in enumerate(strands) if k != ka and k != kb)
    return rest + (joined,)


def product(a: RawTerm, b: RawTerm) -> RawTerm:
    """``a * b`` with a 1×1 factor: the networks side by side."""
    return RawTerm(a.coef * b.coef, a.strands + b.strands, a.labels | b.labels)


_JOIN_A, _JOIN_B = ("free", "join-a"), ("free", "join-b")


def matmul(a: RawTerm, b: RawTerm, inner, algebra: Algebra) -> RawTerm:
    """``a @ b``: contracts ``a``'s column index with ``b``'s row index (of size ``inner``; none when 1)."""
    if inner == 1:
        return product(a, b)
    strands = _relabel(a.strands, COL, _JOIN_A) + _relabel(b.strands, ROW, _JOIN_B)
    strands = join(strands, _JOIN_A, _JOIN_B, (), algebra, inner)
    return RawTerm(a.coef * b.coef, strands, a.labels | b.labels)


def trace(a: RawTerm, algebra: Algebra, dim) -> RawTerm:
    return RawTerm(a.coef, join(a.strands, COL, ROW, (), algebra, dim), a.labels)


_SWAP = {ROW: COL, COL: ROW}


def transpose(a: RawTerm) -> RawTerm:
    return RawTerm(a.coef, tuple((_SWAP.get(l, l), w, _SWAP.get(r, r)) for l, w, r in a.strands), a.labels)


def _relabel(strands, old, new):
    return tuple((new if l == old else l, w, new if r == old else r) for l, w, r in strands)


def letter_strand(name, power=1, transposed=False) -> Strand:
    return (ROW, (Letter(name, Fraction(power), transposed),), COL)
