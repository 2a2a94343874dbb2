"""derive.linear_attention_gram: the identities come out of the engine, and fail without their assumptions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from derive import linear_attention_gram as lag
from derive.engine.pipeline import declare
from derive.engine.statements import evaluate
from derive.registry import all_results, check_equations, get

IDS = ("iclr.attention_factorization", "iclr.gram_dependence", "iclr.bigram_invisible", "iclr.previous_token_gram")


def test_results_registered_with_sources_and_no_torch():
    registered = {r.id: r for r in all_results()}
    for result_id in IDS:
        result = registered[result_id]
        assert result.module == "derive.linear_attention_gram" and result.sources and result.derivation.steps
        assert check_equations(result) == []
    code = "import sys, derive.linear_attention_gram; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_factorization_needs_orthonormal_columns():
    """Negative control: with U, V general the substituted layer is not U @ M."""
    definitions = dict([lag.ATTN])
    plain = evaluate("at(Attn, X=U @ Sig @ V.T)", lag.SVD_PLAIN, definitions)
    M = evaluate("U @ Sig @ V.T @ W_Q @ W_K.T @ V @ Sig**2 @ V.T @ W_V", lag.SVD_PLAIN)
    assert plain != M
    assert evaluate("at(Attn, X=U @ Sig @ V.T)", lag.SVD, definitions) == evaluate(
        "U @ Sig @ V.T @ W_Q @ W_K.T @ V @ Sig**2 @ V.T @ W_V", lag.SVD)


def test_equivariance_needs_a_permutation():
    """Negative control: a general L×L mixing A does not commute with the layer."""
    general = declare(dims=["L"], matrices={"X": "L,d", "A": "L,L"})
    mixed = evaluate("at(Attn, X=A @ X)", general, dict([lag.ATTN]))
    assert mixed != evaluate("A @ Attn", general, dict([lag.ATTN]))


def test_the_two_contexts():
    numbers = lag.one_hot_numbers()["numbers"]
    a, b = numbers["a"], numbers["b"]
    assert np.array_equal(a["gram"], np.diag([2.0, 2.0, 2.0])) and np.array_equal(a["gram"], b["gram"])
    assert np.array_equal(a["last"], b["last"]) and a["last"][2] == 1
    assert not np.array_equal(a["bigrams"], b["bigrams"])
    assert np.argmax(a["prediction"]) == 0 and np.argmax(b["prediction"]) == 1  # 2 -> 0 in a, 2 -> 1 in b


def test_bigram_counts_by_counting():
    """C = X.T @ S.T @ X, evaluated from the engine's polynomial, equals the bigrams counted directly."""
    rng = np.random.default_rng(0)
    C = evaluate("X.T @ S.T @ X", lag.ONE_HOT)
    for _ in range(5):
        tokens = rng.integers(0, 3, size=9)
        counts = np.zeros((3, 3))
        for before, after in zip(tokens[:-1], tokens[1:]):
            counts[before, after] += 1
        assert np.array_equal(C.evaluate({"X": lag.one_hot(tokens), "S": lag.down_shift(9)}), counts)


def test_previous_token_readout_tells_the_contexts_apart():
    values = get("iclr.previous_token_gram").derivation.values
    readout = {}
    for label, tokens in (("a", lag.CONTEXT_A), ("b", lag.CONTEXT_B)):
        at = {"X": lag.one_hot(tokens), "S": lag.down_shift(len(tokens)), "e": lag.last_basis_vector(len(tokens))}
        readout[label] = values["readout"].evaluate(at)
    assert readout["a"].tolist() == [1.0, 0.0, 0.0] and readout["b"].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("fmt", ["text", "json", "latex"])
def test_show(fmt):
    for result_id in IDS:
        out = subprocess.run([sys.executable, "-m", "derive", "show", result_id, "--format", fmt],
                             capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout and not out.stderr, out.stderr
