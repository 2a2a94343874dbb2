"""Matrix words and their canonical forms.

A *word* is a product of matrix letters ``M_1 M_2 ... M_k``; each letter is a
matrix symbol raised to a rational power, possibly transposed
(``inv(A).T`` is ``Letter("A", -1, True)``).  Canonical forms make equal
products compare equal:

* symmetric symbols (covariances) are never transposed: ``Λᵀ = Λ``;
* adjacent equal letters merge: ``A A⁻¹ = I``, ``Λ Λ = Λ²``;
* letters of one *commuting group* (e.g. functions of Λ such as Γ = aΛ + bI)
  commute, so a run of them is sorted by name and merged: ``Λ Γ⁻¹ Λ = Γ⁻¹ Λ²``;
* a trace is invariant under rotation and under transposition (reversing the
  word and transposing each letter): ``tr(W)`` is stored as the smallest of the
  rotations of ``W`` and of ``Wᵀ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple


class Letter(NamedTuple):
    name: str
    power: Fraction
    transposed: bool


Word = tuple[Letter, ...]


@dataclass(frozen=True)
class Compound:
    """An opaque letter standing for a function of matrices, e.g. ``inv(aΛ + bI)``.

    ``name`` is the canonical text of the matrix polynomial inside; ``group``
    is the commuting group it belongs to (a polynomial in the letters of one
    group commutes with that group), ``symmetric`` whether it equals its
    transpose, and ``value`` the polynomial itself (for evaluation and printing).
    """

    name: str
    group: str | None
    symmetric: bool
    value: object


COMPOUNDS: dict[str, Compound] = {}


@dataclass(frozen=True)
class Algebra:
    """What the canonicalizer may assume about matrix symbols.

    Every symmetric symbol S forms a commuting group with the functions of S
    (its powers and any compound polynomial in S); ``commuting`` may merge
    further symbols into one group.
    """

    symmetric: frozenset[str] = frozenset()
    # name -> group label; letters of one group commute with each other
    commuting: tuple[tuple[str, str], ...] = ()
    # plain names that stand for a defined compound (e.g. "Gamma"); elsewhere such a name is a plain matrix
    definitions: frozenset[str] = frozenset()
    _groups: dict = field(default=None, compare=False, hash=False, repr=False)

    def compound(self, name: str) -> Compound | None:
        """The compound behind a letter: generated names always, plain names only where defined."""
        found = COMPOUNDS.get(name)
        if found is not None and (name in self.definitions or not name.isidentifier()):
            return found
        return None

    def group(self, name: str) -> str | None:
        if self._groups is None:
            object.__setattr__(self, "_groups", dict(self.commuting))
        if name in self._groups:
            return self._groups[name]
        compound = self.compound(name)
        if compound is not None:
            return compound.group
        return name if name in self.symmetric else None

    def is_symmetric(self, name: str) -> bool:
        compound = self.compound(name)
        return name in self.symmetric or (compound is not None and compound.symmetric)


def transpose_word(word: Word, algebra: Algebra) -> Word:
    """``(M_1 ... M_k)ᵀ = M_kᵀ ... M_1ᵀ``."""
    return tuple(
        Letter(l.name, l.power, (not l.transposed) and not algebra.is_symmetric(l.name)) for l in reversed(word)
    )


def _key(l: Letter):
    return (l.name, l.power, l.transposed)


def _merge_pass(word: list[Letter], algebra: Algebra) -> list[Letter]:
    out: list[Letter] = []
    for l in word:
        if l.transposed and algebra.is_symmetric(l.name):
            l = Letter(l.name, l.power, False)
        if out and out[-1].name == l.name and out[-1].transposed == l.transposed:
            power = out[-1].power + l.power
            out.pop()
            if power != 0:
                out.append(Letter(l.name, power, l.transposed))
            continue
        out.append(l)
    # sort each maximal run of one commuting group
    result: list[Letter] = []
    i = 0
    while i < len(out):
        group = algebra.group(out[i].name)
        j = i + 1
        while group is not None and j < len(out) and algebra.group(out[j].name) == group:
            j += 1
        result.extend(_merge_commuting(out[i:j]) if j - i > 1 else out[i:j])
        i = j
    return result


def _merge_commuting(run: list[Letter]) -> list[Letter]:
    powers: dict[str, Fraction] = {}
    for l in run:
        powers[l.name] = powers.get(l.name, Fraction(0)) + l.power
    return [Letter(n, p, False) for n, p in sorted(powers.items()) if p != 0]


def normalize_word(word: Word, algebra: Algebra) -> Word:
    """Canonical form of an open product (no rotation allowed)."""
    current = list(word)
    while True:
        merged = _merge_pass(current, algebra)
        if merged == current:
            return tuple(merged)
        current = merged


def _mergeable(a: Letter, b: Letter, algebra: Algebra) -> bool:
    if a.name == b.name and a.transposed == b.transposed:
        return True
    group = algebra.group(a.name)
    return group is not None and group == algebra.group(b.name)


def _blocks(word: Word, algebra: Algebra) -> list[tuple[Letter, ...]]:
    """Split a normalized word into rotation units: a commuting run is one unit."""
    blocks: list[tuple[Letter, ...]] = []
    for l in word:
        group = algebra.group(l.name)
        if blocks and group is not None and algebra.group(blocks[-1][-1].name) == group:
            blocks[-1] = blocks[-1] + (l,)
        else:
            blocks.append((l,))
    return blocks


def normalize_loop(word: Word, algebra: Algebra) -> Word:
    """Canonical representative of ``tr(word)`` up to rotation and transposition."""
    current = normalize_word(word, algebra)
    # merge across the wrap-around point until the first and last letters differ
    for _ in range(len(current) + 1):
        if len(current) < 2 or not _mergeable(current[-1], current[0], algebra):
            break
        rotated = normalize_word((current[-1],) + current[:-1], algebra)
        if rotated == current:
            break
        current = rotated
    if len(current) < 2:
        return current
    best = None
    for candidate in (current, normalize_word(transpose_word(current, algebra), algebra)):
        blocks = _blocks(candidate, algebra)
        for k in range(len(blocks)):
            rotation = tuple(l for block in blocks[k:] + blocks[:k] for l in block)
            key = tuple(_key(l) for l in rotation)
            if best is None or key < best[0]:
                best = (key, rotation)
    return best[1]


def word_key(word: Word):
    return tuple(_key(l) for l in word)


def invert_word(word: Word, algebra: Algebra) -> Word:
    """``(M_1 ... M_k)⁻¹ = M_k⁻¹ ... M_1⁻¹``."""
    return normalize_word(tuple(Letter(l.name, -l.power, l.transposed) for l in reversed(word)), algebra)
