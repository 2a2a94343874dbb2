"""The LSA optimum chain (``derive.lsa_optimum``) against an independent oracle and the paper.

* ``lsa.population_loss`` is compared with ``tests/lsa_oracle.py``: the model's
  own forward pass with FULL W^PV, W^KQ (every entry outside the four named
  blocks random and nonzero), integrated exactly by Gauss–Hermite quadrature.
  The same comparison rejects deliberately wrong losses (query column dropped
  from Z, normalization 1/N dropped, wrong N).
* each later step is compared with the closed form stated in the paper
  (typed here as the expected value) symbolically, and numerically at random points, with a
  negative control each (Γ at N → ∞, U11 = cΛ⁻¹, u12 ≠ 0).
* the command line: JSON round trip, numbers, bad input, text and LaTeX.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lsa_oracle as oracle
from derive.engine import grammar
from derive import lsa_optimum
from derive.engine.polynomial import Polynomial
from derive.registry import get

ROOT = Path(__file__).resolve().parent.parent
DECL = lsa_optimum.DECL
CTX = lsa_optimum.context()  # DECL with Γ defined, as the chain defines it
LSA_IDS = ["lsa.prediction", "lsa.population_loss", "lsa.invariant_subspace", "lsa.reduced_loss",
           "lsa.minimizer", "lsa.balanced_invariant"]
EXACT = 1e-10  # relative agreement required between the derived loss and the oracle


def values_of(result_id: str) -> dict:
    return get(result_id).derivation.values


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300))


def random_spd(rng, d: int) -> np.ndarray:
    A = rng.standard_normal((d, d))
    return A @ A.T + 0.5 * np.eye(d)


def random_nonzero(rng, shape=()):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 1.3, size=shape)


def random_point(seed: int, d: int = 2) -> dict:
    """Λ SPD, U11 non-symmetric, u12, u21, u: every entry nonzero."""
    rng = np.random.default_rng(seed)
    point = {"Lambda": random_spd(rng, d), "U11": random_nonzero(rng, (d, d)), "u12": random_nonzero(rng, d),
             "u21": random_nonzero(rng, d), "u": float(random_nonzero(rng))}
    assert d == 1 or not np.allclose(point["U11"], point["U11"].T)
    return point


def oracle_loss(point: dict, N: int, seed: int, brute_force: bool = True) -> float:
    """The oracle at ``point`` with W^PV, W^KQ's other entries random nonzero (drawn from ``seed``)."""
    d = point["Lambda"].shape[0]
    W_PV, W_KQ = oracle.full_matrices(d, point["U11"], point["u12"], point["u21"], point["u"],
                                      np.random.default_rng(seed))
    if brute_force:
        return oracle.population_loss(point["Lambda"], W_PV, W_KQ, N)
    return oracle.population_loss_w_analytic(point["Lambda"], W_PV, W_KQ, N)


def central_gradient(f, point: dict, names, h: float = 1e-2) -> dict:
    """Central differences of ``f(point)`` in every entry of ``point[name]``.

    Exact up to rounding for the functions used here: the loss is a quadratic
    in each single coordinate of W^PV and W^KQ (ŷ is linear in each).
    """
    grads = {}
    for name in names:
        base = np.asarray(point[name], float)
        grad = np.zeros(base.shape)
        for index in np.ndindex(base.shape):
            shifted = []
            for sign in (1, -1):
                value = base.copy()
                value[index] += sign * h
                shifted.append(f({**point, name: value if value.shape else float(value)}))
            grad[index] = (shifted[0] - shifted[1]) / (2 * h)
        grads[name] = grad
    return grads


def gamma_numpy(Lambda: np.ndarray, N: int) -> np.ndarray:
    """Γ = (1 + 1/N)Λ + tr(Λ)/N·I, the paper's closed form."""
    return (1 + 1 / N) * Lambda + np.trace(Lambda) / N * np.eye(len(Lambda))


# ---------------------------------------------------------------- the oracle itself

