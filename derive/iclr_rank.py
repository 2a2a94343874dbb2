r"""Why one linear-attention layer cannot learn in-context Markov chains.

Source: the blog post "Linear attention is unable to perform the In-Context
Markov Model / In-Context Learning of Representations task" (seed 000).

The layer (no softmax, no positional encoding, tokens are the rows of the
context ``X`` in R^{L x d})::

    Attn(X) = (X W_Q W_K^T X^T) X W_V .

Results derived here, each by sympy from that definition:

``iclr.attention_factorization``
    With the thin SVD ``X = U Sigma V^T`` (``U^T U = I``) the layer is
    ``Attn(X) = U M`` with ``M = Sigma V^T W_Q W_K^T V Sigma^T Sigma V^T W_V``
    (d x d): the context (row) space enters only through ``U``.  Derived by
    substituting the SVD into the MatrixSymbol product and cancelling the
    adjacent pair ``U^T U``.
``iclr.gram_dependence``
    ``Attn(X) = X (W_Q W_K^T (X^T X) W_V)``: row ``t`` is ``x_t^T`` times a
    matrix that depends on the context only through the Gram matrix ``X^T X``;
    hence ``Attn(P X) = P Attn(X)`` for every permutation ``P`` (``P^T P = I``).
    With a causal (prefix) mask the last row attends to the whole context, so
    the same holds for the last position of a causal layer.
``iclr.bigram_invisible``
    For one-hot tokens ``X^T X = diag(counts)``, derived by reducing the Gram
    matrix modulo the one-hot relations ``x_i^2 = x_i``, ``x_i x_j = 0``.  The
    in-context transition estimator ``T = (X^T X)^{-1} X^T Y`` (``Y`` = ``X``
    shifted by one) needs the bigram counts ``X^T Y``, which the layer never
    sees: two contexts with the same token counts and the same last token but
    different bigram counts are exhibited; their Gram matrices, hence the
    layer's outputs at the last position for every ``W_Q, W_K, W_V``, agree,
    while their transition estimates disagree.
``iclr.previous_token_gram``
    With previous-token features ``z_t = x_t (+) x_{t-1}`` (``Z = [X | S X]``,
    ``S`` the L x L down-shift) the Gram matrix ``Z^T Z`` has the bigram count
    matrix as its off-diagonal block (``X^T S^T X = C = X_{1:L-1}^T X_{2:L}``),
    and one linear-attention layer on ``Z`` outputs the bigram counts of the
    last token.  Building ``S X`` needs the L x L shift, which no d x d weight
    provides.

Run::

    python -m derive.iclr_rank                  # the argument, step by step
    python -m derive.iclr_rank --format latex   # the steps as LaTeX
    python -m derive.iclr_rank --format json    # {result id: {..., "steps": [...]}}

This module never imports torch (``numeric.iclr_rank`` checks it numerically).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any, Sequence

import sympy as sp

from derive.registry import Derivation, Result, Step

SOURCE = "Blog post: linear attention cannot do in-context Markov chains (seed 000)"

# Symbolic sizes: L context positions, d token dimension.
L, d = sp.symbols("L d", positive=True, integer=True)

# Two contexts over K = 3 states with equal token counts (2, 2, 2) and the same
# last token (2) but different bigrams: a has 2 -> 0, b has 2 -> 1.
CONTEXT_A = (0, 1, 2, 0, 1, 2)
CONTEXT_B = (0, 2, 1, 0, 1, 2)
STATES = 3


# ---------------------------------------------------------------- helpers


def _weights(dim) -> tuple[sp.MatrixSymbol, sp.MatrixSymbol, sp.MatrixSymbol]:
    """The query, key and value weights as d x d matrix symbols."""
    return tuple(sp.MatrixSymbol(name, dim, dim) for name in ("W_Q", "W_K", "W_V"))


def linear_attention(X, W_Q, W_K, W_V):
    """The layer from its definition: ``(X W_Q W_K^T X^T) X W_V`` (a MatMul)."""
    return sp.MatMul(X, W_Q, W_K.T, X.T, X, W_V).doit()


def _factors(expr) -> list:
    """The ordered factors of a matrix product (a single factor if not a MatMul)."""
    expr = expr.doit()
    return list(expr.args) if isinstance(expr, sp.MatMul) else [expr]


def replace_adjacent(expr, left, right, replacement):
    """Rewrite every adjacent pair ``left * right`` in the product ``expr``.

    This is how relations such as ``U^T U = I`` or ``X^T X = G`` are applied
    to a noncommutative MatrixSymbol product; identities drop out on ``doit``.
    """
    factors = _factors(expr)
    out: list = []
    i = 0
    while i < len(factors):
        if i + 1 < len(factors) and factors[i] == left and factors[i + 1] == right:
            out.append(replacement)
            i += 2
        else:
            out.append(factors[i])
            i += 1
    return sp.MatMul(*out).doit() if len(out) > 1 else out[0]


def cancel_orthonormal(expr, Q):
    """Apply ``Q^T Q = I`` to the product ``expr`` until no such pair is left."""
    identity = sp.Identity(Q.shape[1])
    while True:
        new = replace_adjacent(expr, Q.T, Q, identity)
        if new == expr:
            return new
        expr = new


def one_hot_matrix(tokens: Sequence[int], states: int) -> sp.Matrix:
    """The L x K matrix whose row t is the one-hot vector of ``tokens[t]``."""
    return sp.Matrix(len(tokens), states, lambda t, i: 1 if tokens[t] == i else 0)


def bigram_counts(tokens: Sequence[int], states: int) -> sp.Matrix:
    """``C[i, j]`` = number of t with ``tokens[t] = i`` and ``tokens[t+1] = j`` (by counting)."""
    pairs = Counter(zip(tokens[:-1], tokens[1:]))
    return sp.Matrix(states, states, lambda i, j: pairs[(i, j)])


def down_shift(length: int) -> sp.Matrix:
    """The L x L shift S with (S X)_t = x_{t-1} and (S X)_1 = 0."""
    return sp.Matrix(length, length, lambda t, s: 1 if t == s + 1 else 0)


def transition_estimate(tokens: Sequence[int], states: int) -> sp.Matrix:
    """The in-context estimator ``T = (X^T X)^{-1} X^T Y``, X rows 1..L-1, Y rows 2..L."""
    X = one_hot_matrix(tokens[:-1], states)
    Y = one_hot_matrix(tokens[1:], states)
    return (X.T * X).inv() * (X.T * Y)


def _symbol_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """An explicit rows x cols matrix of independent scalar symbols ``name_ij``."""
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{{{i + 1}{j + 1}}}"))


# ----------------------------------------------------------- derivations


def derive_attention_factorization() -> Derivation:
    """Substitute X = U Sigma V^T and cancel U^T U: Attn(X) = U M."""
    U = sp.MatrixSymbol("U", L, d)
    Sigma = sp.MatrixSymbol("Sigma", d, d)
    V = sp.MatrixSymbol("V", d, d)
    X = sp.MatrixSymbol("X", L, d)
    W_Q, W_K, W_V = _weights(d)

    definition = linear_attention(X, W_Q, W_K, W_V)
    svd = sp.MatMul(U, Sigma, V.T)
    substituted = linear_attention(svd, W_Q, W_K, W_V)
    cancelled = cancel_orthonormal(substituted, U)
    factors = _factors(cancelled)
    if factors[0] != U or any(f.has(U) for f in factors[1:]):
        raise AssertionError("U did not factor out on the left")  # pragma: no cover
    M = sp.MatMul(*factors[1:]).doit()
    return Derivation(
        steps=(
            Step(r"\operatorname{Attn}(X)", definition, "definition of one linear-attention layer"),
            Step(r"\operatorname{Attn}(U\Sigma V^{\top})", substituted,
                 "substitute the thin SVD X = U Sigma V^T; (ABC)^T = C^T B^T A^T"),
            Step(r"\operatorname{Attn}(U\Sigma V^{\top})", cancelled, "U^T U = I (orthonormal columns)"),
            Step("M", M, "the factor right of U is d x d: it mixes features, never positions"),
        ),
        values={"U": U, "Sigma": Sigma, "V": V, "X": X, "W_Q": W_Q, "W_K": W_K, "W_V": W_V,
                "attention": definition, "substituted": substituted,
                "factorized": cancelled, "M": M},
    )


def paper_attention_factorization():
    """The blog's M, typed in (used only as the expected value in tests)."""
    U = sp.MatrixSymbol("U", L, d)
    Sigma = sp.MatrixSymbol("Sigma", d, d)
    V = sp.MatrixSymbol("V", d, d)
    W_Q, W_K, W_V = _weights(d)
    M = sp.MatMul(Sigma, V.T, W_Q, W_K.T, V, Sigma.T, Sigma, V.T, W_V)
    return {"M": M, "factorized": sp.MatMul(U, M)}


