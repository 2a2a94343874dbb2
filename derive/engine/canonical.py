"""Canonical-form pass: Gaussian-free raw terms → ``{chain: coefficient}``.

:func:`canonicalize` turns one term into ``(chain, factors)``: the free
strands in canonical form (the matrix, vector or outer-product part) and the
scalar factors, where every closed strand (a trace or a bilinear form) is a
:class:`Contraction` atom and an empty loop is its dimension.  :func:`collect`
groups many terms by ``(chain, factors)`` first, adds their coefficients once
per group and builds one sympy sum per chain, so collecting is linear in the
number of terms.

Structure, not printed text, identifies everything here: a Contraction's
sympy name and a compound letter's key are serializations of canonical
strands (:func:`serialize_strand`), never the output of a printer.
"""

from __future__ import annotations

import functools

import sympy

from derive.engine.context import dimension_symbol
from derive.engine.strands import COL, ONE, ROW, RawTerm, is_loop
from derive.engine.words import Algebra, is_psd_word, normalize_loop, normalize_word, transpose_word, word_key

__all__ = ["Contraction", "canonicalize", "canonical_strands", "collect", "gather", "serialize_word", "serialize_strand", "serialize_terms",
           "is_psd_terms", "is_nonnegative"]


# ---------------------------------------------------------------- structural serialization

def _serialize_letter(l) -> str:
    base = l.name if isinstance(l.name, str) else "{" + l.name.key + "}"
    power = "" if l.power == 1 else f"^{l.power}"
    return base + power + ("'" if l.transposed else "")


def serialize_word(word) -> str:
    return " ".join(_serialize_letter(l) for l in word)


def _serialize_end(end) -> str:
    if end[0] == "vec":
        return end[1]
    return end[0] if end[0] != "free" else end[1]


def serialize_strand(strand) -> str:
    left, word, right = strand
    if is_loop(strand):
        return f"tr[{serialize_word(word)}]"
    return f"<{_serialize_end(left)}|{serialize_word(word)}|{_serialize_end(right)}>"


def serialize_terms(terms: dict) -> str:
    """A canonical string for ``{chain: coefficient}`` (a compound's key)."""
    pieces = sorted(f"{'*'.join(serialize_strand(s) for s in chain)}:{sympy.srepr(coef)}"
                    for chain, coef in terms.items())
    return "[" + ";".join(pieces) + "]"


# ---------------------------------------------------------------- atoms

class Contraction(sympy.Symbol):
    """A closed strand as a commutative real sympy atom: ``tr(W)`` or ``vᵀ W u``.

    Its name is the strand's structural serialization: equal canonical strands
    give equal atoms, so sympy collects like terms.  The printers
    (:mod:`derive.engine.printing`) render it in the grammar or in LaTeX.
    """

    def __new__(cls, strand):
        obj = super().__new__(cls, serialize_strand(strand), real=True)
        obj.strand = strand
        return obj

    def __getnewargs_ex__(self):
        return ((self.strand,), {})


@functools.lru_cache(maxsize=1 << 16)
def _atom(strand) -> Contraction:
    return Contraction(strand)


# ---------------------------------------------------------------- canonical strands

def _canonical_open(strand, algebra: Algebra):
    left, word, right = strand
    word = normalize_word(word, algebra)
    if right == ROW or left == COL:
        return (right, normalize_word(transpose_word(word, algebra), algebra), left)
    if left == ROW or right == COL:
        return (left, word, right)
    flipped = (right, normalize_word(transpose_word(word, algebra), algebra), left)
    return min((left, word, right), flipped, key=lambda s: (s[0], word_key(s[1]), s[2]))


def _constant_end(end):
    # a constant vector end forgets its (unused) label and uid
    return ("vec", end[1], None, 0) if end[0] == "vec" else end


