"""``python -m derive eval`` on every built-in result, against the independent oracles of tests/.

Each result is evaluated at numbers through the command line (in process) and
its output compared with a computation that shares nothing with the engine:
the exact moment oracle and Gauss-Hermite quadrature (``tests/oracles.py``),
the numpy LSA forward pass and its quadrature (``tests/lsa_oracle.py``), and
plain numpy for the linear-attention identities.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import lsa_oracle as oracle
from derive.__main__ import main
from derive.cli import run
from derive.registry import all_results
from oracles import moment_expectation, random_spd

RNG = np.random.default_rng(2026)
D, N = 2, 2
LAMBDA = random_spd(RNG, D)
A, B = RNG.standard_normal((D, D)), RNG.standard_normal((D, D))
BLOCKS = {"U11": RNG.standard_normal((D, D)), "u12": RNG.standard_normal(D), "u21": RNG.standard_normal(D),
          "u": 0.8}


def evaluate(result_id: str, inputs: dict, capsys) -> dict:
    encoded = json.dumps({k: (np.asarray(v).tolist() if not isinstance(v, (int, float)) else v)
                          for k, v in inputs.items()})
    assert run(main, ["eval", result_id, "--at", encoded]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def close(a, b, rtol=1e-9):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(b).max()))


def lsa_loss(U11, u12, u21, u, N_=N) -> float:
    W_PV, W_KQ = oracle.full_matrices(D, U11, u12, u21, u, np.random.default_rng(0))
    return oracle.population_loss(LAMBDA, W_PV, W_KQ, N_)


def gamma_by_moments(N_=N) -> np.ndarray:
    """E[S²]Λ⁻¹ by the exact moment oracle."""
    second = moment_expectation("sum(i, x[i] @ x[i].T) @ sum(j, x[j] @ x[j].T) / N**2", {"x": "Lambda"},
                                values={"Lambda": LAMBDA}, d=D, N=N_)
    return second @ np.linalg.inv(LAMBDA)


def attention(X, W_Q, W_K, W_V):
    return X @ W_Q @ W_K.T @ X.T @ X @ W_V


# ---------------------------------------------------------------- one oracle comparison per result

def check_gaussian(result_id, capsys):
    expressions = {"gaussian.isserlis_4": "x @ x.T @ A @ x @ x.T",
                   "gaussian.quadratic_forms": "(x.T @ A @ x) * (x.T @ B @ x)",
                   "gaussian.isserlis_6": "x @ x.T @ A @ x @ x.T @ B @ x @ x.T",
                   "gaussian.sample_second_moment": "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2"}
    out = evaluate(result_id, {"Lambda": LAMBDA, "A": A, "B": B, "N": N}, capsys)
    exact = moment_expectation(expressions[result_id], {"x": "Lambda"}, values={"Lambda": LAMBDA, "A": A, "B": B},
                               d=D, N=N)
    first = out["equations"][0]
    assert close(first["lhs_value"], exact) and close(first["rhs_value"], exact)
    assert close(out["values"]["expectation"], exact)


def check_prediction(capsys):
    X, xq, w = RNG.standard_normal((N, D)), RNG.standard_normal(D), RNG.standard_normal(D)
    E = oracle.embedding(X, xq, w)
    Z = E @ E.T / N
    W_PV, W_KQ = oracle.full_matrices(D, BLOCKS["U11"], BLOCKS["u12"], BLOCKS["u21"], BLOCKS["u"],
                                      np.random.default_rng(1))
    inputs = {"Z11": Z[:D, :D], "z12": Z[:D, D], "z22": Z[D, D], "q": xq, **BLOCKS, "WPV11": W_PV[:D, :D],
              "wpv12": W_PV[:D, D], "wkq12": W_KQ[:D, D], "wkq22": W_KQ[D, D], "N": N}
    out = evaluate("lsa.prediction", inputs, capsys)
    assert close(out["values"]["prediction"], oracle.prediction(X, xq, w, W_PV, W_KQ))
    assert close(out["values"]["quadratic_form"], out["values"]["prediction"])


def check_population_loss(capsys):
    out = evaluate("lsa.population_loss", {"Lambda": LAMBDA, "N": N, **BLOCKS}, capsys)
    assert close(out["equations"][0]["rhs_value"], lsa_loss(**BLOCKS))


def check_invariant_subspace(capsys):
    out = evaluate("lsa.invariant_subspace", {"Lambda": LAMBDA, "N": N, **BLOCKS}, capsys)
    h = 1e-3  # the loss is quadratic in u12: a central difference is exact up to rounding
    numeric = []
    for k in range(D):
        step = np.eye(D)[k] * h
        plus = lsa_loss(BLOCKS["U11"], BLOCKS["u12"] + step, BLOCKS["u21"], BLOCKS["u"])
        minus = lsa_loss(BLOCKS["U11"], BLOCKS["u12"] - step, BLOCKS["u21"], BLOCKS["u"])
        numeric.append((plus - minus) / (2 * h))
    assert close(out["values"]["gradients.u12"], numeric, rtol=1e-6)
    assert close(out["values"]["at_zero.u12"], np.zeros(D))


def check_reduced_loss(capsys):
    out = evaluate("lsa.reduced_loss", {"Lambda": LAMBDA, "N": N, "U11": BLOCKS["U11"], "u": BLOCKS["u"],
                                        "A": A}, capsys)
    zero = np.zeros(D)
    assert close(out["values"]["restricted_loss"], lsa_loss(BLOCKS["U11"], zero, zero, BLOCKS["u"]))
    assert close(out["values"]["Gamma"], gamma_by_moments())


def check_minimizer(capsys):
    c = 1.3
    out = evaluate("lsa.minimizer", {"Lambda": LAMBDA, "N": N, "U11": BLOCKS["U11"], "u": BLOCKS["u"], "c": c},
                   capsys)
    Gamma = gamma_by_moments()
    zero = np.zeros(D)
    at_minimum = lsa_loss(c * np.linalg.inv(Gamma), zero, zero, 1 / c)
    assert close(out["values"]["minimum"], at_minimum - np.trace(LAMBDA) / 2)
    assert close(out["values"]["minimizer.U11"], c * np.linalg.inv(Gamma))


def check_balanced_invariant(capsys):
    out = evaluate("lsa.balanced_invariant", {"Lambda": LAMBDA, "N": N, "U11": BLOCKS["U11"], "u": BLOCKS["u"],
                                              "sigma": 0.3, "Theta": np.eye(D) / np.sqrt(D)}, capsys)
    U, u = np.asarray(out["values"]["flow_limit.U11"]), out["values"]["flow_limit.u"]
    zero = np.zeros(D)
    assert abs(u ** 2 - np.trace(U @ U.T)) < 1e-10  # balanced
    best = lsa_loss(np.linalg.inv(gamma_by_moments()), zero, zero, 1.0)  # any point of the family
    assert close(lsa_loss(U, zero, zero, u), best)  # a global minimizer


def check_attention(result_id, capsys):
    L, d, r, K = 5, 3, 2, 3
    W = {name: RNG.standard_normal((d, d)) for name in ("W_Q", "W_K", "W_V")}
    if result_id == "iclr.attention_factorization":
        U = np.linalg.qr(RNG.standard_normal((L, r)))[0]
        V = np.linalg.qr(RNG.standard_normal((d, r)))[0]
        Sig = np.diag(RNG.uniform(0.5, 2.0, r))
        out = evaluate(result_id, {"U": U, "V": V, "Sig": Sig, "X": U @ Sig @ V.T, **W}, capsys)
        assert close(out["values"]["factorized"], attention(U @ Sig @ V.T, **W))
        assert close(out["equations"][1]["lhs_value"], np.zeros((L, d)))
    elif result_id == "iclr.gram_dependence":
        X, P = RNG.standard_normal((L, d)), np.eye(L)[RNG.permutation(L)]
        out = evaluate(result_id, {"X": X, "P": P, "e": np.eye(L)[-1], "G": X.T @ X, **W}, capsys)
        assert close(out["values"]["permuted"], attention(P @ X, **W))
        assert close(out["values"]["last_row"], attention(X, **W)[-1])
    else:
        tokens = np.concatenate([RNG.permutation(K), RNG.integers(0, K, size=L - K)])  # every token occurs
        X = np.eye(K)[tokens]
        S, e = np.eye(L, k=-1), np.eye(L)[-1]
        Wk = {name: RNG.standard_normal((K, K)) for name in W}
        out = evaluate(result_id, {"X": X, "S": S, "e": e, "G": X.T @ X, **Wk}, capsys)
        counts = np.zeros((K, K))
        for before, after in zip(tokens[:-1], tokens[1:]):
            counts[before, after] += 1
        if result_id == "iclr.bigram_invisible":
            assert close(out["values"]["last_row"], attention(X, **Wk)[-1])
            assert close(out["values"]["bigrams"], counts)
        else:
            assert close(out["values"]["gram21"], counts)
            assert close(out["values"]["readout"], counts[tokens[-1]])


CHECKS = {"lsa.prediction": check_prediction, "lsa.population_loss": check_population_loss,
          "lsa.invariant_subspace": check_invariant_subspace, "lsa.reduced_loss": check_reduced_loss,
          "lsa.minimizer": check_minimizer, "lsa.balanced_invariant": check_balanced_invariant}


@pytest.mark.parametrize("result_id", [r.id for r in all_results() if r.module.startswith("derive.")])
def test_eval_agrees_with_an_independent_oracle(result_id, capsys):
    if result_id.startswith("gaussian."):
        check_gaussian(result_id, capsys)
    elif result_id.startswith("iclr."):
        check_attention(result_id, capsys)
    elif result_id.startswith("lu."):
        from test_lu_asymptotic import check_lu_eval

        check_lu_eval(result_id, capsys)
    elif result_id.startswith("incontext."):
        from test_incontext_eval import check_incontext_eval

        check_incontext_eval(result_id, capsys)
    else:
        CHECKS[result_id](capsys)


@pytest.mark.parametrize("argv, why", [
    (["eval", "lsa.minimizer", "--at", '{"Lambda": [[2, 0.5], [0.5, 1]], "N": 4}'], "needs values for"),
    (["eval", "lsa.minimizer", "--at", '{"Lambda": [[2, 0.5]], "N": 4, "U11": [[1]], "u": 1, "c": 1}'], "size"),
    (["eval", "lsa.minimizer", "--at", "[1, 2]"], "JSON object"),
    (["eval", "lsa.minimizer", "--at", "{nope"], "not JSON"),
    (["eval", "lsa.minimizer", "--at", '{"Lambda": "big"}'], "number"),
    (["eval", "lsa.minimizer"], "needs --at"),
    (["eval", "no.such"], "unknown result"),
    (["show"], "needs a result id"),
    (["list", "x"], "takes no result id"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2(argv, why, capsys):
    assert run(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and why in err, err


def test_list_json_has_equations_in_grammar_and_latex(capsys):
    assert run(main, ["--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in listed} == {r.id for r in all_results()}
    for entry in listed:
        assert entry["equations"] and all({"lhs", "rhs", "latex"} <= set(e) for e in entry["equations"])


# ---------------------------------------------------------------- the rest of Zhang, Frei & Bartlett (issue 11)
def check_test_error(capsys):
    import test_lsa_generalization as shifted

    inst = shifted.instance(5, N=3)
    inputs = {k: inst[k] for k in ("Lambda", "S", "Sq", "Psi", "sigma", "N")}
    got = evaluate("lsa.test_error", {**inputs, "M": 1}, capsys)["values"]["test_error"]
    assert close(got, shifted.quadrature_error(inst, 1))  # Gauss-Hermite over the forward pass


def check_covariate_shift(capsys):
    c = 1.7
    got = evaluate("lsa.covariate_shift", {"Lambda": LAMBDA, "c": c}, capsys)["values"]
    bias = c**2 * np.eye(D) - np.eye(D)  # S inv(Lambda) - I at S = c**2 Lambda
    assert close(got["limit_error"], np.trace(bias @ (c**2 * LAMBDA) @ bias.T))
    assert close(got["context_shift"], np.trace(bias @ LAMBDA @ bias.T))


def check_random_covariance(capsys):
    import test_lsa_random_covariance as mixture

    s, err = mixture.independent(2, 3, 5)  # sympy.stats over explicit Exponential(1) entries
    got = evaluate("lsa.random_covariance", {"d": 2, "N": 3, "M": 5}, capsys)["values"]
    assert close(got["scale"], float(s)) and close(got["test_error"], float(err))


def check_pl_inequality(capsys):
    theta = RNG.standard_normal((D, D))
    theta /= np.sqrt(np.linalg.norm(theta @ theta.T, "fro"))
    sigma = 0.3
    got = evaluate("lsa.pl_inequality", {"Lambda": LAMBDA, "N": N, "sigma": sigma, "Theta": theta}, capsys)["values"]
    G = (1 + 1 / N) * LAMBDA + np.trace(LAMBDA) / N * np.eye(D)
    U, u = sigma * theta @ theta.T, sigma
    start = 0.5 * u**2 * np.trace(G @ LAMBDA @ U @ LAMBDA @ U.T) - u * np.trace(LAMBDA @ LAMBDA @ U.T)
    u_low2 = -start / np.linalg.norm(LAMBDA @ LAMBDA, "fro")
    mu = 2 * u_low2 / (np.trace(np.linalg.inv(G) @ np.linalg.inv(LAMBDA)) * np.trace(np.linalg.inv(LAMBDA)))
    assert close(got["initial_loss"], start) and close(got["u_lower_squared"], u_low2) and close(got["mu"], mu)


CHECKS.update({"lsa.test_error": check_test_error, "lsa.covariate_shift": check_covariate_shift,
               "lsa.random_covariance": check_random_covariance, "lsa.pl_inequality": check_pl_inequality})