def derive_gram_dependence() -> Derivation:
    """Group X^T X into G; then substitute X -> P X and cancel P^T P."""
    X = sp.MatrixSymbol("X", L, d)
    G = sp.MatrixSymbol("G", d, d)  # stands for the Gram matrix X^T X
    P = sp.MatrixSymbol("P", L, L)
    e_last = sp.MatrixSymbol("e_L", L, 1)
    W_Q, W_K, W_V = _weights(d)

    attention = linear_attention(X, W_Q, W_K, W_V)
    grouped = replace_adjacent(attention, X.T, X, G)
    factors = _factors(grouped)
    if factors[0] != X or any(f.has(X) for f in factors[1:]):
        raise AssertionError("X^T X did not group")  # pragma: no cover
    gram_factor = sp.MatMul(*factors[1:]).doit()  # W_Q W_K^T G W_V, free of X
    regrouped = sp.MatMul(X, gram_factor.subs(G, sp.MatMul(X.T, X))).doit()
    last_row = sp.MatMul(e_last.T, X, gram_factor).doit()

    permuted = linear_attention(sp.MatMul(P, X), W_Q, W_K, W_V)
    permuted_cancelled = cancel_orthonormal(permuted, P)
    equivariant = sp.MatMul(P, attention).doit()
    gram_permuted = cancel_orthonormal(sp.MatMul((P * X).T, P * X).doit(), P)
    return Derivation(
        steps=(
            Step(r"\operatorname{Attn}(X)", attention, "definition"),
            Step(r"\operatorname{Attn}(X)", grouped,
                 "associativity; write G = X^T X: X appears only as the leading factor"),
            Step(r"e_L^{\top}\operatorname{Attn}(X)", last_row,
                 "the last row is x_L^T times a function of G only (a causal last row sees all of X)"),
            Step(r"\operatorname{Attn}(PX)", permuted, "substitute X -> P X"),
            Step(r"\operatorname{Attn}(PX)", permuted_cancelled, "P^T P = I for a permutation matrix"),
            Step(r"(PX)^{\top}(PX)", gram_permuted, "the Gram matrix is permutation invariant"),
        ),
        values={"X": X, "G": G, "P": P, "W_Q": W_Q, "W_K": W_K, "W_V": W_V,
                "attention": attention, "grouped": grouped, "gram_factor": gram_factor,
                "regrouped": regrouped, "last_row": last_row,
                "permuted": permuted_cancelled, "equivariant": equivariant,
                "gram_permuted": gram_permuted},
    )