def test_oracle_zero_model_and_quadrature_is_exact():
    point = random_point(0)
    d, Lambda = 2, point["Lambda"]
    W_PV, W_KQ = np.zeros((d + 1, d + 1)), np.zeros((d + 1, d + 1))
    assert oracle.population_loss(Lambda, W_PV, W_KQ, 2) == pytest.approx(np.trace(Lambda) / 2, rel=1e-13)
    W_PV, W_KQ = oracle.full_matrices(d, point["U11"], point["u12"], point["u21"], point["u"],
                                      np.random.default_rng(1))
    four = oracle.population_loss(Lambda, W_PV, W_KQ, 2)
    five = oracle.population_loss(Lambda, W_PV, W_KQ, 2, nodes_x=5, nodes_q=5, nodes_w=5)
    fewer = oracle.population_loss(Lambda, W_PV, W_KQ, 2, nodes_x=3, nodes_q=4, nodes_w=3)
    analytic = oracle.population_loss_w_analytic(Lambda, W_PV, W_KQ, 2)
    assert rel(four, five) < 1e-12 and rel(four, fewer) < 1e-12 and rel(four, analytic) < 1e-12
    # too few nodes for the sixth moment of x_q is NOT exact: the degree count matters
    assert rel(four, oracle.population_loss(Lambda, W_PV, W_KQ, 2, nodes_q=3)) > 1e-6
    # plain sampling agrees within its error bar
    mean, stderr = oracle.monte_carlo_loss(Lambda, W_PV, W_KQ, 2, 200_000, np.random.default_rng(2))
    assert abs(mean - four) < 5 * stderr


def test_oracle_embedding_and_prediction_entry():
    rng = np.random.default_rng(3)
    d, N = 2, 3
    X, xq, w = rng.standard_normal((N, d)), rng.standard_normal(d), rng.standard_normal(d)
    E = oracle.embedding(X, xq, w)
    assert E.shape == (d + 1, N + 1)
    assert np.allclose(E[:d, :N], X.T) and np.allclose(E[:d, N], xq)
    assert np.allclose(E[d, :N], X @ w) and E[d, N] == 0
    W_PV, W_KQ = random_nonzero(rng, (d + 1, d + 1)), random_nonzero(rng, (d + 1, d + 1))
    f = E + W_PV @ E @ (E.T @ W_KQ @ E) / N
    assert oracle.prediction(X, xq, w, W_PV, W_KQ) == pytest.approx(f[d, N], rel=1e-14)


def test_prediction_ignores_the_other_blocks_but_not_the_named_ones():
    rng = np.random.default_rng(4)
    d, N, B = 2, 3, 50
    point = random_point(5)
    X, xq, w = rng.standard_normal((B, N, d)), rng.standard_normal((B, d)), rng.standard_normal((B, d))
    one = oracle.full_matrices(d, point["U11"], point["u12"], point["u21"], point["u"], np.random.default_rng(6))
    two = oracle.full_matrices(d, point["U11"], point["u12"], point["u21"], point["u"], np.random.default_rng(7))
    assert not np.allclose(one[0], two[0]) and not np.allclose(one[1], two[1])
    assert np.allclose(oracle.prediction(X, xq, w, *one), oracle.prediction(X, xq, w, *two), rtol=1e-12, atol=1e-12)
    for name in ("U11", "u12", "u21", "u"):  # control: each named block does matter
        moved = {**point, name: point[name] + 0.5}
        three = oracle.full_matrices(d, moved["U11"], moved["u12"], moved["u21"], moved["u"], np.random.default_rng(6))
        assert not np.allclose(oracle.prediction(X, xq, w, *one), oracle.prediction(X, xq, w, *three)), name


# ---------------------------------------------------------------- lsa.prediction

def test_prediction_step_matches_paper_and_oracle():
    values = values_of("lsa.prediction")
    blocks = {"WPV11", "wpv12", "u12", "u", "U11", "wkq12", "u21", "wkq22"}
    assert sorted(values["prediction"].symbols() & blocks) == ["U11", "u", "u12", "u21"]
    steps = get("lsa.prediction").derivation.steps
    assert steps[-1].math.is_zero()
    assert (values["prediction"] - values["quadratic_form"]).is_zero()
    # numerically: the block formula at Z = EEᵀ/N equals the oracle's forward pass
    rng = np.random.default_rng(8)
    d, N = 2, 3
    point = random_point(9)
    W_PV, W_KQ = oracle.full_matrices(d, point["U11"], point["u12"], point["u21"], point["u"], rng)
    for _ in range(3):
        X, xq, w = rng.standard_normal((N, d)), rng.standard_normal(d), rng.standard_normal(d)
        E = oracle.embedding(X, xq, w)
        Z = E @ E.T / N
        at = {"Z11": Z[:d, :d], "z12": Z[:d, d], "z22": Z[d, d], "q": xq, "U11": point["U11"],
              "u12": point["u12"], "u21": point["u21"], "u": point["u"]}
        expected = oracle.prediction(X, xq, w, W_PV, W_KQ)
        assert rel(values["prediction"].evaluate(at, d, N), expected) < 1e-12


