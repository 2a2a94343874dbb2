"""The registry: one declaration per result; every stated equation holds, symbolically and at numbers.

The statement test reads each equation of each result in its context and asks
(1) the engine whether both sides are the same polynomial (``check_equations``)
and (2) whether they agree numerically at a random point (every matrix,
vector and scalar drawn at random with the declared shape and properties).
A result whose stated equation is deliberately wrong must be rejected by both.
"""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from derive.engine.grammar import parse
from derive.engine.printing import prose
from derive.registry import Equation, all_results, check_equations, get
from derive.report import context_assumptions

SIZES = {"d": 3, "L": 4, "r": 2, "K": 3, "N": 5, "M": 4, "ell": 6, "n": 6, "m": 2}


def random_values(context, names, rng) -> dict:
    """Random values of the declared shapes: SPD, symmetric, orthonormal and orthogonal where declared."""
    values = dict(SIZES)

    def size(dim):
        return 1 if dim == 1 else SIZES[dim]

    for name in names:
        kind = context.kind(name)
        if kind == "vector":
            values[name] = rng.standard_normal(size(context.vectors[name]))
        elif kind == "scalar":
            values[name] = float(rng.uniform(0.5, 1.5)) if name in context.positive else float(rng.standard_normal())
        elif kind == "matrix":
            rows, cols = (size(s) for s in context.matrix_shape(name))
            G = rng.standard_normal((rows, cols))
            if name in context.spd:
                values[name] = G @ G.T / rows + np.eye(rows)
            elif name in context.symmetric:
                values[name] = G + G.T
            elif name in context.orthonormal or name in context.orthogonal:
                values[name] = np.linalg.qr(G)[0][:, :cols]
            else:
                values[name] = G
    return values


EQUATIONS = [(r.id, k) for r in all_results() for k in range(len(r.equations))]


@pytest.mark.parametrize("result_id", [r.id for r in all_results()])
def test_every_stated_equation_is_the_derivation(result_id):
    assert check_equations(get(result_id)) == []


@pytest.mark.parametrize("result_id, k", EQUATIONS, ids=[f"{i}[{k}]" for i, k in EQUATIONS])
def test_every_stated_equation_holds_at_a_random_point(result_id, k):
    result = get(result_id)
    lhs, rhs = result.sides(result.equations[k])
    values = random_values(result.context, lhs.symbols() | rhs.symbols(), np.random.default_rng(k + 17))
    left, right = np.asarray(lhs.evaluate(values)), np.asarray(rhs.evaluate(values))
    scale = max(1.0, float(np.max(np.abs(left), initial=0.0)))
    assert left.shape == right.shape and np.max(np.abs(left - right), initial=0.0) <= 1e-9 * scale


def test_a_wrong_statement_is_rejected():
    """Negative control: the fourth moment with the Aᵀ term dropped, and the LSA Γ without its tr(Λ)/N term."""
    for result_id, index, wrong in (("gaussian.isserlis_4", 0, "Lambda @ A @ Lambda + tr(A @ Lambda) * Lambda"),
                                    ("lsa.reduced_loss", 1, "(1 + 1/N) * Lambda"),
                                    ("iclr.attention_factorization", 0, "U @ Sig @ V.T @ W_Q @ W_K.T @ V @ V.T @ W_V")):
        right = get(result_id)
        equations = list(right.equations)
        equations[index] = dataclasses.replace(equations[index], rhs=wrong)
        result = dataclasses.replace(right, equations=tuple(equations))
        object.__setattr__(result, "module", right.module)
        problems = check_equations(result)
        assert problems and all("\n" not in p for p in problems), result_id
        lhs, rhs = result.sides(result.equations[index])
        values = random_values(result.context, lhs.symbols() | rhs.symbols(), np.random.default_rng(3))
        assert not np.allclose(lhs.evaluate(values), rhs.evaluate(values), rtol=1e-6)


def test_ids_unique_namespaced_with_equations_and_sources():
    ids = [r.id for r in all_results()]
    assert len(ids) == len(set(ids))
    for r in all_results():
        assert "." in r.id and r.title and r.equations and r.sources and r.module.startswith("derive.")
        for equation in r.equations:
            assert isinstance(equation, Equation)


def test_every_result_derives_with_steps_in_the_grammar():
    for r in all_results():
        assert r.derivation.steps, r.id
        for step in r.derivation.steps:
            parse(step.lhs)
            for fmt in ("text", "latex", "markdown"):
                prose(step.because, fmt)
        for text in (r.title, *r.assumptions, *r.remarks, *context_assumptions(r)):
            prose(text, "latex")


def test_get_unknown_id_names_the_known_ones():
    with pytest.raises(KeyError, match="gaussian.isserlis_4"):
        get("no.such.result")


def test_derive_never_imports_torch():
    code = ("import sys, importlib, pkgutil, derive\n"
            "for m in pkgutil.iter_modules(derive.__path__): importlib.import_module('derive.' + m.name)\n"
            "from derive.registry import all_results\n"
            "[r.derivation for r in all_results()]\n"
            "assert 'torch' not in sys.modules, 'derive imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_listing_cli():
    out = subprocess.run([sys.executable, "-m", "derive"], capture_output=True, text=True)
    assert out.returncode == 0
    for r in all_results():
        assert r.id in out.stdout
