"""``python -m derive.<topic>``: print the results one topic module declares.

Every topic module (``derive/gaussian_moments.py``, ``derive/lsa_generalization.py``, …) ends with::

    if __name__ == "__main__":
        from derive.topic import run_topic

        run_topic(__spec__.name)

and so prints its results, in the order of its ``RESULTS``, as text (statement, assumptions,
derivation), as a LaTeX document, or as JSON (the same objects as ``python -m derive show ID
--format json``).  The results are taken from the registry, not from the ``__main__`` copy of the
module, so what is printed is what every other entry point sees.
"""

from __future__ import annotations

import json

import sys

from derive.cli import OneLineParser, run
from derive.engine.printing import prose
from derive.registry import all_results
from derive.report import latex_document, result_json, result_text

__all__ = ["topic_main", "run_topic"]


def topic_main(module: str, argv=None) -> int:
    """Print the registered results declared in ``module`` (see the module docstring)."""
    results = [r for r in all_results() if r.module == module]
    parser = OneLineParser(prog=f"python -m {module}",
                           description=f"Derive and print the {len(results)} results declared in {module}.")
    parser.add_argument("--format", choices=("text", "latex", "json"), default="text")
    args = parser.parse_args(argv)
    if args.format == "json":
        print(json.dumps([result_json(r, derivation=True) for r in results], indent=2, ensure_ascii=False))
    elif args.format == "latex":
        title = prose(results[0].title) if len(results) == 1 else module.rsplit(".", 1)[-1].replace("_", " ")
        print(latex_document(results, title), end="")
    else:
        print("\n\n".join(result_text(r, k) for k, r in enumerate(results, 1)))
    return 0


def run_topic(module: str) -> None:
    """Entry point of ``python -m <module>``: :func:`topic_main` with bad input as one line and exit 2."""
    sys.exit(run(lambda argv: topic_main(module, argv)))