@functools.lru_cache(maxsize=1 << 18)
def _canonical_strand(strand, algebra: Algebra):
    """``("chain", strand)`` for a free strand, else ``("factor", atom)`` (``None`` when it is 1)."""
    left, word, right = strand
    if is_loop(strand):
        normal = normalize_loop(word, algebra)
        if normal:
            return ("factor", _atom((("loop", None), normal, ("loop", None))))
        dim = left[1]  # tr(I) is the dimension of the loop's index ...
        for l in word:  # ... unless the identity is Uᵀ U, of U's number of columns
            if algebra.columns(l.name) is not None:
                dim = algebra.columns(l.name)
        return ("factor", None if dim == 1 else dimension_symbol(dim))
    canonical = _canonical_open((_constant_end(left), word, _constant_end(right)), algebra)
    if canonical[0][0] == "free" or canonical[2][0] == "free":
        return ("chain", canonical)
    if canonical[0] == ONE and canonical[2] == ONE and not canonical[1]:
        return ("factor", None)
    return ("factor", _atom(canonical))


def canonicalize(term: RawTerm, algebra: Algebra) -> tuple[tuple, tuple]:
    """``(chain, factors)`` with ``term = coef × ∏ factors × chain`` (labels not included).

    ``chain`` holds the free strands in canonical order (the strand with the
    ``ROW`` end first); ``factors`` is a sorted tuple of Contraction atoms and
    dimension symbols.
    """
    return canonical_strands(term.strands, algebra)


def canonical_strands(strands: tuple, algebra: Algebra) -> tuple[tuple, tuple]:
    """:func:`canonicalize` of a bare network of strands."""
    chain, factors = [], []
    for strand in strands:
        kind, value = _canonical_strand(strand, algebra)
        if kind == "chain":
            chain.append(value)
        elif value is not None:
            factors.append(value)
    if len(chain) > 1:
        chain.sort(key=lambda s: 0 if s[0] == ROW else 1)
    factors.sort(key=lambda atom: atom.name)
    return tuple(chain), tuple(factors)


def label_weight(labels) -> sympy.Expr:
    """``∏ count`` over the bound labels of a deterministic term (each sum runs over 1..count)."""
    weight = sympy.Integer(1)
    for _, count in labels:
        weight *= dimension_symbol(count)
    return weight


def collect(raw_terms, algebra: Algebra) -> dict:
    """``{chain: coefficient}`` of a list of Gaussian-free raw terms, like terms collected.

    Terms are grouped by ``(chain, factors)`` and each group's coefficients are
    added once, so the cost is linear in the number of terms.
    """
    groups: dict = {}
    for term in raw_terms:
        coef = term.coef * label_weight(term.labels) if term.labels else term.coef
        key = canonicalize(term, algebra)
        bucket = groups.get(key)
        if bucket is None:
            groups[key] = [coef]
        else:
            bucket.append(coef)
    return gather(groups)


def gather(groups: dict) -> dict:
    """``{(chain, factors): [coefficients]}`` → ``{chain: expanded sympy coefficient}``, zeros dropped."""
    per_chain: dict = {}
    for (chain, factors), coefs in groups.items():
        total = sympy.Add(*coefs)
        if total == 0:
            continue
        per_chain.setdefault(chain, []).append(total * sympy.Mul(*factors))
    out = {}
    for chain, values in per_chain.items():
        value = sympy.expand(sympy.Add(*values))
        if value != 0:
            out[chain] = value
    return out


# ---------------------------------------------------------------- positivity (sufficient conditions)

def is_nonnegative(value: sympy.Expr, algebra: Algebra) -> bool:
    """Whether a scalar coefficient is evidently ≥ 0 (traces of PSD words count as ≥ 0)."""
    positive = {}
    for atom in value.free_symbols:
        if isinstance(atom, Contraction) and is_loop(atom.strand) and is_psd_word(atom.strand[1], algebra):
            positive[atom] = sympy.Dummy(positive=True)
    return bool(value.xreplace(positive).is_nonnegative)


def is_psd_terms(terms: dict, algebra: Algebra) -> bool:
    """Whether ``Σ coef · chain`` is evidently positive semi-definite: every term a PSD word (or a
    scalar) with an evidently non-negative coefficient.  Sufficient, not necessary."""
    for chain, coef in terms.items():
        if not is_nonnegative(coef, algebra):
            return False
        if chain == ():
            continue
        if len(chain) != 1 or chain[0][0] != ROW or chain[0][2] != COL or not is_psd_word(chain[0][1], algebra):
            return False
    return True