def derive_one_hot_gram(length: int = 3, states: int = 3):
    """X^T X for a generic one-hot X (symbols reduced modulo the one-hot relations).

    Returns (X, X^T X expanded, the reduced Gram matrix, the counts vector).
    """
    X = _symbol_matrix("x", length, states)
    relations = []
    for t in range(length):
        row = list(X.row(t))
        relations += [v**2 - v for v in row]
        relations += [row[i] * row[j] for i in range(states) for j in range(i + 1, states)]
    basis = sp.groebner(relations, *list(X), order="grevlex")
    gram = (X.T * X).applyfunc(sp.expand)
    reduced = gram.applyfunc(lambda entry: basis.reduce(entry)[1])
    counts = sp.Matrix([sum(X[t, i] for t in range(length)) for i in range(states)])
    return X, gram, reduced, counts


def derive_bigram_invisible() -> Derivation:
    """Gram = diag(counts) for one-hot rows; a pair of contexts the layer confuses."""
    X_generic, gram_generic, gram_reduced, counts_generic = derive_one_hot_gram()

    X_a = one_hot_matrix(CONTEXT_A, STATES)
    X_b = one_hot_matrix(CONTEXT_B, STATES)
    gram_a, gram_b = X_a.T * X_a, X_b.T * X_b
    C_a, C_b = bigram_counts(CONTEXT_A, STATES), bigram_counts(CONTEXT_B, STATES)
    # the blog's C = X^T Y (X rows 1..L-1, Y rows 2..L), computed from the matrices
    xty_a = one_hot_matrix(CONTEXT_A[:-1], STATES).T * one_hot_matrix(CONTEXT_A[1:], STATES)
    xty_b = one_hot_matrix(CONTEXT_B[:-1], STATES).T * one_hot_matrix(CONTEXT_B[1:], STATES)
    T_a, T_b = transition_estimate(CONTEXT_A, STATES), transition_estimate(CONTEXT_B, STATES)
    prediction_a = X_a[-1, :] * T_a  # next-token distribution the estimator predicts
    prediction_b = X_b[-1, :] * T_b

    W_Q, W_K, W_V = (_symbol_matrix(n, STATES, STATES) for n in ("q", "k", "v"))
    last_a = X_a[-1, :] * W_Q * W_K.T * X_a.T * X_a * W_V
    last_b = X_b[-1, :] * W_Q * W_K.T * X_b.T * X_b * W_V
    difference = (last_a - last_b).applyfunc(sp.expand)
    return Derivation(
        steps=(
            Step(r"X^{\top}X\ \text{(generic one-hot rows)}", gram_generic, "definition, L = 3, K = 3"),
            Step(r"X^{\top}X", gram_reduced,
                 "reduce modulo x_{ti}^2 = x_{ti}, x_{ti} x_{tj} = 0: diag(counts)"),
            Step(r"X_a^{\top}X_a", gram_a, f"context a = {CONTEXT_A}"),
            Step(r"X_b^{\top}X_b", gram_b, f"context b = {CONTEXT_B}: same counts"),
            Step(r"C_a = X_a^{\top}Y_a", xty_a, "bigram counts of a"),
            Step(r"C_b = X_b^{\top}Y_b", xty_b, "bigram counts of b differ"),
            Step(r"x_L^{\top}T_a", prediction_a, "T = (X^T X)^{-1} X^T Y predicts 2 -> 0 for a"),
            Step(r"x_L^{\top}T_b", prediction_b, "and 2 -> 1 for b"),
            Step(r"e_L^{\top}\operatorname{Attn}(X_a)-e_L^{\top}\operatorname{Attn}(X_b)", difference,
                 "same last token and same Gram matrix: equal outputs for all W_Q, W_K, W_V"),
        ),
        values={"X_generic": X_generic, "gram_generic": gram_generic,
                "gram_reduced": gram_reduced, "counts_generic": counts_generic,
                "X_a": X_a, "X_b": X_b, "gram_a": gram_a, "gram_b": gram_b,
                "xty_a": xty_a, "xty_b": xty_b, "C_a": C_a, "C_b": C_b,
                "T_a": T_a, "T_b": T_b, "prediction_a": prediction_a,
                "prediction_b": prediction_b, "last_a": last_a, "last_b": last_b,
                "difference": difference},
    )


