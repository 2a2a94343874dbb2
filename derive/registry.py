"""The registry of derived results: each result is declared once, and discovered from there.

A result is a :class:`Result`: a title, its claims as :class:`Equation`\\ s in
the grammar (``E(x @ x.T @ A @ x @ x.T) = Lambda @ (A + A.T) @ Lambda + …``),
the definitions its equations use (``where``), its sources (a
:class:`~derive.references.Reference` and a place in it), prose assumptions
and remarks (with math in the grammar between backticks), and ``derive``, a
function computing its :class:`Derivation`: the steps, each produced by the
engine, the named values (what ``derive eval`` and the numeric checks use),
the context in which the equations are read, and definitions derived on the
way (``yhat`` from the model's block algebra).

:func:`check_equations` reads each equation in that context and asks the
engine whether the two sides are the same polynomial (and, when an equation
names a value, whether its right side is that value): a statement cannot drift
from its derivation.

Where results come from (:func:`all_results`): every module of the ``derive``
package that defines ``RESULTS``; every module named in the entry-point group
``icl_derive.results`` of any installed distribution; every module named in the
environment variable ``ICL_DERIVE_RESULTS`` (comma-separated).  Nothing else
keeps a list of results.

Run: ``python -m derive`` lists them, ``python -m derive show ID``, ``python -m
derive eval ID --at JSON``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from derive.engine.context import Context
from derive.engine.errors import ExpressionError
from derive.engine.grammar import parse
from derive.engine.polynomial import Polynomial
from derive.engine.statements import evaluate, unfold
from derive.references import Reference

__all__ = ["Source", "Claim", "CLAIM_STATUSES", "Equation", "Step", "Derivation", "Result", "all_results", "get", "result_modules",
           "user_modules", "check_equations", "flat_values", "same", "ENTRY_POINT_GROUP", "ENVIRONMENT_VARIABLE"]

ENTRY_POINT_GROUP = "icl_derive.results"
ENVIRONMENT_VARIABLE = "ICL_DERIVE_RESULTS"


@dataclass(frozen=True)
class Source:
    """A reference and, optionally, where in it (``"Lemma D.2"``)."""

    reference: Reference
    where: str = ""


CLAIM_STATUSES = ("confirmed", "corrected", "cited", "open")


@dataclass(frozen=True)
class Claim:
    """A quantitative claim of a source that a result settles (one row of the claims ledger).

    ``source`` says who claims it and where (``Source(ZFB2024, "Theorem 4.2")``);
    ``statement`` is the claim as the source states it (prose, math in the grammar
    between backticks); ``status`` is one of :data:`CLAIM_STATUSES`:

    * ``confirmed``: derived (and checked numerically) as stated;
    * ``corrected``: the source is wrong or loose; ``settled`` gives the corrected
      form and the numbers that decide it;
    * ``cited``: a step the project takes from the literature without deriving it;
      ``settled`` names the theorem and where it is proved;
    * ``open``: not settled; ``settled`` says why.

    ``equations`` are the 1-based numbers of the result's equations that settle it
    (empty when the remarks do).  The ledger (``docs/claims.md``) and the claims
    table of the document are generated from these declarations, so a claim is
    listed once, next to the result that settles it.
    """

    source: Source
    statement: str
    status: str
    settled: str = ""
    equations: tuple = ()

    def __post_init__(self):
        if self.status not in CLAIM_STATUSES:
            raise ValueError(f"claim status {self.status!r} is not one of {', '.join(CLAIM_STATUSES)}")
        if self.status != "confirmed" and not self.settled:
            raise ValueError(f"a {self.status} claim says how it is settled ({self.statement[:40]!r}…)")


@dataclass(frozen=True)
class Equation:
    """``lhs = rhs`` in the grammar.

    ``rhs`` may be ``None``: the right side is then the derived value named
    ``value`` (a result that no source states in closed form, e.g. the full
    population loss).  When both are given, the typed right side must equal
    that value.
    """

    lhs: str
    rhs: str | None = None
    value: str | None = None

    def __post_init__(self):
        if self.rhs is None and self.value is None:
            raise ValueError(f"equation {self.lhs!r} needs a right-hand side or the name of a derived value")


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = math``, because ``because``.

    ``lhs`` is grammar text (it may use defined names and ``E``, ``grad``,
    ``at``); ``math`` a :class:`~derive.engine.polynomial.Polynomial`, a grammar
    tree or text, or a sympy object; ``because`` prose with math between backticks.
    """

    lhs: str
    math: Any
    because: str


@dataclass(frozen=True)
class Derivation:
    steps: tuple
    values: dict = field(default_factory=dict)  # name -> Polynomial, sympy scalar, or a dict of them
    context: Context | None = None  # where the result's equations are read
    definitions: dict = field(default_factory=dict)  # derived definitions the equations may use


