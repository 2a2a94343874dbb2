"""List the registered results.

    python -m derive [--format text|json]

Every result is declared once, in the ``RESULTS`` list of its module; this
listing, the LaTeX export, the README table, the tests and the numeric
confirmation all read the same registry.
"""

from __future__ import annotations

import json
import sys

from derive.cli import OneLineParser, run
from derive.registry import all_results


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m derive", description="List the registered results.")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    results = all_results()
    if args.format == "json":
        print(json.dumps([{"id": r.id, "title": r.title, "statement": r.statement, "module": r.module,
                           "source": r.source, "assumptions": list(r.assumptions)} for r in results], indent=2))
        return 0
    width = max(len(r.id) for r in results)
    for r in results:
        print(f"{r.id:<{width}}  {r.title}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
