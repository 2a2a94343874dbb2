"""Expectation pass: Isserlis/Wick pairing with exact index coincidences.

For jointly Gaussian centred vectors, E[∏ x_a] is the sum over perfect
matchings of ∏ E[x_a x_bᵀ] (Isserlis' theorem); distinct families are
independent and each pair of one family contributes its covariance.  In a
network this is local: the two vector ends ``x_a`` and ``x_b`` are joined
through the covariance, so ``… W₁ x_a][x_bᵀ W₂ …`` becomes ``… W₁ Σ W₂ …`` and
a strand whose two ends pair closes into ``tr(W Σ)``.  A covariance with
several terms (``Λ + I``) is a sum of *branches*, one join per branch.  A
non-central family was already split into ``mean + centred draw`` by the
expansion, so only centred ends are paired here.

Sums over sample indices are split by coincidence pattern: the labels of one
count ``M`` are partitioned into blocks; a partition into ``b`` blocks stands
for the pairwise-distinct values of its blocks, of which there are
``M(M−1)…(M−b+1)``, and by exchangeability each gives the same expectation.
Draws at distinct indices are independent, so only ends of one family at one
block pair with each other.  Labels of different counts index different
samples (``x[i]`` for ``i ≤ M`` and ``x[j]`` for ``j ≤ N`` are independent
draws), so they are never merged.  A label that carries no Gaussian weighs
its count.

The pass refuses work it could not finish: more than :data:`MAX_PARTITIONS`
coincidence patterns in one term, or more than :data:`MAX_PAIRINGS` pairings
in one expectation, are one-line errors raised before the enumeration starts.
"""

from __future__ import annotations

import itertools
import math
import time

import sympy

from derive.engine.canonical import canonical_strands, label_weight
from derive.engine.context import Context, dimension_symbol
from derive.engine.errors import ExpressionError
from derive.engine.expand import gaussian_ends
from derive.engine.strands import RawTerm, join

__all__ = ["apply_wick", "set_partitions", "bell", "MAX_PARTITIONS", "MAX_PAIRINGS", "Budget"]

MAX_PARTITIONS = 100_000  # index-coincidence patterns of one term (Bell(10) = 115,975)
MAX_PAIRINGS = 250_000  # pairings of one expectation: E[(xᵀx)⁷] has 135,135 (a few seconds), E[(xᵀx)⁸] 2,027,025