@dataclass(frozen=True)
class Result:
    id: str  # "<topic>.<name>", e.g. "gaussian.isserlis_4"
    title: str
    equations: tuple
    derive: Callable[[], Derivation]
    where: tuple = ()  # (("S", "sum(i, x[i] @ x[i].T) / N"), ...): typed definitions, shown with the statement
    sources: tuple = ()  # Source, ...
    assumptions: tuple = ()  # prose, math between backticks
    remarks: tuple = ()
    claims: tuple = ()  # Claim, ...: the sources' claims this result settles (the claims ledger)
    module: str = ""  # filled in by all_results

    @functools.cached_property
    def derivation(self) -> Derivation:  # computed once per process
        derivation = self.derive()
        if not isinstance(derivation, Derivation):
            raise TypeError(f"{self.id}: derive() must return a Derivation")
        return derivation

    @property
    def context(self) -> Context:
        context = self.derivation.context
        if context is None:
            raise ExpressionError(f"{self.id}: its derivation declares no context for its equations")
        return context

    def definitions(self) -> dict:
        """Every name the equations may use: the typed ``where`` definitions, then the derived ones."""
        out = {name: parse(text) for name, text in self.where}
        for name, value in self.derivation.definitions.items():
            if name in out:
                raise ExpressionError(f"{self.id}: {name!r} is defined twice")
            out[name] = value
        return out

    def sides(self, equation: Equation) -> tuple[Polynomial, Polynomial]:
        """Both sides of an equation as polynomials, read in the result's context."""
        definitions = self.definitions()
        lhs = evaluate(equation.lhs, self.context, definitions)
        if equation.rhs is not None:
            rhs = evaluate(equation.rhs, self.context, definitions)
        else:
            rhs = flat_values(self.derivation.values)[equation.value]
            if not isinstance(rhs, Polynomial):
                raise ExpressionError(f"{self.id}: the value {equation.value!r} is not a polynomial")
        return lhs, rhs


def same(a: Polynomial, b: Polynomial) -> bool:
    """Equal shapes and equal polynomials once named compounds are written out (see ``statements.unfold``)."""
    return a.shape == b.shape and (a == b or unfold(a) == unfold(b))


def flat_values(values: dict, prefix: str = "") -> dict:
    """Nested values as ``{"minimizer.U11": …}``."""
    out = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(flat_values(value, key + "."))
        else:
            out[key] = value
    return out


def check_equations(result: Result) -> list[str]:
    """The equations of ``result`` that do not hold, each as one line (empty when all hold)."""
    problems = []
    values = flat_values(result.derivation.values)
    for equation in result.equations:
        label = f"{result.id}: {equation.lhs} = {equation.rhs if equation.rhs is not None else equation.value}"
        try:
            lhs, rhs = result.sides(equation)
        except (ExpressionError, ValueError, KeyError) as error:
            problems.append(f"{label}: cannot be read ({error})")
            continue
        if not same(lhs, rhs):
            difference = (unfold(lhs) - unfold(rhs)).text() if lhs.shape == rhs.shape else "their shapes"
            problems.append(f"{label}: the sides differ by {difference}")
        if equation.value is not None and equation.rhs is not None:
            derived = values.get(equation.value)
            if not isinstance(derived, Polynomial) or not same(derived, rhs):
                problems.append(f"{label}: the right side is not the derived value {equation.value!r}")
    return problems


# ---------------------------------------------------------------- discovery

def _package_modules() -> list[str]:
    import derive

    names = []
    for info in pkgutil.iter_modules(derive.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"derive.{info.name}")
        if hasattr(module, "RESULTS"):
            names.append((getattr(module, "READING_ORDER", 1000), module.__name__))
    # a topic module's READING_ORDER places it in the document (lemmas first, then the results built on them)
    return [name for _, name in sorted(names)]


def user_modules() -> list[str]:
    """Modules named by installed distributions (entry points) and by ``ICL_DERIVE_RESULTS``."""
    names = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        names.append(entry.value.split(":")[0].strip())
    for name in os.environ.get(ENVIRONMENT_VARIABLE, "").split(","):
        if name.strip():
            names.append(name.strip())
    return list(dict.fromkeys(names))


def result_modules() -> list[str]:
    """Modules that declare results: the package's, then the user's (entry points, environment variable)."""
    package = _package_modules()
    return package + [m for m in user_modules() if m not in package]


@functools.lru_cache(maxsize=1)
def all_results() -> tuple:
    results, seen = [], set()
    for name in result_modules():
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"cannot import the results module {name!r}: {error}") from None
        declared = getattr(module, "RESULTS", None)
        if declared is None:
            raise ValueError(f"the results module {name!r} defines no RESULTS list")
        for result in declared:
            if not isinstance(result, Result):
                raise ValueError(f"{name}.RESULTS holds {type(result).__name__}, not Result")
            if result.id in seen:
                raise ValueError(f"result id {result.id!r} is declared twice")
            seen.add(result.id)
            for claim in result.claims:
                if not isinstance(claim, Claim):
                    raise ValueError(f"{result.id}: claims hold {type(claim).__name__}, not Claim")
                bad = [n for n in claim.equations if not (isinstance(n, int) and 1 <= n <= len(result.equations))]
                if bad:
                    raise ValueError(f"{result.id}: a claim names equation(s) {bad}; the result has "
                                     f"{len(result.equations)}")
            object.__setattr__(result, "module", name)
            results.append(result)
    return tuple(results)


def get(result_id: str) -> Result:
    for result in all_results():
        if result.id == result_id:
            return result
    known = ", ".join(r.id for r in all_results())
    raise KeyError(f"unknown result id {result_id!r}; known: {known}")
