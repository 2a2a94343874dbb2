"""What one linear-attention layer sees of its context: the Gram matrix, and why in-context Markov chains are out of reach.

The layer (no softmax, no positional encoding; the tokens are the rows of the
context ``X``, an L×d matrix) is

    Attn = X @ W_Q @ W_K.T @ X.T @ X @ W_V.

Everything below is derived by the engine from that definition, in the one
grammar, with the dimensions ``L`` (positions), ``d`` or ``K`` (token size)
and ``r`` (the rank of ``X``):

``iclr.attention_factorization``
    With a thin singular value decomposition ``X = U @ Sig @ V.T`` (``U`` L×r
    and ``V`` d×r with orthonormal columns, ``Sig`` r×r positive definite),
    ``Attn = U @ M`` with ``M = Sig @ V.T @ W_Q @ W_K.T @ V @ Sig**2 @ V.T @
    W_V``, and ``(I(L) - U @ U.T) @ Attn = 0``: the outputs' columns lie in the
    column space of ``X``, so the rank of the output is at most ``r``.
``iclr.gram_dependence``
    ``Attn = X @ F(X.T @ X)`` with ``F(G) = W_Q @ W_K.T @ G @ W_V``: a row of
    the output is its token times a function of the Gram matrix; hence
    ``Attn(P @ X) = P @ Attn(X)`` for every permutation ``P`` and the last
    row depends on the context only through the last token and ``X.T @ X``.
``iclr.bigram_invisible``
    For one-hot tokens ``X.T @ X`` holds the token counts.  Two contexts with
    equal counts and equal last tokens but different bigram counts ``C = X.T
    @ S.T @ X`` (``S`` the L×L down-shift) give the same last output for every
    weight, while their in-context transition estimates differ.
``iclr.previous_token_gram``
    With previous-token features ``Z = [X | S @ X]`` the block (2, 1) of
    ``Z.T @ Z`` is ``C``, and one layer on ``Z`` reads out the bigram counts of
    the last token; building ``S @ X`` needs an L×L map, which no d×d weight is.

Run: ``python -m derive show iclr.attention_factorization``.  The numeric
mirror is ``numeric/linear_attention_gram.py``.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import sympy

from derive.engine import grammar as g
from derive.engine.blocks import block_matmul, block_transpose
from derive.engine.pipeline import declare
from derive.engine.polynomial import Polynomial
from derive.engine.statements import evaluate
from derive.references import PARK2025, TURN2026
from derive.registry import Derivation, Equation, Result, Source, Step

LATEX_NAMES = {"Sig": "\\Sigma", "Attn": "\\operatorname{Attn}", "e": "e_{L}"}
ATTN = ("Attn", "X @ W_Q @ W_K.T @ X.T @ X @ W_V")
F = ("F", "W_Q @ W_K.T @ G @ W_V")
BIGRAMS = ("C", "X.T @ S.T @ X")
SOURCES = (Source(TURN2026), Source(PARK2025))
LAYER = ("one linear-attention layer: no softmax, no mask, no positional encoding; the tokens are the rows of `X`",)

# The SVD context: U, V with orthonormal columns (Uᵀ U = Vᵀ V = I_r), Σ positive definite.
SVD = declare(dims=["L", "r"], matrices={"X": "L,d", "U": "L,r:orthonormal", "Sig": "r:spd", "V": "d,r:orthonormal"},
              latex_names=LATEX_NAMES)
# The same names with U, V general: the product before Uᵀ U = I is used (for exposition only).
SVD_PLAIN = declare(dims=["L", "r"], matrices={"X": "L,d", "U": "L,r", "Sig": "r:spd", "V": "d,r"},
                    latex_names=LATEX_NAMES)
PERMUTED = declare(dims=["L"], matrices={"X": "L,d", "P": "L:orthogonal", "G": "symmetric"}, vectors={"e": "L"},
                   latex_names=LATEX_NAMES)
ONE_HOT = declare(dims=["L", "K"], matrices={"X": "L,K", "S": "L,L", "W_Q": "K,K", "W_K": "K,K", "W_V": "K,K",
                                              "G": "K:symmetric"}, vectors={"e": "L"}, latex_names=LATEX_NAMES)

# Two contexts over K = 3 states with equal token counts (2, 2, 2) and the same
# last token (2) but different bigrams: a has 2 -> 0, b has 2 -> 1.
CONTEXT_A = (0, 1, 2, 0, 1, 2)
CONTEXT_B = (0, 2, 1, 0, 1, 2)
STATES = 3


# ---------------------------------------------------------------- the factorization

def derive_attention_factorization() -> Derivation:
    plain = evaluate("at(Attn, X=U @ Sig @ V.T)", SVD_PLAIN, dict([ATTN]))
    factorized = evaluate("at(Attn, X=U @ Sig @ V.T)", SVD, dict([ATTN]))
    M = evaluate("Sig @ V.T @ W_Q @ W_K.T @ V @ Sig**2 @ V.T @ W_V", SVD)
    projection = evaluate("(I(L) - U @ U.T) @ at(Attn, X=U @ Sig @ V.T)", SVD, dict([ATTN]))
    return Derivation(
        steps=(
            Step("at(Attn, X=U @ Sig @ V.T)", plain, "the thin SVD substituted into the definition of the layer"),
            Step("at(Attn, X=U @ Sig @ V.T)", factorized, "`U.T @ U = I(r)` (orthonormal columns) and `Sig.T = Sig`"),
            Step("M", M, "the factor right of `U`: an `r`×`d` matrix that mixes features, never positions"),
            Step("(I(L) - U @ U.T) @ at(Attn, X=U @ Sig @ V.T)", projection,
                 "`U @ U.T` projects onto the column space of `X`, and `U.T @ U = I(r)` again"),
        ),
        values={"attention": evaluate("Attn", SVD, dict([ATTN])), "factorized": factorized, "M": M,
                "projection_residual": projection},
        context=SVD)


# ---------------------------------------------------------------- the Gram matrix and permutations

def derive_gram_dependence() -> Derivation:
    definitions = dict([ATTN, F])
    grouped = evaluate("X @ at(F, G=X.T @ X)", PERMUTED, definitions)
    permuted = evaluate("at(Attn, X=P @ X)", PERMUTED, definitions)
    gram = evaluate("at(X.T @ X, X=P @ X)", PERMUTED)
    last = evaluate("e.T @ Attn", PERMUTED, definitions)
    return Derivation(
        steps=(
            Step("X @ at(F, G=X.T @ X)", grouped, "associativity: `X` appears once on the left, then only in "
                                                  "`X.T @ X`"),
            Step("at(Attn, X=P @ X)", permuted, "`P.T @ P = I(L)` for a permutation matrix"),
            Step("at(X.T @ X, X=P @ X)", gram, "the Gram matrix does not see the order of the tokens"),
            Step("e.T @ Attn", last, "the last row: the last token `X.T @ e` times a function of `X.T @ X`"),
        ),
        values={"attention": evaluate("Attn", PERMUTED, definitions), "gram_factor": evaluate("F", PERMUTED,
                                                                                              definitions),
                "permuted": permuted, "last_row": last},
        context=PERMUTED)


# ---------------------------------------------------------------- one-hot contexts

def one_hot(tokens, states: int = STATES) -> np.ndarray:
    """The L×K matrix whose row t is the one-hot vector of ``tokens[t]``."""
    X = np.zeros((len(tokens), states))
    X[np.arange(len(tokens)), tokens] = 1.0
    return X


def down_shift(length: int) -> np.ndarray:
    """The L×L shift ``S`` with ``(S @ X)_t = x_{t-1}`` and ``(S @ X)_1 = 0``."""
    return np.eye(length, k=-1)


def last_basis_vector(length: int) -> np.ndarray:
    e = np.zeros(length)
    e[-1] = 1.0
    return e


def _integers(array) -> sympy.Matrix:
    """An exactly integral (or rational) array as a sympy matrix, to print it as it is."""
    values = np.atleast_2d(np.asarray(array, dtype=float))
    return sympy.Matrix([[sympy.Rational(Fraction(v).limit_denominator(1000)) for v in row] for row in values])


@functools.lru_cache(maxsize=None)
def one_hot_numbers() -> dict:
    """Counts, last tokens, bigram counts and transition estimates of the two contexts, from the engine's formulas."""
    formulas = {"gram": "X.T @ X", "last": "X.T @ e", "bigrams": BIGRAMS[1],
                "transitions": "inv(X.T @ S.T @ S @ X) @ X.T @ S.T @ X",
                "prediction": "e.T @ X @ inv(X.T @ S.T @ S @ X) @ X.T @ S.T @ X"}
    polys = {name: evaluate(text, ONE_HOT) for name, text in formulas.items()}
    out = {}
    for label, tokens in (("a", CONTEXT_A), ("b", CONTEXT_B)):
        values = {"X": one_hot(tokens), "S": down_shift(len(tokens)), "e": last_basis_vector(len(tokens))}
        out[label] = {name: poly.evaluate(values) for name, poly in polys.items()}
    return {"polynomials": polys, "numbers": out}


