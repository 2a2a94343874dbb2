"""The registered results: list them, show one, evaluate one at numbers.

    python -m derive [--format text|json]                   list every result (JSON: with its equations)
    python -m derive show ID [--format text|latex|json]      one result: statement, assumptions, derivation
    python -m derive eval ID --at JSON [--format json|text]  its equations and named values at numbers

``--at`` takes a JSON object of the inputs by name: matrices as nested lists,
vectors as lists, scalars and counts as numbers, e.g.
``'{"Lambda": [[2, 0.5], [0.5, 1]], "N": 4, "U11": [[1, 0], [0, 1]], "u": 0.7}'``
(sizes such as ``d`` are read off the arrays).  The output holds every
equation's sides in the grammar with their values, and ``values``: every
named quantity of the derivation, evaluated.  A missing or ill-shaped input is
one line on stderr and exit status 2.

Results come from the ``derive`` package, from modules named in the
entry-point group ``icl_derive.results`` of installed distributions, and from
modules named in ``ICL_DERIVE_RESULTS`` (comma-separated).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from derive.cli import OneLineParser, UsageError, run
from derive.engine.errors import ExpressionError
from derive.engine.evaluate import MissingValue
from derive.engine.polynomial import Polynomial
from derive.engine.printing import expr_text, prose
from derive.registry import all_results, flat_values, get
from derive.report import equation_sides, latex_document, result_json, result_text

COMMANDS = ("list", "show", "eval")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m derive", description=__doc__.split("\n\n", 1)[0].strip() + "\n\n" +
                           __doc__.split("\n\n", 1)[1].strip())
    parser.add_argument("command", nargs="?", default="list", choices=COMMANDS, help="what to do")
    parser.add_argument("id", nargs="?", help="a result id (show, eval)")
    parser.add_argument("--format", choices=("text", "latex", "json"), default=None,
                        help="output format (list: text; show: text; eval: json)")
    parser.add_argument("--at", metavar="JSON", help="eval: the inputs as a JSON object")
    return parser


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value


def _inputs(text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--at is not JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(data, dict):
        raise UsageError("--at must be a JSON object mapping names to numbers or nested lists")
    values = {}
    for name, value in data.items():
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError(f"--at: {name!r} must be a number or a nested list of numbers") from None
        if not np.all(np.isfinite(array)):
            raise UsageError(f"--at: {name!r} has NaN or infinite entries")
        values[name] = float(array) if array.ndim == 0 else array
    return values


def evaluate_result(result, values: dict) -> dict:
    """The equations' sides and the derivation's named values at ``values`` (missing inputs gathered first)."""
    missing: set = set()
    equations, named = [], {}
    for value in flat_values(result.derivation.values).values():
        # a value may solve for auxiliary unknowns from the inputs (lu.asymptotic_error's effective ridge)
        complete = getattr(value, "complete", None)
        if complete is not None:
            values = complete(values)

    def value_of(poly):
        try:
            return _jsonable(poly.evaluate(values))
        except MissingValue as error:
            missing.add(error.name)
            return None

    for equation in result.equations:
        lhs, rhs = result.sides(equation)
        left, right = equation_sides(result, equation)
        equations.append({"lhs": expr_text(left), "rhs": expr_text(right), "lhs_value": value_of(lhs),
                          "rhs_value": value_of(rhs)})
    for name, value in flat_values(result.derivation.values).items():
        if isinstance(value, Polynomial):
            named[name] = value_of(value)
    if missing:
        raise UsageError(f"{result.id} needs values for: {', '.join(sorted(missing))} (give them in --at)")
    return {"id": result.id, "inputs": {k: _jsonable(v) for k, v in values.items()}, "equations": equations,
            "values": named}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        if args.id is not None:
            raise UsageError("list takes no result id (use show ID)")
        results = all_results()
        if (args.format or "text") == "json":
            print(json.dumps([result_json(r) for r in results], indent=2, ensure_ascii=False))
        elif args.format == "latex":
            raise UsageError("list prints text or json; use python -m derive.export for LaTeX")
        else:
            width = max(len(r.id) for r in results)
            for r in results:
                print(f"{r.id:<{width}}  {prose(r.title)}")
        return 0
    if args.id is None:
        raise UsageError(f"{args.command} needs a result id; python -m derive lists them")
    result = get(args.id)
    if args.command == "show":
        if args.at is not None:
            raise UsageError("--at goes with eval")
        fmt = args.format or "text"
        if fmt == "json":
            print(json.dumps(result_json(result, derivation=True), indent=2, ensure_ascii=False))
        elif fmt == "latex":
            print(latex_document([result], prose(result.title)), end="")
        else:
            print(result_text(result))
        return 0
    if args.at is None:
        raise UsageError("eval needs --at JSON with the inputs, e.g. --at '{\"Lambda\": [[2, 0.5], [0.5, 1]], \"N\": 4}'")
    try:
        payload = evaluate_result(result, _inputs(args.at))
    except (ExpressionError, np.linalg.LinAlgError) as error:
        raise UsageError(f"{args.id}: {error}") from None
    if (args.format or "json") == "json":
        print(json.dumps(payload, indent=2))
    else:
        for equation in payload["equations"]:
            print(f"{equation['lhs']} = {equation['rhs']}\n    {equation['lhs_value']} = {equation['rhs_value']}")
        for name, value in payload["values"].items():
            print(f"{name} = {value}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