def derive_previous_token_gram() -> Derivation:
    """Z = [X | S X]: the Gram matrix holds the bigram counts off the diagonal."""
    X = sp.MatrixSymbol("X", L, d)
    S = sp.MatrixSymbol("S", L, L)
    Z = sp.BlockMatrix([[X, S * X]])
    gram_blocks = sp.block_collapse(Z.T * Z)

    # generic (not only one-hot) X, L = 4: X^T S^T X = X_{1:L-1}^T X_{2:L}
    length, states = 4, 3
    X_generic = _symbol_matrix("x", length, states)
    shifted = down_shift(length) * X_generic
    cross_block = (X_generic.T * down_shift(length).T * X_generic).applyfunc(sp.expand)
    blog_C = (X_generic[:-1, :].T * X_generic[1:, :]).applyfunc(sp.expand)

    def features(tokens):
        X_tok = one_hot_matrix(tokens, STATES)
        return X_tok.row_join(down_shift(len(tokens)) * X_tok)

    Z_a, Z_b = features(CONTEXT_A), features(CONTEXT_B)
    gram_a, gram_b = Z_a.T * Z_a, Z_b.T * Z_b
    # a layer reading the counts: query moves x_L into the "previous" slot,
    # values keep the "current" half: W_Q W_K^T = [[0, I], [0, 0]], W_V = [[I], [0]]
    zero, eye = sp.zeros(STATES), sp.eye(STATES)
    query_key = sp.Matrix(sp.BlockMatrix([[zero, eye], [zero, zero]]))
    value = eye.col_join(zero)
    readout_a = Z_a[-1, :] * query_key * gram_a * value
    readout_b = Z_b[-1, :] * query_key * gram_b * value
    return Derivation(
        steps=(
            Step(r"Z^{\top}Z", gram_blocks, "Z = [X | S X], S the down-shift; block product"),
            Step(r"X^{\top}S^{\top}X", cross_block, "generic X, L = 4, K = 3"),
            Step(r"X_{1:L-1}^{\top}X_{2:L}", blog_C, "equals the blog's bigram matrix C = X^T Y"),
            Step(r"Z_a^{\top}Z_a", gram_a, f"context a = {CONTEXT_A}"),
            Step(r"Z_b^{\top}Z_b", gram_b, f"context b = {CONTEXT_B}: off-diagonal blocks differ"),
            Step(r"z_L^{\top}W_QW_K^{\top}Z_a^{\top}Z_aW_V", readout_a,
                 "W_Q W_K^T = [[0, I], [0, 0]], W_V = [[I], [0]]: the counts of 2 -> j in a"),
            Step(r"z_L^{\top}W_QW_K^{\top}Z_b^{\top}Z_bW_V", readout_b, "and in b"),
        ),
        values={"X": X, "S": S, "gram_blocks": gram_blocks, "X_generic": X_generic,
                "shifted": shifted, "cross_block": cross_block, "blog_C": blog_C,
                "Z_a": Z_a, "Z_b": Z_b, "gram_a": gram_a, "gram_b": gram_b,
                "C_a": bigram_counts(CONTEXT_A, STATES), "C_b": bigram_counts(CONTEXT_B, STATES),
                "query_key": query_key, "value": value,
                "readout_a": readout_a, "readout_b": readout_b},
    )