class Budget:
    """Counts the pairings an expectation enumerates, and its time, against the limits."""

    def __init__(self, pairings: int = MAX_PAIRINGS, seconds: float | None = None):
        self.limit, self.used = pairings, 0
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.seconds = seconds

    def reserve(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise ExpressionError(f"the expectation needs more than {self.limit:,} Wick pairings "
                                  "(too many Gaussian factors); split it or lower its degree")

    def tick(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ExpressionError(f"gave up after {self.seconds:g} s (the time limit); the expectation is too large")


def set_partitions(items: list):
    """All set partitions of ``items`` as lists of blocks.

    >>> len(list(set_partitions([1, 2, 3])))
    5
    """
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in set_partitions(rest):
        yield [[first]] + partition
        for k in range(len(partition)):
            yield partition[:k] + [[first] + partition[k]] + partition[k + 1:]


def bell(n: int) -> int:
    """The number of set partitions of ``n`` items (Bell number), by the Bell triangle.

    >>> [bell(n) for n in range(6)]
    [1, 1, 2, 5, 15, 52]
    """
    row = [1]
    for _ in range(n):
        nxt = [row[-1]]
        for value in row:
            nxt.append(nxt[-1] + value)
        row = nxt
    return row[0]


def falling_factorial(n: sympy.Expr, k: int) -> sympy.Expr:
    return sympy.Mul(*[n - j for j in range(k)])


def _odd_double_factorial(n: int) -> int:
    """(n-1)!! for even n: the number of perfect matchings of n ends."""
    return math.prod(range(n - 1, 0, -2)) if n > 0 else 1


def apply_wick(terms, context: Context, budget: Budget | None = None) -> dict:
    """``{(chain, factors): [coefficients]}`` whose sum is E[Σ terms] (summed over their labels).

    The result is collected by :func:`derive.engine.canonical.gather`.
    """
    budget = budget or Budget()
    groups: dict = {}
    algebra = context.algebra
    for term in terms:
        ends = gaussian_ends(term, context)
        if not ends:
            coef = term.coef * label_weight(term.labels) if term.labels else term.coef
            groups.setdefault(canonical_strands(term.strands, algebra), []).append(coef)
            continue
        _expect_term(term, ends, context, budget, groups)
    return groups


def _expect_term(term: RawTerm, ends: list, context: Context, budget: Budget, groups: dict) -> None:
    used = {e[2] for e in ends if e[2] is not None}
    by_count: dict = {}
    for label in sorted(used):
        by_count.setdefault(label[1], []).append(label)
    counts = sorted(by_count)
    patterns = math.prod(bell(len(by_count[c])) for c in counts)
    if patterns > MAX_PARTITIONS:
        raise ExpressionError(f"{patterns:,} index-coincidence patterns in one term (limit {MAX_PARTITIONS:,}): "
                              "too many sums of Gaussians multiplied together")
    unused = sympy.Integer(1)
    for label in term.labels - used:
        unused *= dimension_symbol(label[1])
    for combination in itertools.product(*[list(set_partitions(by_count[c])) for c in counts]):
        block_of, weight = {}, term.coef * unused
        for count, partition in zip(counts, combination):
            weight *= falling_factorial(dimension_symbol(count), len(partition))
            for k, block in enumerate(partition):
                for label in block:
                    block_of[label] = (count, k)  # blocks of different counts are different samples
        pools: dict = {}
        for e in ends:
            pools.setdefault((e[1], block_of.get(e[2])), []).append(e)
        if any(len(pool) % 2 for pool in pools.values()):
            continue
        _pair_pools(term.strands, list(pools.items()), weight, context, budget, groups)


def _pair_pools(strands, pools, weight, context: Context, budget: Budget, groups: dict) -> None:
    """Enumerate the perfect matchings of every pool (one family at one block), joining through branches."""
    algebra = context.algebra
    plan, total = [], 1
    for (family_name, _), ends in pools:
        family = context.families[family_name]
        branches = family.branches
        pairs = len(ends) // 2
        total *= _odd_double_factorial(len(ends)) * len(branches) ** pairs
        if len(branches) == 1:  # one branch: its coefficient once per pair, no bookkeeping per matching
            weight = weight * branches[0][1] ** pairs
        plan.append((family_name, family.dim, branches, ends))
    budget.reserve(total)
    counter: dict = {}
    ticks = [0]

    def leaf(network, choices):
        key = (canonical_strands(network, algebra), choices)
        counter[key] = counter.get(key, 0) + 1
        ticks[0] += 1
        if not ticks[0] & 4095:
            budget.tick()

    def match(network, ends, stage, choices):
        if not ends:
            if stage + 1 == len(plan):
                leaf(network, tuple(sorted(choices)) if choices else ())
            else:
                match(network, plan[stage + 1][3], stage + 1, choices)
            return
        family_name, dim, branches, _ = plan[stage]
        first = ends[0]
        for k in range(1, len(ends)):
            remaining = ends[1:k] + ends[k + 1:]
            for b, (word, _) in enumerate(branches):
                joined = join(network, first, ends[k], word, algebra, dim)
                match(joined, remaining, stage, choices + [(family_name, b)] if len(branches) > 1 else choices)

    match(strands, plan[0][3], 0, [])
    branch_coef = {(name, b): coef for name, _, branches, _ in plan for b, (_, coef) in enumerate(branches)}
    for (key, choices), count in counter.items():
        coef = weight * count
        for choice in choices:
            coef = coef * branch_coef[choice]
        bucket = groups.get(key)
        if bucket is None:
            groups[key] = [coef]
        else:
            bucket.append(coef)
