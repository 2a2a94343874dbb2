"""Tests of derive.iclr_rank: the identities, numeric spot checks, negative controls."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from derive import iclr_rank
from derive.registry import all_results, get

IDS = ("iclr.attention_factorization", "iclr.gram_dependence", "iclr.bigram_invisible",
       "iclr.previous_token_gram")


def values(result_id):
    return get(result_id).derivation.values


def test_results_registered():
    registered = {r.id for r in all_results()}
    assert set(IDS) <= registered
    for result_id in IDS:
        result = get(result_id)
        assert result.source == iclr_rank.SOURCE
        assert result.assumptions and result.derivation.steps


def test_derive_never_imports_torch():
    code = "import sys, derive.iclr_rank; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------- symbolic


def test_factorization_matches_blog():
    derived = values("iclr.attention_factorization")
    paper = get("iclr.attention_factorization").paper()
    assert derived["M"] == paper["M"].doit()
    assert derived["factorized"] == paper["factorized"].doit()
    assert not derived["M"].has(derived["U"])


def test_gram_dependence_identities():
    v = values("iclr.gram_dependence")
    assert v["regrouped"] == v["attention"]  # X (W_Q W_K^T (X^T X) W_V) = Attn(X)
    assert not v["gram_factor"].has(v["X"])
    assert v["permuted"] == v["equivariant"]  # Attn(PX) = P Attn(X)
    assert v["gram_permuted"] == sp.MatMul(v["X"].T, v["X"])


def test_cancel_orthonormal_needs_the_relation():
    """Negative control: without U^T U = I the SVD form does not reduce to U M."""
    v = values("iclr.attention_factorization")
    assert v["substituted"] != v["factorized"]
    U = v["U"]
    # cancelling an unrelated symbol leaves the product untouched
    assert iclr_rank.cancel_orthonormal(v["substituted"], v["V"]) == v["substituted"]
    assert iclr_rank.cancel_orthonormal(v["substituted"], U) == v["factorized"]


def test_one_hot_gram_is_diag_counts():
    v = values("iclr.bigram_invisible")
    assert v["gram_reduced"] == sp.diag(*v["counts_generic"])
    assert v["gram_generic"] != v["gram_reduced"]  # the reduction did something


def test_bigram_invisible_pair():
    v = values("iclr.bigram_invisible")
    assert v["gram_a"] == v["gram_b"] == sp.diag(2, 2, 2)
    assert v["xty_a"] == v["C_a"] and v["xty_b"] == v["C_b"]
    assert v["C_a"] != v["C_b"]
    assert v["T_a"] != v["T_b"]
    assert v["prediction_a"] == sp.Matrix([[1, 0, 0]])
    assert v["prediction_b"] == sp.Matrix([[0, 1, 0]])
    assert v["difference"] == sp.zeros(1, 3)
    assert v["last_a"].free_symbols  # a genuine function of the weights
    assert iclr_rank.CONTEXT_A[-1] == iclr_rank.CONTEXT_B[-1]


def test_previous_token_gram():
    v = values("iclr.previous_token_gram")
    X, S = v["X"], v["S"]
    blocks = v["gram_blocks"]
    assert blocks.blocks[0, 0] == X.T * X
    assert blocks.blocks[1, 0] == X.T * S.T * X
    assert v["cross_block"] == v["blog_C"]
    k = iclr_rank.STATES
    for context, gram, C in (("a", v["gram_a"], v["C_a"]), ("b", v["gram_b"], v["C_b"])):
        assert gram[k:, :k] == C, context  # X^T S^T X block = bigram counts
        assert gram[:k, k:] == C.T
    assert v["gram_a"][k:, :k] != v["gram_b"][k:, :k]
    last = iclr_rank.CONTEXT_A[-1]
    assert v["readout_a"] == v["C_a"][last, :]
    assert v["readout_b"] == v["C_b"][last, :]


def test_one_hot_gram_exhaustive_small():
    """X^T X = diag(counts) for every sequence over 3 states of length 4."""
    import itertools

    for tokens in itertools.product(range(3), repeat=4):
        X = iclr_rank.one_hot_matrix(tokens, 3)
        assert X.T * X == sp.diag(*[tokens.count(i) for i in range(3)])


# ------------------------------------------------------------ numeric spot


def _attention(X, W_Q, W_K, W_V):
    return (X @ W_Q @ W_K.T @ X.T) @ X @ W_V


@pytest.fixture
def instance():
    rng = np.random.default_rng(7)
    L, d = 7, 4
    X = rng.standard_normal((L, d))
    W = [rng.standard_normal((d, d)) for _ in range(3)]
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    return X, W, U, np.diag(s), Vt.T


def _close(a, b):
    return np.max(np.abs(a - b)) <= 1e-12 * max(1.0, np.max(np.abs(a)))


def test_factorization_numeric(instance):
    X, (W_Q, W_K, W_V), U, Sigma, V = instance
    v = values("iclr.attention_factorization")
    symbols = [v[n] for n in ("U", "Sigma", "V", "W_Q", "W_K", "W_V")]
    M = sp.lambdify(symbols, v["M"], "numpy")(U, Sigma, V, W_Q, W_K, W_V)
    assert M.shape == (4, 4)
    attention = _attention(X, W_Q, W_K, W_V)
    assert _close(attention, U @ M)
    # negative controls: drop Sigma^T Sigma, or put U^T in place of U
    wrong_M = Sigma @ V.T @ W_Q @ W_K.T @ V @ V.T @ W_V
    assert not _close(attention, U @ wrong_M)
    assert not _close(U @ U.T, np.eye(U.shape[0]))  # only U^T U = I holds for a thin U
    wrong_M_transposed_V = sp.lambdify(symbols, v["M"], "numpy")(U, Sigma, V.T, W_Q, W_K, W_V)
    assert not _close(attention, U @ wrong_M_transposed_V)
    assert not _close(attention, U @ M.T)


def test_gram_and_permutation_numeric(instance):
    X, (W_Q, W_K, W_V), *_ = instance
    v = values("iclr.gram_dependence")
    gram_factor = sp.lambdify([v["W_Q"], v["W_K"], v["W_V"], v["G"]], v["gram_factor"], "numpy")
    attention = _attention(X, W_Q, W_K, W_V)
    assert _close(attention, X @ gram_factor(W_Q, W_K, W_V, X.T @ X))
    rng = np.random.default_rng(3)
    P = np.eye(X.shape[0])[rng.permutation(X.shape[0])]
    assert _close(_attention(P @ X, W_Q, W_K, W_V), P @ attention)
    # negative controls: a non-orthogonal mixing of positions breaks equivariance
    A = np.eye(X.shape[0]) + 0.1 * rng.standard_normal((X.shape[0],) * 2)
    assert not _close(_attention(A @ X, W_Q, W_K, W_V), A @ attention)
    assert not _close(attention, X @ gram_factor(W_Q, W_K, W_V, X.T @ X @ X.T @ X))


def test_bigram_invisible_numeric():
    rng = np.random.default_rng(11)
    X_a = np.array(iclr_rank.one_hot_matrix(iclr_rank.CONTEXT_A, 3), dtype=float)
    X_b = np.array(iclr_rank.one_hot_matrix(iclr_rank.CONTEXT_B, 3), dtype=float)
    for _ in range(5):
        W = [rng.standard_normal((3, 3)) for _ in range(3)]
        assert _close(_attention(X_a, *W)[-1], _attention(X_b, *W)[-1])
        # negative control: the transition-estimator readout x_L^T X^T Y differs
        assert not _close(X_a[-1] @ X_a[:-1].T @ X_a[1:], X_b[-1] @ X_b[:-1].T @ X_b[1:])


# ---------------------------------------------------------------------- CLI


@pytest.mark.parametrize("fmt", ["text", "latex", "json"])
def test_cli_formats(fmt, capsys):
    assert iclr_rank.main(["--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        payload = json.loads(out)
        assert set(IDS) <= set(payload)
        assert all(payload[i]["steps"] for i in IDS)
    elif fmt == "latex":
        assert r"\begin{align*}" in out and r"\Sigma" in out
    else:
        assert "iclr.bigram_invisible" in out


def test_latex_output_is_a_document_through_the_shared_printer():
    text = iclr_rank.render([r for r in iclr_rank.RESULTS], "latex")
    assert text.startswith("\\documentclass") and "\\begin{align*}" in text