# ---------------------------------------------------------------- lsa.population_loss vs the oracle

@pytest.mark.parametrize("d,N,seed,brute_force", [(2, 2, 10, True), (2, 3, 11, True), (2, 2, 12, True),
                                                   (1, 1, 13, True), (3, 2, 14, False)])
def test_population_loss_equals_oracle(d, N, seed, brute_force):
    loss = values_of("lsa.population_loss")["population_loss"]
    point = random_point(seed, d)
    expected = oracle_loss(point, N, seed + 100, brute_force)
    derived = loss.evaluate(point, d=d, N=N)
    assert rel(derived, expected) < EXACT, (d, N, derived, expected)


@pytest.mark.parametrize("N", [2, 3])
def test_wrong_losses_are_rejected_by_the_oracle(N):
    loss = values_of("lsa.population_loss")["population_loss"]
    point = random_point(20 + N)
    brute_force = N == 2  # N = 3 by brute force is in test_population_loss_equals_oracle
    expected = oracle_loss(point, N, 30 + N, brute_force)
    assert rel(loss.evaluate(point, d=2, N=N), expected) < EXACT  # the comparison accepts the right one
    no_query = lsa_optimum.population_loss(query=False)  # query column dropped from Z
    assert no_query != loss
    assert rel(no_query.evaluate(point, d=2, N=N), expected) > 1e-3
    # ρ = 1 instead of N: ŷ is linear in W^PV, so dropping 1/N is W^PV → N·W^PV in the loss
    no_normalization = loss.substitute({"u": "N * u", "u12": "N * u12"})
    assert rel(no_normalization.evaluate(point, d=2, N=N), expected) > 1e-3
    d = 2
    W_PV, W_KQ = oracle.full_matrices(d, point["U11"], point["u12"], point["u21"], point["u"],
                                      np.random.default_rng(30 + N))
    integrate = oracle.population_loss if brute_force else oracle.population_loss_w_analytic
    rho_one = integrate(point["Lambda"], N * W_PV, W_KQ, N)  # the model with ρ = 1
    assert rel(no_normalization.evaluate(point, d=2, N=N), rho_one) < EXACT  # so the control is that model
    # the right formula at the wrong N (e.g. normalizing by the N + 1 columns)
    assert rel(loss.evaluate(point, d=2, N=N + 1), expected) > 1e-3


# ---------------------------------------------------------------- lsa.invariant_subspace

def test_invariant_subspace():
    values = values_of("lsa.invariant_subspace")
    assert set(values["at_zero"]) == {"u12", "u21"}
    for name, grad in values["at_zero"].items():
        assert grad.is_zero(), (name, grad.text())
    loss = values_of("lsa.population_loss")["population_loss"]
    f = lambda p: loss.evaluate(p, d=2, N=3)  # noqa: E731
    point = random_point(40)
    # at a NONZERO u12 the gradient is not zero, and the symbolic gradient is the numeric one
    numeric = central_gradient(f, point, ["u12", "u21"])
    for name in ("u12", "u21"):
        symbolic = values["gradients"][name].evaluate(point, d=2, N=3)
        assert np.linalg.norm(numeric[name]) > 1e-2, name
        assert rel(symbolic, numeric[name]) < 1e-8, (name, symbolic, numeric[name])
    # on u12 = u21 = 0 the numeric gradient vanishes too (of the oracle, up to rounding)
    zero = {**point, "u12": np.zeros(2), "u21": np.zeros(2)}
    numeric = central_gradient(lambda p: oracle_loss(p, 2, 41), zero, ["u12", "u21"], h=0.1)
    for name in ("u12", "u21"):
        assert np.max(np.abs(numeric[name])) < 1e-10, (name, numeric[name])


