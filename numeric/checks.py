"""How a numeric module declares the confirmation of a registered result.

Each ``numeric/<name>.py`` mirrors ``derive/<name>.py`` and defines a module
level list ``CHECKS`` of :class:`MonteCarloCheck` (a mean estimated by
simulation, compared with the symbolic value) or :class:`DeterministicCheck`
(an experiment with its own pass criterion, e.g. an ODE that must conserve an
invariant).  ``id`` is the id of the registered result the check confirms;
:func:`all_checks` discovers them by scanning the package, so no list of names
is kept anywhere else.

A Monte Carlo check never reuses the symbolic engine's pairing logic: it
simulates the quantity from its definition (samples Gaussians, runs the model's
forward pass) and compares the sample mean with ``exact(instance)``, which
evaluates the *derived* symbolic result at the random instance.  ``wrong``
holds plausible wrong formulas (negative controls) that the same comparison
must reject.

Teeth (enforced by ``python -m numeric.confirm`` at default counts, tested at 20
seeds by ``tests/test_confirmations.py``): a Monte Carlo check (kind
``monte_carlo``) detects a 1 % relative error of what it checks at ``samples``,
has at least one wrong formula, and each wrong formula's expected gap is at least
3x the rejection threshold (see :mod:`numeric.montecarlo`); at ``ci_samples`` its
controls must still be rejected at every seed.  A :class:`DeterministicCheck` of
kind ``exact`` is an identity to rounding whose ``run`` shows a wrong variant
failing (``negative_controls``); kind ``experiment`` is an ODE or training run
with its own statistics (t quantiles for few replicates).  Estimators are free to
integrate out analytically what is Gaussian given the rest, to use cubature or
control variates with exactly known means, as long as the per-sample values stay
random (a check that cannot fail is ``exact``, not Monte Carlo) and the idea is
stated in the sampler's docstring.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class MonteCarloCheck:
    id: str
    # rng -> dict of numpy float64 arrays/floats: the random instance (Lambda, A, ...)
    instance: Callable[[np.random.Generator], dict[str, Any]]
    # instance -> numpy array: the derived symbolic result evaluated at the instance
    exact: Callable[[dict[str, Any]], np.ndarray]
    # (instance, batch_size, torch.Generator, torch.device) -> tensor (batch_size, *exact.shape)
    # of i.i.d. per-sample values whose mean is the quantity
    sample: Callable[..., Any]
    # name -> (instance -> numpy array): deliberately wrong formulas to be rejected
    wrong: dict[str, Callable[[dict[str, Any]], np.ndarray]] = field(default_factory=dict)
    # instance -> float: the size of the formula's largest term at the instance.  Relative errors
    # (``detectable_rel_error``) are measured against max(max |exact|, scale): where the exact value
    # is zero because terms cancel (a gradient at a stationary point), the terms set the scale.
    scale: Callable[[dict[str, Any]], float] | None = None
    samples: int = 200_000  # default sample count for python -m numeric.confirm
    ci_samples: int = 50_000  # sample count used by the test-suite
    batch: int = 10_000
    description: str = ""


@dataclass(frozen=True)
class DeterministicCheck:
    id: str
    # (samples: int | None, device: torch.device, seed: int) -> dict with at least "passed" (bool) and
    # "detail" (str); samples=None means the check's own default size
    run: Callable[..., dict[str, Any]]
    description: str = ""
    # "exact": a deterministic identity or symmetry checked to rounding (no statistical power is
    # reported and it is not counted as Monte Carlo evidence); "experiment": an ODE integration or a
    # training run with its own pass criterion (and its own statistics, e.g. t quantiles over replicates)
    kind: str = "exact"


def check_modules() -> list[str]:
    """Modules declaring ``CHECKS``: the ``numeric`` package's, then the user's results modules and their
    ``<module>_checks`` siblings (a user module may keep its torch code apart from its derivations)."""
    import numeric
    from derive.registry import user_modules

    names = []
    for info in pkgutil.iter_modules(numeric.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"numeric.{info.name}")
        if hasattr(module, "CHECKS"):
            names.append(module.__name__)
    names.sort()
    for name in user_modules():
        for candidate in (name, f"{name}_checks"):
            try:
                module = importlib.import_module(candidate)
            except ModuleNotFoundError as error:
                if error.name != candidate:
                    raise
                continue
            if hasattr(module, "CHECKS") and candidate not in names:
                names.append(candidate)
    return names


@functools.lru_cache(maxsize=1)
def all_checks() -> dict[str, list]:
    """Map result id -> list of checks declared for it."""
    found: dict[str, list] = {}
    for name in check_modules():
        for check in importlib.import_module(name).CHECKS:
            found.setdefault(check.id, []).append(check)
    return found