RESULTS = [
    Result(
        id="iclr.attention_factorization",
        title="Linear attention factors through the left singular vectors of the context",
        statement=("With the thin SVD X = U Sigma V^T, Attn(X) = (X W_Q W_K^T X^T) X W_V = U M with "
                   "M = Sigma V^T W_Q W_K^T V Sigma^T Sigma V^T W_V, a d x d matrix: the layer never "
                   "mixes context positions beyond U."),
        derive=derive_attention_factorization,
        source=SOURCE,
        assumptions=("one linear-attention layer, no softmax, no mask",
                     "X = U Sigma V^T thin SVD with U^T U = I"),
        paper=paper_attention_factorization,
    ),
    Result(
        id="iclr.gram_dependence",
        title="Linear attention sees the context only through its Gram matrix",
        statement=("Attn(X) = X (W_Q W_K^T (X^T X) W_V): row t is x_t^T times a function of X^T X; "
                   "hence Attn(P X) = P Attn(X) for every permutation matrix P."),
        derive=derive_gram_dependence,
        source=SOURCE,
        assumptions=("one linear-attention layer, no softmax",
                     "no positional encoding (tokens are the rows of X)",
                     "P is a permutation matrix, P^T P = I",
                     "with a causal mask the statement holds for the last position"),
    ),
    Result(
        id="iclr.bigram_invisible",
        title="Bigram statistics are invisible to one linear-attention layer on one-hot tokens",
        statement=("For one-hot tokens X^T X = diag(token counts), so two contexts with the same "
                   "counts and last token but different bigram counts X^T Y (hence different "
                   "in-context transition estimates T = (X^T X)^{-1} X^T Y) give the same output "
                   "at the last position."),
        derive=derive_bigram_invisible,
        source=SOURCE,
        assumptions=("token-only embedding: row t of X is the one-hot vector of token t",
                     "no positional encoding", "one linear-attention layer, no softmax"),
    ),
    Result(
        id="iclr.previous_token_gram",
        title="With previous-token features the Gram matrix holds the bigram counts",
        statement=("For z_t = x_t (+) x_{t-1}, Z^T Z = [[X^T X, X^T S X], [X^T S^T X, X^T S^T S X]] "
                   "with X^T S^T X = X_{1:L-1}^T X_{2:L} = C, the bigram count matrix; one "
                   "linear-attention layer on Z can output the bigram counts of the last token."),
        derive=derive_previous_token_gram,
        source=SOURCE,
        assumptions=("S is the L x L down-shift, x_0 = 0",
                     "the features z_t are given: building S X needs an L x L map, not a d x d weight"),
    ),
]