def derive_bigram_invisible() -> Derivation:
    definitions = dict([ATTN, F])
    last = evaluate("e.T @ Attn", ONE_HOT, definitions)
    found = one_hot_numbers()
    a, b = found["numbers"]["a"], found["numbers"]["b"]
    return Derivation(
        steps=(
            Step("e.T @ Attn", last, "the last row depends on the context only through `X.T @ e` (the last token) "
                                     "and `X.T @ X`"),
            Step("X.T @ X", _integers(a["gram"]), f"for context a = {CONTEXT_A}: one-hot rows give the diagonal "
                                                  "matrix of token counts"),
            Step("X.T @ X", _integers(b["gram"]), f"for context b = {CONTEXT_B}: the same counts"),
            Step("X.T @ e", _integers(a["last"]).T, "the last token, 2, in both contexts"),
            Step("C", _integers(a["bigrams"]), "the bigram counts of a, `C = X.T @ S.T @ X`: 2 is followed by 0"),
            Step("C", _integers(b["bigrams"]), "the bigram counts of b: 2 is followed by 1"),
            Step("e.T @ X @ inv(X.T @ S.T @ S @ X) @ C", _integers(a["prediction"]),
                 "the in-context transition estimate for the last token of a (counts of the first `L - 1` tokens)"),
            Step("e.T @ X @ inv(X.T @ S.T @ S @ X) @ C", _integers(b["prediction"]), "and of b: they differ, while "
                 "the layer's last outputs, functions of `X.T @ e` and `X.T @ X`, agree for every `W_Q`, `W_K`, "
                 "`W_V`"),
        ),
        values={"last_row": last, **{k: v for k, v in found["polynomials"].items()}},
        context=ONE_HOT)