# ---------------------------------------------------------------- lsa.reduced_loss

def test_reduced_loss_matches_paper():
    result = get("lsa.reduced_loss")
    values = result.derivation.values
    assert values["reduced_loss"] == Polynomial.of("tr(u**2/2 * Gamma @ Lambda @ U11 @ Lambda @ U11.T "
                                                   "- u * Lambda**2 @ U11.T)", CTX)  # the paper's form
    assert values["Gamma"] == Polynomial.of("(1 + 1/N) * Lambda + tr(Lambda)/N * I", DECL)
    assert values["Gamma_moment"] == values["Gamma"] and values["moment_residual"].is_zero()
    assert values["reduction_residual"].is_zero()
    assert values["constant"] == Polynomial.of("tr(Lambda) / 2", DECL)
    infinite_N = Polynomial.of("Lambda", DECL)  # Γ without its 1/N terms
    assert values["Gamma"] != infinite_N
    wrong_reduced = Polynomial.of("tr(u**2/2 * Lambda @ Lambda @ U11 @ Lambda @ U11.T - u * Lambda**2 @ U11.T)", DECL)
    assert values["reduced_loss"] != wrong_reduced


@pytest.mark.parametrize("N", [1, 2, 5])
def test_reduced_loss_numerically(N):
    values = values_of("lsa.reduced_loss")
    point = random_point(50 + N)
    Lambda = point["Lambda"]
    assert rel(values["Gamma"].evaluate(point, d=2, N=N), gamma_numpy(Lambda, N)) < 1e-13
    assert rel(Polynomial.of("Gamma", CTX).evaluate(point, d=2, N=N), gamma_numpy(Lambda, N)) < 1e-13
    restricted = {**point, "u12": np.zeros(2), "u21": np.zeros(2)}
    full = values_of("lsa.population_loss")["population_loss"].evaluate(restricted, d=2, N=N)
    reduced = values["reduced_loss"].evaluate(point, d=2, N=N)
    assert rel(values["restricted_loss"].evaluate(point, d=2, N=N), full) < 1e-12
    assert rel(full, reduced + np.trace(Lambda) / 2) < 1e-12
    # ℓ̃ as the paper writes it, in numpy
    U, u, G = point["U11"], point["u"], gamma_numpy(Lambda, N)
    paper = np.trace(u ** 2 / 2 * G @ Lambda @ U @ Lambda @ U.T - u * Lambda @ Lambda @ U.T)
    assert rel(reduced, paper) < 1e-12
    if N <= 2:  # and the oracle, with the other entries of W^PV, W^KQ random
        assert rel(oracle_loss(restricted, N, 60 + N), paper + np.trace(Lambda) / 2) < EXACT


# ---------------------------------------------------------------- lsa.minimizer

def test_minimizer_matches_paper():
    result = get("lsa.minimizer")
    values = result.derivation.values
    assert values["minimizer"]["U11"] == Polynomial.of("c * inv(Gamma)", CTX)  # the paper's forms
    assert values["minimizer"]["u"] == Polynomial.of("1/c", DECL)
    assert values["minimum"] == Polynomial.of("-tr(Lambda**2 @ inv(Gamma)) / 2", CTX)
    assert values["excess_residual"].is_zero()
    assert values["global_minimizer_product"] == Polynomial.of("inv(Gamma)", CTX)
    assert values["minimizer"]["U11"] != Polynomial.of("c * inv(Lambda)", DECL)  # the N → ∞ answer


