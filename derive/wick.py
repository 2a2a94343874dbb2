"""Expectation pass: Isserlis/Wick pairing with exact index coincidences.

For zero-mean jointly Gaussian vectors, E[∏ x_a] is the sum over perfect
matchings of ∏ E[x_a x_bᵀ] (Isserlis' theorem); distinct families are
independent and each pair of one family contributes its covariance Λ (or I).
In a network this is local: the two vector ends ``x_a`` and ``x_b`` are joined
through the letter Λ, so ``… W₁ x_a][x_bᵀ W₂ …`` becomes ``… W₁ Λ W₂ …`` and a
strand whose two ends pair closes into ``tr(W Λ)``.

Sums over sample indices are split by coincidence pattern: a sum over labels
``i, j, k`` is the sum over set partitions of ``{i, j, k}`` of the sum over
pairwise distinct block values, and by exchangeability every assignment of
distinct values gives the same expectation, so a partition with ``b`` blocks
weighs ``N(N−1)…(N−b+1)``.  Draws at distinct indices are independent, so only
ends of one family at one block pair with each other.
"""

from __future__ import annotations

import sympy

from derive.expand import N, Declarations, ExpressionError
from derive.terms import RawTerm, join
from derive.words import Letter
from fractions import Fraction


def set_partitions(items: list):
    """All set partitions of ``items`` as lists of blocks."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in set_partitions(rest):
        yield [[first]] + partition
        for k in range(len(partition)):
            yield partition[:k] + [[first] + partition[k]] + partition[k + 1 :]


def perfect_matchings(ends: list):
    if not ends:
        yield []
        return
    first = ends[0]
    for k in range(1, len(ends)):
        rest = ends[1:k] + ends[k + 1 :]
        for matching in perfect_matchings(rest):
            yield [(first, ends[k])] + matching


def falling_factorial(n: sympy.Expr, k: int) -> sympy.Expr:
    return sympy.Mul(*[n - j for j in range(k)])


def expect_term(term: RawTerm, decl: Declarations):
    """Yield the Gaussian-free raw terms whose sum is E[term] (summed over its labels)."""
    algebra = decl.algebra
    ends = [e for s in term.strands for e in (s[0], s[2]) if e[0] == "vec" and e[1] in decl.gaussians]
    used = sorted({e[2] for e in ends if e[2] is not None})
    unused = len(term.labels) - len(used)
    for partition in set_partitions(used):
        block_of = {label: k for k, block in enumerate(partition) for label in block}
        weight = falling_factorial(N, len(partition)) * N**unused
        groups: dict = {}
        for e in ends:
            groups.setdefault((e[1], block_of.get(e[2])), []).append(e)
        if any(len(group) % 2 for group in groups.values()):
            continue
        matchings = 1
        for group in groups.values():
            matchings *= _double_factorial(len(group) - 1)
        if matchings > MAX_PAIRINGS:
            raise ExpressionError(f"{matchings:,} Wick pairings in one term (limit {MAX_PAIRINGS:,}): "
                                  "too many Gaussian factors")
        yield from _pairings(term.strands, list(groups.items()), term.coef * weight, decl, algebra)


MAX_PAIRINGS = 1_000_000  # a term with 16 factors of one family already has 2,027,025


def _double_factorial(n: int) -> int:
    return 1 if n <= 0 else n * _double_factorial(n - 2)


def _pairings(strands, groups, coef, decl, algebra):
    if not groups:
        yield RawTerm(coef, strands)
        return
    (family, _), group = groups[0]
    cov = decl.gaussians[family]
    middle = () if cov == "I" else (Letter(cov, Fraction(1), False),)
    for matching in perfect_matchings(group):
        paired = strands
        for a, b in matching:
            paired = join(paired, a, b, middle, algebra)
        yield from _pairings(paired, groups[1:], coef, decl, algebra)