# ---------------------------------------------------------------- previous-token features

P = g.parse


@functools.lru_cache(maxsize=None)
def previous_token_blocks() -> dict:
    """``Z.T @ Z`` and the readout of one layer on ``Z = [X | S @ X]``, by block algebra."""
    Z = [[P("X"), P("S @ X")]]
    gram = block_matmul(block_transpose(Z), Z)
    z_last = block_matmul([[P("e.T")]], Z)  # the last row of Z: (x_L, x_{L-1})
    query_key = [[None, P("I(K)")], [None, None]]  # W_Q @ W_K.T: moves x_L into the "previous token" slot
    value = [[P("I(K)")], [None]]  # W_V: keeps the "current token" half
    (readout,), = block_matmul(block_matmul(block_matmul(z_last, query_key), gram), value)
    blocks = {f"gram{i + 1}{j + 1}": evaluate(gram[i][j], ONE_HOT) for i in range(2) for j in range(2)}
    return {**blocks, "readout": evaluate(readout, ONE_HOT)}


def derive_previous_token_gram() -> Derivation:
    blocks = previous_token_blocks()
    numbers = {}
    for label, tokens in (("a", CONTEXT_A), ("b", CONTEXT_B)):
        values = {"X": one_hot(tokens), "S": down_shift(len(tokens)), "e": last_basis_vector(len(tokens))}
        numbers[label] = blocks["readout"].evaluate(values)
    return Derivation(
        steps=(
            Step("gram11", blocks["gram11"], "the block product `Z.T @ Z` for the features `Z`, whose blocks are `X` and `S @ X`: the counts"),
            Step("gram21", blocks["gram21"], "the block (2, 1): the bigram counts `C`"),
            Step("gram22", blocks["gram22"], "the counts of the first `L - 1` tokens"),
            Step("readout", blocks["readout"], "one layer whose `W_Q @ W_K.T` has the one nonzero block `I(K)` in position (1, 2) and whose `W_V` has "
                                               "the blocks `I(K)` and 0: "
                                               "the row of `C` of the last token"),
            Step("readout", _integers(numbers["a"]), f"for context a = {CONTEXT_A}: what followed token 2"),
            Step("readout", _integers(numbers["b"]), f"for context b = {CONTEXT_B}: now the layer tells them apart"),
        ),
        values=blocks, context=ONE_HOT, definitions={"gram21": blocks["gram21"], "readout": blocks["readout"]})


