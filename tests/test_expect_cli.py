"""python -m derive.expect: results, formats, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from derive.engine.pipeline import declare
from derive.engine.polynomial import Polynomial
from derive.engine.pipeline import expect


def cli(*args):
    return subprocess.run([sys.executable, "-m", "derive.expect", *args], capture_output=True, text=True)


def test_isserlis_example():
    out = cli("x @ x.T @ A @ x @ x.T", "--gaussian", "x:Lambda")
    assert out.returncode == 0, out.stderr
    got = Polynomial.of(out.stdout.strip(), declare(symmetric={"Lambda"}))
    want = Polynomial.of("Lambda @ A @ Lambda + Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda",
                         declare(symmetric={"Lambda"}))
    assert got == want


def test_json_round_trip():
    """The "expectation" string pastes back into the grammar and means the same thing."""
    text = "sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2 + (v.T @ w) * w @ w.T"
    out = cli(text, "--gaussian", "x:Lambda", "--gaussian", "w:I", "--vector", "v", "--format", "json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert {"expectation", "latex", "shape"} <= payload.keys()
    decl = declare(symmetric={"Lambda"}, vectors={"v"})
    again = Polynomial.of(payload["expectation"], decl)
    direct = expect(text, gaussians={"x": "Lambda", "w": "I"}, vectors=["v"])
    assert again == direct
    assert payload["shape"] == "d×d matrix"
    assert "\\Lambda" in payload["latex"]


def test_latex_format():
    out = cli("x.T @ A @ x", "--gaussian", "x:Lambda", "--format", "latex")
    assert out.stdout.strip() == r"\operatorname{tr}\left(A \Lambda\right)"


@pytest.mark.parametrize("args", [
    ["foo(x)", "--gaussian", "x:Lambda"],                     # unknown function
    ["tr(A, B)"],                                             # wrong arity
    ["inv()"],                                                # wrong arity
    ["x[i]", "--gaussian", "x:Lambda"],                       # index outside a sum
    ["sum(i, x[j] @ x[j].T)", "--gaussian", "x:Lambda"],      # undeclared index
    ["A * v", "--vector", "v"],                               # matrix * vector
    ["v * v", "--vector", "v"],                               # vector * vector
    ["A @ v.T", "--vector", "v"],                             # shape mismatch
    ["A + v", "--vector", "v"],                               # adding different shapes
    ["A / (x.T @ x)", "--gaussian", "x:Lambda"],              # division by a Gaussian expression
    ["x", "--gaussian", "x"],                                 # malformed --gaussian
    ["x", "--gaussian", "x:"],
    ["x", "--gaussian", ":Lambda"],
    ["x", "--gaussian", "x:Lambda:2"],
    ["x", "--gaussian", "x:x"],
    ["x", "--gaussian", "x:Lambda", "--gaussian", "x:I"],
    ["x", "--gaussian", "x:Lambda", "--vector", "x"],         # declared twice
    ["x.shape", "--gaussian", "x:Lambda"],
    ["__import__('os')"],
    ["A @"],
    ["A", "--format", "yaml"],
    ["(x.T @ x)**9", "--gaussian", "x:I"],                    # 34 million pairings: refused, not hung
    ["(A + B)**20"],                                          # 2**20 terms: refused
    ["A**1e3"],                                               # exponent not an integer literal
    ["1e999 * A"],                                            # not finite
    [],
    # the list: refused quickly with one line, never a traceback or a hang
    ["(x.T @ x)**1000", "--gaussian", "x:Lambda"],
    [" + ".join(["A"] * 3000) + " + v", "--vector", "v"],      # 3000 chained +: parsed flat, then a shape error
    ["A" + ".T" * 3000],
    [" @ ".join(["A"] * 20000)],
    ["2**100000000"],
    ["N**10000000"],
    ["(A + B)**100000"],
    ["sum(i, x[i].T @ x[i])**40", "--gaussian", "x:Lambda"],
    ["(-1)**(1/2) * A"],
    # malformed new declarations
    ["x", "--gaussian", "x:A", "--matrix", "A"],               # a general matrix is not a covariance
    ["x", "--gaussian", "x:A @ B"],                            # not symmetric
    ["x", "--gaussian", "x:Lambda:m", "--vector", "m:L", "--dim", "L"],   # a mean of the wrong shape
    ["X @ x", "--matrix", "X:L,d", "--gaussian", "x:Lambda"],  # L not declared
    ["sum(i, e[i], M)", "--gaussian", "e:s**2", "--scalar", "s"],  # M not declared
    ["x", "--matrix", "X:L,d:spd", "--dim", "L"],             # a non-square SPD matrix
    ["x", "--scalar", "c:complex"],
    ["x", "--dim", "N"],                                       # reserved
    ["x", "--timeout", "-1"],
])
def test_bad_input_is_one_line_exit_2(args, capsys):
    from derive.cli import run
    from derive.expect import main

    assert run(main, args) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.out == ""


def test_bad_input_through_the_real_entry_point():
    out = cli("foo(x)", "--gaussian", "x:Lambda")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_help_documents_the_grammar():
    out = cli("--help")
    assert out.returncode == 0
    assert "--gaussian" in out.stdout and "NAME:COV" in out.stdout


def test_chi_square_moment_in_general_d():
    """E[(xᵀx)³] = d(d+2)(d+4) for x ~ N(0, I_d): general d, from pairings alone."""
    import sympy

    from derive.engine.context import dimension_symbol
    D = dimension_symbol("d")

    got = expect("(x.T @ x)**3", gaussians={"x": "I"}).scalar
    assert sympy.expand(got - D * (D + 2) * (D + 4)) == 0
