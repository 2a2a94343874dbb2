"""Expectations of matrix expressions in Gaussian vectors and scalars, coordinate-free, for any size.

    python -m derive.expect "EXPR" --gaussian x:Lambda [--gaussian eps:sigma**2 ...]
           [--dim L ...] [--count M ...] [--matrix X:L,d ...] [--vector v[:L] ...]
           [--scalar c[:positive] ...] [--collect NAME ...] [--format text|latex|json]

EXPR is written in the project's grammar: names, numbers, + - * / (by a
constant scalar), ** (integer powers; (p/q) powers of SPD matrices), @ (matrix
product), .T, tr(X), inv(X), I (d×d identity), I(L), zeros(R, C), sum(i, E)
over i = 1..N, sum(i, E, M) over i = 1..M, and indexed draws x[i].

Declarations:
  --gaussian NAME:COV[:MEAN]  NAME ~ N(MEAN, COV); COV is a grammar expression for a symmetric
                              positive semi-definite matrix (Lambda, I, c**2 * Lambda, Lambda + I,
                              A @ A.T, I(L)) or a non-negative scalar (sigma**2: a scalar family).
                              A name that is a whole term of COV becomes SPD (a scalar: positive).
                              x[i] inside sum(i, ...) are i.i.d. draws; a bare x is one more draw.
                              Families are independent; sums over different counts index
                              different samples.
  --matrix NAME[:R,C][:spd|:symmetric]   a constant matrix (default d×d)
  --vector NAME[:K]           a constant column vector (default length d)
  --scalar NAME[:positive]    a constant real (or positive) scalar
  --dim L, --count M          another dimension / sample count (d and N always exist)
Undeclared names are constant d×d matrices.

Example:
  $ python -m derive.expect "x @ x.T @ A @ x @ x.T" --gaussian x:Lambda
  Lambda @ A @ Lambda + Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda

Limits (each refusal is one line on stderr, exit status 2): 200,000 characters,
nesting depth 200, exponents up to 64, 200,000 expanded terms, 100,000
index-coincidence patterns per term, 250,000 Wick pairings (a 14th-order moment
needs 135,135), --timeout seconds.
JSON output holds the input, the declarations, the shape, "expectation" (in the
grammar: it parses back to the same result) and "latex".
"""

from __future__ import annotations

import json
import re
import sys
import types

from derive.cli import OneLineParser, UsageError, run
from derive.engine.context import shape_name
from derive.engine.grammar import RESERVED
from derive.engine.pipeline import declare, expect as _expect, expectation

__all__ = ["expect", "main", "build_parser"]

expect = _expect  # the Python API: ``derive.expect(...)``, also when this module is imported by name

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _identifier(value: str, flag: str) -> str:
    if not _IDENT.fullmatch(value) or value in RESERVED:
        raise UsageError(f"{flag} expects a name, got {value!r}")
    return value


def parse_gaussian(spec: str) -> tuple:
    """``"x:Lambda"`` → ``("x", "Lambda", None)``; ``"x:c**2 * Lambda:m"`` → ``("x", "c**2 * Lambda", "m")``."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
        raise UsageError(f"--gaussian expects NAME:COV or NAME:COV:MEAN such as x:Lambda or eps:sigma**2, got {spec!r}")
    name = _identifier(parts[0].strip(), "--gaussian")
    return name, parts[1].strip(), parts[2].strip() if len(parts) == 3 else None


def parse_named(flag: str):
    """``NAME`` or ``NAME:SPEC`` (the spec is checked when the context is declared)."""
    def check(spec: str) -> tuple:
        name, _, rest = spec.partition(":")
        return _identifier(name.strip(), flag), rest.strip() or None
    return check


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m derive.expect", description=__doc__.split("\n\n", 1)[1].strip())
    parser.add_argument("expression", help="expression in the project's grammar, e.g. \"x.T @ A @ x\"")
    parser.add_argument("--gaussian", action="append", default=[], type=parse_gaussian, metavar="NAME:COV[:MEAN]",
                        help="a Gaussian family NAME ~ N(MEAN, COV)")
    parser.add_argument("--matrix", action="append", default=[], type=parse_named("--matrix"),
                        metavar="NAME[:R,C][:spd]", help="a constant matrix")
    parser.add_argument("--vector", action="append", default=[], type=parse_named("--vector"), metavar="NAME[:K]",
                        help="a constant column vector")
    parser.add_argument("--scalar", action="append", default=[], type=parse_named("--scalar"),
                        metavar="NAME[:positive]", help="a constant scalar")
    parser.add_argument("--dim", action="append", default=[], type=lambda v: _identifier(v, "--dim"), metavar="L",
                        help="another dimension")
    parser.add_argument("--count", action="append", default=[], type=lambda v: _identifier(v, "--count"),
                        metavar="M", help="another sample count, for sum(i, E, M)")
    parser.add_argument("--collect", action="append", default=[], metavar="NAME",
                        help="group the result by powers of this scalar (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for the Wick pairing (0: none)")
    parser.add_argument("--format", choices=("text", "latex", "json"), default="text")
    return parser


def _unique(pairs, flag: str) -> dict:
    out: dict = {}
    for name, spec in pairs:
        if name in out:
            raise UsageError(f"{flag} {name} is declared twice")
        out[name] = spec
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.timeout < 0:
        raise UsageError("--timeout must be non-negative")
    gaussians = {}
    for name, cov, mean in args.gaussian:
        if name in gaussians:
            raise UsageError(f"--gaussian {name} is declared twice")
        gaussians[name] = (cov, mean)
    vectors = {n: (k or "d") for n, k in _unique(args.vector, "--vector").items()}
    scalars = {n: (k or "real") for n, k in _unique(args.scalar, "--scalar").items()}
    matrices = _unique(args.matrix, "--matrix")
    context = declare(gaussians=gaussians, vectors=vectors, matrices=matrices, scalars=scalars, dims=args.dim,
                      counts=args.count)
    result = expectation(args.expression, context, timeout=args.timeout or None)
    shown = result.collect(*args.collect) if args.collect else result
    if args.format == "text":
        print(shown.text())
    elif args.format == "latex":
        print(shown.latex())
    else:
        print(json.dumps({"expression": args.expression, "declarations": context.describe(),
                          "shape": shape_name(result.shape), "expectation": result.text(),
                          "collected": shown.text() if args.collect else None, "latex": shown.latex()}, indent=2))
    return 0


class _CallableModule(types.ModuleType):
    """``derive.expect`` is both this command's module and the API function ``derive.expect(...)``.

    Importing the submodule (``from derive.expect import main``) rebinds the
    package attribute ``derive.expect`` to the module; making the module
    callable keeps ``derive.expect("...", gaussians=...)`` working either way.
    """

    def __call__(self, *args, **kwargs):
        return _expect(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(run(main))