@pytest.mark.parametrize("N,c", [(2, 1.0), (3, -0.7), (4, 2.5)])
def test_minimizer_numerically(N, c):
    reduced = values_of("lsa.reduced_loss")["reduced_loss"]
    values = values_of("lsa.minimizer")
    point = random_point(70 + N)
    Lambda = point["Lambda"]
    G_inv = np.linalg.inv(gamma_numpy(Lambda, N))
    minimum = -0.5 * np.trace(Lambda @ Lambda @ G_inv)
    f = lambda p: reduced.evaluate(p, d=2, N=N)  # noqa: E731
    at = {**point, "U11": c * G_inv, "u": 1 / c, "c": c}
    assert rel(values["minimizer"]["U11"].evaluate(at, d=2, N=N), c * G_inv) < 1e-12
    assert rel(values["minimum"].evaluate(at, d=2, N=N), minimum) < 1e-12
    assert rel(f(at), minimum) < 1e-12
    grad = central_gradient(f, at, ["U11", "u"], h=1e-3)
    assert max(np.max(np.abs(g)) for g in grad.values()) < 1e-9, grad
    for seed in range(3):  # a global minimum: never undercut, and the excess identity holds
        rng = np.random.default_rng(seed)
        other = {**point, "U11": random_nonzero(rng, (2, 2)), "u": float(random_nonzero(rng))}
        assert f(other) >= minimum
        M = (np.linalg.cholesky(gamma_numpy(Lambda, N)).T @ (other["u"] * _sqrtm(Lambda) @ other["U11"] @ _sqrtm(Lambda)
                                                            - Lambda @ G_inv))
        assert rel(f(other) - minimum, 0.5 * np.sum(M ** 2)) < 1e-10
    # negative control: the N → ∞ answer U11 = cΛ⁻¹ is not stationary at finite N
    wrong = {**point, "U11": c * np.linalg.inv(Lambda), "u": 1 / c}
    grad = central_gradient(f, wrong, ["U11", "u"], h=1e-3)
    assert max(np.max(np.abs(g)) for g in grad.values()) > 1e-2


