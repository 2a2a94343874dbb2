"""The registry of derived results: each result is declared once, here discovered.

A module of ``derive`` that declares results defines a module-level list
``RESULTS`` of :class:`Result`.  :func:`all_results` imports every such module
(listed by scanning the package, not by hand) and returns the results in a
stable order.  The CLI (``python -m derive``), the LaTeX export, the README
table, the tests and ``numeric.confirm`` all iterate over :func:`all_results`.

A result's ``derive`` callable computes a :class:`Derivation`: the steps, each a
named mathematical object produced by the engine with a one-line justification,
and ``values``, the named final objects (what tests and numeric checks use).
``paper`` optionally returns the closed form stated in the source, used only as
the expected value in tests, never as an input to a derivation.

Run: ``python -m derive`` lists the registered results.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = math`` because ``because``.

    ``math`` is anything the printers understand: a
    :class:`derive.engine.polynomial.Polynomial`, a sympy expression, or a string
    that is already LaTeX (``latex=True``).
    """

    lhs: str  # LaTeX of the left-hand side, e.g. r"\mathbb{E}[x x^{\top} A x x^{\top}]"
    math: Any
    because: str  # plain-text justification, one short sentence
    text_lhs: str = ""  # plain-text left-hand side for terminals; defaults to ``lhs``


@dataclass(frozen=True)
class Derivation:
    steps: tuple[Step, ...]
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    id: str  # "<module>.<name>", e.g. "gaussian.isserlis_4"
    title: str
    statement: str  # plain text, one or two sentences
    derive: Callable[[], Derivation]
    source: str = ""  # which seed / paper, e.g. "Zhang, Frei & Bartlett (2024), Lemma D.2"
    assumptions: tuple[str, ...] = ()
    paper: Callable[[], Any] | None = None
    module: str = ""  # filled in by all_results

    @functools.cached_property
    def derivation(self) -> Derivation:  # computed once per process
        return self.derive()


def result_modules() -> list[str]:
    """Names of the ``derive`` submodules that define ``RESULTS``."""
    import derive

    names = []
    for info in pkgutil.iter_modules(derive.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"derive.{info.name}")
        if hasattr(module, "RESULTS"):
            names.append(module.__name__)
    return sorted(names)


@functools.lru_cache(maxsize=1)
def all_results() -> tuple[Result, ...]:
    results = []
    seen = set()
    for name in result_modules():
        module = importlib.import_module(name)
        for result in module.RESULTS:
            if result.id in seen:
                raise ValueError(f"result id {result.id!r} is declared twice")
            seen.add(result.id)
            object.__setattr__(result, "module", name)
            results.append(result)
    return tuple(results)


def get(result_id: str) -> Result:
    for result in all_results():
        if result.id == result_id:
            return result
    known = ", ".join(r.id for r in all_results())
    raise KeyError(f"unknown result id {result_id!r}; known: {known}")
