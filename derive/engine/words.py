"""Matrix words and their canonical forms.

A *word* is a product of matrix letters ``M_1 M_2 ... M_k``; each letter is a
matrix raised to a rational power, possibly transposed (``inv(A).T`` is
``Letter("A", -1, True)``).  A letter's name is a declared symbol (a string)
or a :class:`Compound`, an opaque letter standing for a function of matrices
such as ``inv(Λ + I)``.  Canonical forms make equal products compare equal:

* symmetric symbols (covariances) are never transposed: ``Λᵀ = Λ``;
* adjacent equal letters merge: ``A A⁻¹ = I``, ``Λ Λ = Λ²``;
* letters of one *commuting group* (e.g. functions of Λ such as Γ = aΛ + bI)
  commute, so a run of them is sorted and merged: ``Λ Γ⁻¹ Λ = Γ⁻¹ Λ²``;
* a trace is invariant under rotation and under transposition (reversing the
  word and transposing each letter): ``tr(W)`` is stored as the smallest of the
  rotations of ``W`` and of ``Wᵀ``.

What may be assumed about the symbols is an :class:`Algebra`, built from a
derivation's context and passed explicitly; nothing here is global.

>>> algebra = Algebra(symmetric=frozenset({"L"}))
>>> A, L = Letter("A", Fraction(1), False), Letter("L", Fraction(1), False)
>>> normalize_loop((L, A, L, L), algebra) == normalize_loop((A, Letter("L", Fraction(2), False), L), algebra)
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

__all__ = ["Letter", "Power", "power", "Word", "Compound", "Algebra", "letter_key", "word_key", "transpose_word", "normalize_word",
           "normalize_loop", "invert_word", "is_psd_word"]


@dataclass(frozen=True, eq=False)
class Compound:
    """An opaque square letter standing for a matrix polynomial ``value`` (e.g. ``Λ + I`` in ``inv(Λ + I)``).

    Two compounds are the same letter exactly when their ``key`` (a canonical
    serialization of the polynomial's structure, never its printed text) is
    equal.  ``group`` is the commuting group it joins (a polynomial in the
    letters of one group commutes with that group), ``symmetric`` whether it
    equals its transpose, ``spd`` whether it is a positive-definite matrix
    (so that its inverse and rational powers exist and are SPD), ``dim`` its
    size.  ``value`` is the polynomial (for evaluation and printing).
    """

    key: str
    dim: str
    group: str | None
    symmetric: bool
    spd: bool
    value: Any = field(repr=False)

    def __eq__(self, other):
        return isinstance(other, Compound) and other.key == self.key

    def __hash__(self):
        return hash(("compound", self.key))

    def __lt__(self, other):  # compounds sort after plain names, among themselves by key
        return (1, self.key) < ((1, other.key) if isinstance(other, Compound) else (0, other))


class Power(Fraction):
    """A rational exponent whose hash is computed once (letters are hashed in every canonical form)."""

    __slots__ = ("_hash",)

    def __hash__(self):
        try:
            return self._hash
        except AttributeError:
            value = Fraction.__hash__(self)
            object.__setattr__(self, "_hash", value)
            return value


_POWERS: dict = {}  # interned exponents: a memo, not state that changes any result


def power(value) -> Power:
    """The interned :class:`Power` equal to ``value``."""
    key = (value.numerator, value.denominator) if isinstance(value, Fraction) else (int(value), 1)
    found = _POWERS.get(key)
    if found is None:
        found = _POWERS[key] = Power(*key)
    return found


class _Letter(NamedTuple):
    name: Any  # str (a declared symbol) or Compound
    power: Fraction
    transposed: bool


class Letter(_Letter):
    """A matrix letter ``name**power``, transposed or not (``inv(A).T`` is ``Letter("A", -1, True)``)."""

    __slots__ = ()

    def __new__(cls, name, power_, transposed):
        return super().__new__(cls, name, power_ if type(power_) is Power else power(power_), transposed)


Word = tuple  # tuple[Letter, ...]


def letter_key(l: Letter) -> tuple:
    """A total order on letters: plain names before compounds, then power and transposition."""
    name = (0, l.name) if isinstance(l.name, str) else (1, l.name.key)
    return (name, l.power, l.transposed)


def word_key(word: Word) -> tuple:
    return tuple(letter_key(l) for l in word)


@dataclass(frozen=True)
class Algebra:
    """What the canonicalizer may assume about matrix symbols.

    ``symmetric`` names equal their transposes; ``spd`` ones are moreover
    positive definite; ``orthonormal`` ones have orthonormal columns
    (``Uᵀ U = I``, so ``U Uᵀ`` is a projector); ``orthogonal`` ones are square
    with ``Qᵀ = Q⁻¹`` (a permutation, a rotation).  Every symmetric symbol S forms a commuting group with
    the functions of S (its powers and compounds that are polynomials in S);
    ``commuting`` maps further names to a shared group label.
    """

    symmetric: frozenset = frozenset()
    spd: frozenset = frozenset()
    commuting: tuple = ()  # ((name, group label), ...)
    orthonormal: tuple = ()  # ((name, number of columns), ...): Uᵀ U = I
    orthogonal: frozenset = frozenset()  # square Q with Qᵀ = Q⁻¹
    _groups: dict = field(default=None, compare=False, hash=False, repr=False)
    _columns: dict = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_groups", dict(self.commuting))
        object.__setattr__(self, "_columns", dict(self.orthonormal))

    def columns(self, name):
        """The number of columns of a matrix with orthonormal columns (``Uᵀ U = I``), else ``None``."""
        return self._columns.get(name) if isinstance(name, str) else None

    def group(self, name) -> str | None:
        if isinstance(name, Compound):
            return name.group
        found = self._groups.get(name)
        if found is not None:
            return found
        return name if name in self.symmetric else None

    def is_symmetric(self, name) -> bool:
        if isinstance(name, Compound):
            return name.symmetric
        return name in self.symmetric

    def is_spd(self, name) -> bool:
        if isinstance(name, Compound):
            return name.spd
        return name in self.spd


def transpose_word(word: Word, algebra: Algebra) -> Word:
    """``(M_1 ... M_k)ᵀ = M_kᵀ ... M_1ᵀ``."""
    out = []
    for l in reversed(word):
        flag = (not l.transposed) and not algebra.is_symmetric(l.name)
        out.append(l if flag == l.transposed else Letter(l.name, l.power, flag))
    return tuple(out)


def _merge_pass(word: list, algebra: Algebra) -> list:
    out: list = []
    for l in word:
        if l.transposed and algebra.is_symmetric(l.name):
            l = Letter(l.name, l.power, False)
        if l.transposed and isinstance(l.name, str) and l.name in algebra.orthogonal:
            l = Letter(l.name, -l.power, False)  # Qᵀ = Q⁻¹
        if (out and l.power == 1 and not l.transposed and out[-1] == Letter(l.name, 1, True)
                and algebra.columns(l.name) is not None):
            out.pop()  # Uᵀ U = I
            continue
        if out and out[-1].name == l.name and out[-1].transposed == l.transposed:
            power = out[-1].power + l.power
            out.pop()
            if power != 0:
                out.append(Letter(l.name, power, l.transposed))
            continue
        out.append(l)
    # sort each maximal run of one commuting group
    result: list = []
    i = 0
    while i < len(out):
        group = algebra.group(out[i].name)
        j = i + 1
        while group is not None and j < len(out) and algebra.group(out[j].name) == group:
            j += 1
        result.extend(_merge_commuting(out[i:j]) if j - i > 1 else out[i:j])
        i = j
    return result


def _merge_commuting(run: list) -> list:
    powers: dict = {}
    for l in run:
        powers[l.name] = powers.get(l.name, Fraction(0)) + l.power
    ordered = sorted(powers.items(), key=lambda item: letter_key(Letter(item[0], Fraction(0), False)))
    return [Letter(n, p, False) for n, p in ordered if p != 0]


@functools.lru_cache(maxsize=1 << 16)
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
    if a.name == b.name and a.transposed and not b.transposed and algebra.columns(a.name) is not None:
        return True  # … Uᵀ][U … across the wrap-around of a trace
    group = algebra.group(a.name)
    return group is not None and group == algebra.group(b.name)


def _blocks(word: Word, algebra: Algebra) -> list:
    """Split a normalized word into rotation units: a commuting run is one unit."""
    blocks: list = []
    for l in word:
        group = algebra.group(l.name)
        if blocks and group is not None and algebra.group(blocks[-1][-1].name) == group:
            blocks[-1] = blocks[-1] + (l,)
        else:
            blocks.append((l,))
    return blocks


@functools.lru_cache(maxsize=1 << 16)
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
            key = word_key(rotation)
            if best is None or key < best[0]:
                best = (key, rotation)
    return best[1]


def invert_word(word: Word, algebra: Algebra) -> Word:
    """``(M_1 ... M_k)⁻¹ = M_k⁻¹ ... M_1⁻¹``."""
    return normalize_word(tuple(Letter(l.name, -l.power, l.transposed) for l in reversed(word)), algebra)


def is_psd_word(word: Word, algebra: Algebra) -> bool:
    """Whether the product ``word`` is evidently positive semi-definite: ``B S Bᵀ``.

    ``S`` is empty or a product of SPD letters of one commuting group (any
    rational powers); ``B`` is any word.  A sufficient condition only: a word
    that fails it may still be PSD, but one that passes always is.
    """
    n = len(word)
    for k in range(n // 2 + 1):
        left, middle, right = word[:k], word[k:n - k], word[n - k:]
        if right != transpose_word(left, algebra):
            continue
        groups = {algebra.group(l.name) for l in middle}
        if not middle or (all(algebra.is_spd(l.name) for l in middle) and len(groups) == 1 and None not in groups):
            return True
    return False