def _sqrtm(S: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(S)
    return (v * np.sqrt(w)) @ v.T


def test_minimum_of_the_model_itself():
    """End to end: the oracle (full W^PV, W^KQ) is stationary at U11 = cΓ⁻¹, u = 1/c, u12 = u21 = 0."""
    N, c = 2, 0.8
    point = random_point(80)
    Lambda = point["Lambda"]
    G_inv = np.linalg.inv(gamma_numpy(Lambda, N))
    at = {**point, "U11": c * G_inv, "u": 1 / c, "u12": np.zeros(2), "u21": np.zeros(2)}
    f = lambda p: oracle_loss(p, N, 81, brute_force=False)  # noqa: E731  (19 calls: w integrated in closed form)
    assert rel(f(at), np.trace(Lambda) / 2 - 0.5 * np.trace(Lambda @ Lambda @ G_inv)) < EXACT
    grad = central_gradient(f, at, ["U11", "u", "u12", "u21"], h=0.1)
    assert max(np.max(np.abs(g)) for g in grad.values()) < 1e-10, grad
    wrong = {**at, "U11": c * np.linalg.inv(Lambda)}  # negative control
    grad = central_gradient(f, wrong, ["U11"], h=0.1)
    assert np.max(np.abs(grad["U11"])) > 1e-2


# ---------------------------------------------------------------- lsa.balanced_invariant

def test_balanced_invariant_matches_paper():
    result = get("lsa.balanced_invariant")
    values = result.derivation.values
    for name in ("d_invariant", "scaling", "euler"):
        assert values[name].is_zero(), (name, values[name].text())
    assert values["balanced_invariant"] == Polynomial.of("u**2 - tr(U11 @ U11.T)", DECL)
    assert values["flow_limit"]["U11"] == Polynomial.of("tr(inv(Gamma)**2)**(-1/4) * inv(Gamma)", CTX)
    assert values["flow_limit"]["u"] == Polynomial.of("tr(inv(Gamma)**2)**(1/4)", CTX)


@pytest.mark.parametrize("N", [1, 3])
def test_flow_limit_numerically(N):
    values = values_of("lsa.balanced_invariant")
    point = random_point(90 + N)
    Lambda = point["Lambda"]
    G_inv = np.linalg.inv(gamma_numpy(Lambda, N))
    U = values["flow_limit"]["U11"].evaluate(point, d=2, N=N)
    u = values["flow_limit"]["u"].evaluate(point, d=2, N=N)
    assert u > 0
    assert rel(u ** 2, np.trace(U @ U.T)) < 1e-12
    assert rel(u * U, G_inv) < 1e-12
    # the flow field is −∇ℓ̃ of the paper's ℓ̃ (numpy gradients)
    G = gamma_numpy(Lambda, N)
    grad_U = lambda U, u: u ** 2 * G @ Lambda @ U @ Lambda - u * Lambda @ Lambda  # noqa: E731
    grad_u = lambda U, u: u * np.trace(G @ Lambda @ U @ Lambda @ U.T) - np.trace(Lambda @ Lambda @ U.T)  # noqa: E731
    flow = values["flow"]
    assert rel(flow["U11"].evaluate(point, d=2, N=N), -grad_U(point["U11"], point["u"])) < 1e-12
    assert rel(flow["u"].evaluate(point, d=2, N=N), -grad_u(point["U11"], point["u"])) < 1e-12
    # integrate the flow from a balanced start: the invariant stays 0 and the limit is the derived one
    from scipy.integrate import solve_ivp

    rng = np.random.default_rng(95)
    Theta = rng.standard_normal((2, 2))
    T = Theta @ Theta.T / np.linalg.norm(Theta @ Theta.T)
    sigma = 0.1

    def rhs(_, y):
        U, u = y[:4].reshape(2, 2), y[4]
        return np.concatenate([-grad_U(U, u).ravel(), [-grad_u(U, u)]])

    y0 = np.concatenate([(sigma * T).ravel(), [sigma]])
    solution = solve_ivp(rhs, (0, 400 / min(1.0, np.min(np.linalg.eigvalsh(Lambda)) ** 2)), y0,
                         rtol=1e-11, atol=1e-13, method="LSODA")
    assert solution.success
    U_end, u_end = solution.y[:4, -1].reshape(2, 2), solution.y[4, -1]
    invariant = solution.y[4] ** 2 - np.sum(solution.y[:4] ** 2, axis=0)
    assert np.max(np.abs(invariant)) < 1e-8
    assert rel(U_end, U) < 1e-6 and rel(u_end, u) < 1e-6


# ---------------------------------------------------------------- the command line

LAMBDA = "[[2,0.5],[0.5,1]]"
BAD_INPUTS = {
    "not square": ["--Lambda", "[[1,2,3],[4,5,6]]", "--N", "3"],
    "not symmetric": ["--Lambda", "[[2,1],[0,1]]", "--N", "3"],
    "not positive definite": ["--Lambda", "[[1,2],[2,1]]", "--N", "3"],
    "NaN": ["--Lambda", "[[NaN,0],[0,1]]", "--N", "3"],
    "not JSON": ["--Lambda", "[[1,0],[0,1", "--N", "3"],
    "N = 0": ["--Lambda", LAMBDA, "--N", "0"],
    "N = -1": ["--Lambda", LAMBDA, "--N", "-1"],
    "Lambda without N": ["--Lambda", LAMBDA],
}
MORE_BAD_INPUTS = {  # checked in-process (cheaper): the same run() wrapper as ``python -m``
    "ragged": ["--Lambda", "[[1,2],[3]]", "--N", "3"],
    "empty": ["--Lambda", "[]", "--N", "3"],
    "infinite": ["--Lambda", "[[Infinity,0],[0,1]]", "--N", "3"],
    "N not an integer": ["--Lambda", LAMBDA, "--N", "two"],
    "N without Lambda": ["--N", "4"],
    "bad format": ["--format", "xml"],
    "unknown option": ["--samples", "3"],
}
GOOD_RUNS = {
    "json numbers": ["--format", "json", "--Lambda", LAMBDA, "--N", "4"],
    "text numbers": ["--Lambda", LAMBDA, "--N", "4"],
    "latex": ["--format", "latex"],
}


@pytest.fixture(scope="module")
def cli_runs() -> dict:
    """Every command-line run of this file, started together (each pays the imports)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = {name: subprocess.Popen([sys.executable, "-m", "derive.lsa_optimum", *args], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in {**GOOD_RUNS, **BAD_INPUTS}.items()}
    done = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        done[name] = (process.returncode, stdout, stderr)
    return done


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(cli_runs, name):
    rc, stdout, stderr = cli_runs[name]
    assert rc == 2, (name, rc, stderr)
    assert "Traceback" not in stderr, (name, stderr)
    assert len(stderr.strip().splitlines()) == 1, (name, stderr)
    assert "error" in stderr, (name, stderr)
    assert stdout == "", (name, stdout)


@pytest.mark.parametrize("name", list(MORE_BAD_INPUTS))
def test_more_bad_input_in_process(capsys, name):
    rc = lsa_optimum.run(lsa_optimum.main, MORE_BAD_INPUTS[name])
    out, err = capsys.readouterr()
    assert rc == 2, (name, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), (name, err)
    assert out == "", (name, out)


def _flatten(payload: dict, prefix: str = ""):
    for key, value in payload.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _registered_values() -> dict:
    reduced, minimizer = values_of("lsa.reduced_loss"), values_of("lsa.minimizer")
    balanced = values_of("lsa.balanced_invariant")
    return {"population_loss": values_of("lsa.population_loss")["population_loss"],
            "reduced_loss": reduced["reduced_loss"], "Gamma": reduced["Gamma"],
            "minimizer.U11": minimizer["minimizer"]["U11"], "minimizer.u": minimizer["minimizer"]["u"],
            "minimum": minimizer["minimum"], "balanced_invariant": balanced["balanced_invariant"],
            "flow_limit.U11": balanced["flow_limit"]["U11"], "flow_limit.u": balanced["flow_limit"]["u"]}


def test_json_round_trip(cli_runs):
    rc, stdout, stderr = cli_runs["json numbers"]
    assert rc == 0, stderr
    payload = json.loads(stdout)
    assert isinstance(payload.pop("numbers"), dict)  # checked in test_numbers_json
    assert set(payload) == {"population_loss", "reduced_loss", "Gamma", "minimizer", "minimum",
                            "balanced_invariant", "flow_limit"}
    assert set(payload["minimizer"]) == {"U11", "u"} and set(payload["flow_limit"]) == {"U11", "u"}
    registered = _registered_values()
    strings = dict(_flatten(payload))
    assert set(strings) == set(registered)
    gamma_text = f"({strings['Gamma']})"
    point = {**random_point(100), "c": 0.7}
    allowed = {"U11", "u12", "u21", "u", "Lambda", "N", "d", "I", "c"}
    for key, text in strings.items():
        assert isinstance(text, str), key
        grammar.parse(text)  # parses back
        tree = ast.parse(text, mode="eval")
        functions = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call)}
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - functions
        assert functions <= {"tr", "inv"}, (key, functions)
        assert used <= allowed, (key, used - allowed)
        again = Polynomial.of(text, DECL)
        # Γ is printed written out; the registered value has the letter Γ: write it out there too
        assert again == registered[key].substitute({"Gamma": gamma_text}), key
        for N in (1, 3):
            assert rel(again.evaluate(point, d=2, N=N), registered[key].evaluate(point, d=2, N=N)) < 1e-12, (key, N)


def _check_numbers(numbers: dict):
    Lambda = np.array(json.loads(LAMBDA))
    N = 4
    G = (1 + 1 / N) * Lambda + np.trace(Lambda) / N * np.eye(2)
    G_inv = np.linalg.inv(G)
    assert numbers["d"] == 2 and numbers["N"] == N
    assert rel(numbers["Gamma"], G) < 1e-13
    assert rel(numbers["minimum"], -0.5 * np.trace(Lambda @ Lambda @ G_inv)) < 1e-13
    assert rel(numbers["minimizer_c1"]["U11"], G_inv) < 1e-13 and numbers["minimizer_c1"]["u"] == 1.0
    U, u = np.array(numbers["flow_limit"]["U11"]), numbers["flow_limit"]["u"]
    assert rel(u * U, G_inv) < 1e-12 and rel(u ** 2, np.sum(U ** 2)) < 1e-12


def test_numbers_json(cli_runs):
    rc, stdout, stderr = cli_runs["json numbers"]
    assert rc == 0, stderr
    _check_numbers(json.loads(stdout)["numbers"])


def test_text_format(cli_runs):
    rc, stdout, stderr = cli_runs["text numbers"]
    assert rc == 0, stderr
    for result_id in LSA_IDS:
        assert result_id in stdout, result_id
    assert {r.id for r in lsa_optimum.RESULTS} == set(LSA_IDS)
    numbers = {}
    for line in stdout.split(f"At Lambda = {LAMBDA}, N = 4:")[1].strip().splitlines():
        key, value = line.strip().split(": ", 1)
        numbers[key] = json.loads(value)
    _check_numbers(numbers)


def test_latex_format(cli_runs):
    rc, stdout, stderr = cli_runs["latex"]
    assert rc == 0, stderr
    assert stdout.startswith("\\documentclass")
    assert "\\end{document}" in stdout
