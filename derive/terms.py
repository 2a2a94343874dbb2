"""Terms as networks of strands; the algebra every pass is built on.

Every monomial of a matrix polynomial is a network of 2-index objects (matrix
letters) and 1-index objects (vectors).  Following it from one end gives
*strands*:

* a **loop** ``tr(W)``;
* an **open strand** ``(left, W, right)`` meaning ``leftᵀ W right``, where an
  end is a vector (``("vec", name, label, uid)``) or a free index of the
  result (``ROW`` or ``COL``).  ``(ROW, W, COL)`` is the matrix ``W``,
  ``(ROW, W, v)`` the column vector ``W v``, ``(v, W, COL)`` the row ``vᵀ W``,
  and ``(ROW, W, v), (u, V, COL)`` the outer product ``W v uᵀ V``.

A :class:`RawTerm` is ``coef × ∏ strands``, summed over its bound sample
labels.  The matrix product joins a ``COL`` end with a ``ROW`` end, the trace
joins a term's own ``ROW`` and ``COL`` ends, a Gaussian pairing joins two
vector ends through the covariance.  :func:`canonicalize` turns a term without
Gaussian vectors into ``(chain, scalar)``: the free strands in canonical form,
and a sympy scalar in which every closed strand (trace or bilinear form) is a
:class:`Contraction` atom.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import sympy

from derive.words import Algebra, Letter, Word, normalize_loop, normalize_word, transpose_word, word_key

ROW = ("free", "row")
COL = ("free", "col")
LOOP = ("loop",)

_uids = itertools.count(1)


def vector_end(name: str, label=None, gaussian: bool = False) -> tuple:
    """A vector end; Gaussian ends get a unique id so that each draw is distinct."""
    return ("vec", name, label, next(_uids) if gaussian else 0)


Strand = tuple  # (left_end, word, right_end); loops are (LOOP, word, LOOP)


@dataclass(frozen=True)
class RawTerm:
    coef: sympy.Expr
    strands: tuple[Strand, ...]
    labels: frozenset = frozenset()  # bound sample labels, summed over 1..N


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


def join(strands: tuple[Strand, ...], a, b, middle: Word, algebra: Algebra) -> tuple[Strand, ...]:
    """Contract end ``a`` with end ``b`` through the word ``middle``.

    For ends that are vectors this is ``... a] [bᵀ ...`` → ``... middle ...``;
    for free indices it is the index contraction of a product or trace.
    """
    ka, side_a = _find_end(strands, a)
    kb, side_b = _find_end(strands, b)
    sa, sb = strands[ka], strands[kb]
    if ka == kb:
        # both ends on one strand: it closes into a loop tr(W middle)
        word = sa[1] if side_a == "right" else transpose_word(sa[1], algebra)
        loop = (LOOP, word + middle, LOOP)
        return strands[:ka] + (loop,) + strands[ka + 1 :]
    if side_a == "left":
        sa = reverse(sa, algebra)
    if side_b == "right":
        sb = reverse(sb, algebra)
    joined = (sa[0], sa[1] + middle + sb[1], sb[2])
    rest = tuple(s for k, s in enumerate(strands) if k not in (ka, kb))
    return rest + (joined,)


def product(a: RawTerm, b: RawTerm) -> RawTerm:
    return RawTerm(a.coef * b.coef, a.strands + b.strands, a.labels | b.labels)


def matmul(a: RawTerm, b: RawTerm, inner_is_d: bool, algebra: Algebra) -> RawTerm:
    """``a @ b``: contracts ``a``'s column index with ``b``'s row index when they are d-dimensional."""
    if not inner_is_d:
        return product(a, b)
    marker_a, marker_b = ("free", "join-a"), ("free", "join-b")
    strands = _relabel(a.strands, COL, marker_a) + _relabel(b.strands, ROW, marker_b)
    strands = join(strands, marker_a, marker_b, (), algebra)
    return RawTerm(a.coef * b.coef, strands, a.labels | b.labels)


def trace(a: RawTerm, algebra: Algebra) -> RawTerm:
    return RawTerm(a.coef, join(a.strands, COL, ROW, (), algebra), a.labels)


def transpose(a: RawTerm) -> RawTerm:
    swap = {ROW: COL, COL: ROW}
    return RawTerm(a.coef, tuple((swap.get(l, l), w, swap.get(r, r)) for l, w, r in a.strands), a.labels)


def _relabel(strands, old, new):
    return tuple((new if l == old else l, w, new if r == old else r) for l, w, r in strands)


# ---------------------------------------------------------------- canonical form


class Contraction(sympy.Symbol):
    """A closed strand as a commutative sympy atom: ``tr(W)`` or ``vᵀ W u``.

    Its name is the strand in the input grammar; equal canonical strands give
    equal names, hence equal atoms, so sympy collects like terms.
    """

    def __new__(cls, strand: Strand):
        from derive.printing import strand_text

        obj = super().__new__(cls, strand_text(strand))
        obj.strand = strand
        return obj

    def __getnewargs_ex__(self):
        return ((self.strand,), {})

    def _latex(self, printer):
        from derive.printing import strand_latex

        return strand_latex(self.strand, printer)

    def _sympystr(self, printer):
        from derive.printing import strand_text

        return strand_text(self.strand, getattr(printer, "names", None))


def _canonical_open(strand: Strand, algebra: Algebra) -> Strand:
    left, word, right = strand
    word = normalize_word(word, algebra)
    flipped = (right, normalize_word(transpose_word(word, algebra), algebra), left)
    if right == ROW or left == COL:
        return flipped
    if left == ROW or right == COL:
        return (left, word, right)
    return min((left, word, right), flipped, key=lambda s: (s[0], word_key(s[1]), s[2]))


def _constant_end(end):
    # a constant vector end forgets its (unused) label and uid
    return ("vec", end[1], None, 0) if end[0] == "vec" else end


def canonicalize(term: RawTerm, algebra: Algebra, d: sympy.Symbol) -> tuple[tuple, sympy.Expr]:
    """``(chain, scalar)`` with ``term = scalar × chain``; the chain holds the free strands."""
    scalar = term.coef
    chain = []
    for left, word, right in term.strands:
        if left == LOOP:
            word = normalize_loop(word, algebra)
            scalar = scalar * (d if not word else Contraction((LOOP, word, LOOP)))
            continue
        strand = _canonical_open((_constant_end(left), word, _constant_end(right)), algebra)
        if strand[0][0] == "free" or strand[2][0] == "free":
            chain.append(strand)
        else:
            scalar = scalar * Contraction(strand)
    chain.sort(key=lambda s: 0 if s[0] == ROW else 1)
    return tuple(chain), scalar


def letter_strand(name: str, power=1, transposed=False) -> Strand:
    return (ROW, (Letter(name, Fraction(power), transposed),), COL)
