"""Expectations of matrix expressions in Gaussian vectors, coordinate-free, for any d.

    python -m derive.expect "EXPR" --gaussian x:Lambda [--gaussian w:I ...]
                            [--vector v ...] [--scalar c ...] [--format text|latex|json]

EXPR is written in the project's grammar (see ``derive.grammar`` and the README):
names, numbers, ``+ - * /``, ``**`` (integer powers), ``@`` (matrix product),
``.T``, ``tr(X)``, ``inv(X)``, ``I``, ``d``, ``N``, ``sum(i, EXPR)`` (i = 1..N)
and indexed draws ``x[i]``.  Undeclared names are constant d×d matrices;
``--vector`` declares constant d-vectors (columns), ``--scalar`` constant
scalars, ``--gaussian NAME:COV`` a zero-mean Gaussian d-vector with covariance
COV (a symmetric positive-definite matrix symbol, or ``I``).  A Gaussian used as
``x[i]`` inside ``sum(i, ...)`` is i.i.d. over i; used bare, it is one more
independent draw (a query vector).  Families are independent of each other.

Example::

    $ python -m derive.expect "x @ x.T @ A @ x @ x.T" --gaussian x:Lambda
    Lambda @ A @ Lambda + Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda

JSON output holds ``expectation`` (the result in the input grammar), ``latex``,
``shape`` and the input.  Bad input prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import json
import re
import sys

from derive.cli import OneLineParser, UsageError, run
from derive.expand import Declarations
from derive.grammar import RESERVED
from derive.polynomial import expectation

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_gaussian(spec: str) -> tuple[str, str]:
    """``"x:Lambda"`` → ``("x", "Lambda")``."""
    name, sep, cov = spec.partition(":")
    if not sep or not _IDENT.fullmatch(name) or not _IDENT.fullmatch(cov):
        raise UsageError(f"--gaussian expects NAME:COV such as x:Lambda or w:I, got {spec!r}")
    if name in RESERVED or (cov in RESERVED and cov != "I"):
        raise UsageError(f"--gaussian {spec!r} uses a reserved name")
    if name == cov:
        raise UsageError(f"--gaussian {spec!r}: the covariance must differ from the vector's name")
    return name, cov


def _identifier(kind):
    def check(value):
        if not _IDENT.fullmatch(value) or value in RESERVED:
            raise UsageError(f"--{kind} expects a name, got {value!r}")
        return value
    return check


def build_parser() -> OneLineParser:
    import argparse

    parser = OneLineParser(prog="python -m derive.expect", description=__doc__.split("\n\n", 1)[1].strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("expression", help="expression in the project's grammar, e.g. \"x.T @ A @ x\"")
    parser.add_argument("--gaussian", action="append", default=[], type=parse_gaussian, metavar="NAME:COV",
                        help="zero-mean Gaussian d-vector NAME ~ N(0, COV); COV a SPD matrix symbol or I")
    parser.add_argument("--vector", action="append", default=[], type=_identifier("vector"), metavar="NAME",
                        help="a constant d-vector (column)")
    parser.add_argument("--scalar", action="append", default=[], type=_identifier("scalar"), metavar="NAME",
                        help="a constant scalar")
    parser.add_argument("--format", choices=("text", "latex", "json"), default="text")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    gaussians = {}
    for name, cov in args.gaussian:
        if name in gaussians:
            raise UsageError(f"--gaussian {name} is declared twice")
        gaussians[name] = cov
    decl = Declarations(gaussians=gaussians, vectors=frozenset(args.vector), scalars=frozenset(args.scalar))
    result = expectation(args.expression, decl=decl)
    if args.format == "text":
        print(result.text())
    elif args.format == "latex":
        print(result.latex())
    else:
        shape = {(1, 1): "scalar", ("d", 1): "vector", (1, "d"): "row vector", ("d", "d"): "matrix"}[result.shape]
        print(json.dumps({"expression": args.expression, "gaussians": gaussians, "vectors": args.vector,
                          "scalars": args.scalar, "shape": shape, "expectation": result.text(),
                          "latex": result.latex()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