READING_ORDER = 60  # where this module's results stand in the document and the lists (lower first)

RESULTS = [
    Result(
        id="iclr.attention_factorization",
        title="Linear attention factors through the left singular vectors of its context",
        equations=(Equation("at(Attn, X=U @ Sig @ V.T)", "U @ M", value="factorized"),
                   Equation("(I(L) - U @ U.T) @ at(Attn, X=U @ Sig @ V.T)", "zeros(L, d)")),
        derive=derive_attention_factorization,
        where=(ATTN, ("M", "Sig @ V.T @ W_Q @ W_K.T @ V @ Sig**2 @ V.T @ W_V")),
        sources=SOURCES,
        assumptions=LAYER + ("`X = U @ Sig @ V.T` is a thin singular value decomposition: `U.T @ U = I(r)`, "
                             "`V.T @ V = I(r)`, `Sig` diagonal and positive, `r` the rank of `X`",),
        remarks=("The output is `U @ M` with `U` of `r` columns: its columns lie in the column space of `X` and its "
                 "rank is at most `r`, whatever the weights. The layer mixes features, never positions.",),
    ),
    Result(
        id="iclr.gram_dependence",
        title="Linear attention sees its context only through the Gram matrix",
        equations=(Equation("Attn", "X @ at(F, G=X.T @ X)"),
                   Equation("at(Attn, X=P @ X)", "P @ Attn", value="permuted"),
                   Equation("at(X.T @ X, X=P @ X)", "X.T @ X"),
                   Equation("e.T @ Attn", "(X.T @ e).T @ at(F, G=X.T @ X)", value="last_row")),
        derive=derive_gram_dependence,
        where=(ATTN, F),
        sources=SOURCES,
        assumptions=LAYER + ("`P` is a permutation matrix (`P.T @ P = I(L)`)",
                             "`e` is the last standard basis vector of length `L`, so `X.T @ e` is the last token"),
        remarks=("With a causal mask the last position still attends to the whole context, so the statement about "
                 "`e.T @ Attn` holds for the last position of a causal layer too.",),
    ),
    Result(
        id="iclr.bigram_invisible",
        title="Bigram statistics are invisible to one linear-attention layer on one-hot tokens",
        equations=(Equation("e.T @ Attn", "(X.T @ e).T @ at(F, G=X.T @ X)", value="last_row"),),
        derive=derive_bigram_invisible,
        where=(ATTN, F, BIGRAMS),
        sources=SOURCES,
        assumptions=LAYER + ("the rows of `X` are one-hot vectors of length `K`: `X.T @ X` is the diagonal matrix "
                             "of the token counts",
                             "`S` is the `L`×`L` down-shift, so `C = X.T @ S.T @ X` counts the bigrams"),
        remarks=("The in-context transition estimate `inv(X.T @ S.T @ S @ X) @ C` needs the bigram counts `C`, "
                 "which no function of `X.T @ e` and `X.T @ X` provides: the two contexts of the derivation have "
                 "equal counts and last tokens and different bigrams.",),
    ),
    Result(
        id="iclr.previous_token_gram",
        title="With previous-token features the Gram matrix holds the bigram counts",
        equations=(Equation("gram21", "C"), Equation("readout", "(X.T @ e).T @ C")),
        derive=derive_previous_token_gram,
        where=(BIGRAMS,),
        sources=SOURCES,
        assumptions=("the features of token `t` are the token and its predecessor: `Z` has the blocks `X` and `S @ X`, with `S` the "
                     "`L`×`L` down-shift and a zero token before the first",),
        remarks=("Building `S @ X` needs an `L`×`L` map of the positions, which no weight of size `d`×`d` provides: "
                 "the features must come from a previous layer or a positional mechanism.",),
    ),
]


if __name__ == "__main__":
    from derive.topic import run_topic

    run_topic(__spec__.name)