# ------------------------------------------------------------------ CLI


def _to_latex(obj: Any) -> str:
    """LaTeX of a step's math, by the shared printer when it exists."""
    try:
        from derive.engine.printing import to_latex
    except ImportError:
        return sp.latex(obj)
    return to_latex(obj)


def render(results: Sequence[Result], fmt: str) -> str:
    """The derivations of ``results`` as text, LaTeX (via derive.report), or a JSON object keyed by id."""
    from derive.report import latex_document, result_text

    if fmt == "json":
        payload = {
            r.id: {
                "title": r.title, "statement": r.statement, "source": r.source,
                "assumptions": list(r.assumptions),
                "steps": [{"lhs": s.lhs, "math": _to_latex(s.math), "text": sp.sstr(s.math),
                           "because": s.because} for s in r.derivation.steps],
            }
            for r in results
        }
        return json.dumps(payload, indent=2)
    if fmt == "latex":
        return latex_document(results, "Why one linear-attention layer cannot learn in-context Markov chains")
    return "\n\n".join(result_text(r, k) for k, r in enumerate(results, 1))


def main(argv: Sequence[str] | None = None) -> int:
    from derive.cli import OneLineParser
    from derive.registry import all_results

    parser = OneLineParser(
        prog="python -m derive.iclr_rank",
        description="Derive why one linear-attention layer cannot learn in-context Markov chains.")
    parser.add_argument("--format", choices=("text", "latex", "json"), default="text")
    args = parser.parse_args(argv)
    # run as __main__ this file is a second copy of the module: print the registered results
    results = [r for r in all_results() if r.module == "derive.iclr_rank"]
    sys.stdout.write(render(results, args.format) + "\n")
    return 0


if __name__ == "__main__":
    from derive.cli import run

    raise SystemExit(run(main))
