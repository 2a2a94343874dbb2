r"""Monte Carlo confirmation of the Gaussian moment results of ``derive/gaussian_moments.py``.

For :math:`x \sim \mathcal N(0, \Lambda)` (simulated as :math:`x = L z`,
:math:`\Lambda = L L^\top`, :math:`z \sim \mathcal N(0, I_d)`), each check
estimates one expectation from its definition and compares the sample mean
with the derived symbolic result evaluated at a random instance:

* ``gaussian.isserlis_4`` (d = 4): per sample :math:`x x^\top A x x^\top = (x^\top A x)\, x x^\top`;
* ``gaussian.quadratic_forms`` (d = 4): per sample :math:`(x^\top A x)(x^\top B x)`;
* ``gaussian.sample_second_moment`` (d = 3, N = 3): per sample :math:`S A S` with
  :math:`S = \frac1N \sum_{i=1}^N x_i x_i^\top` over N fresh draws;
* ``gaussian.isserlis_6`` (d = 3): per sample
  :math:`x x^\top A x x^\top B x x^\top = (x^\top A x)(x^\top B x)\, x x^\top`.

The instance (drawn from ``np.random.default_rng(seed)``) is a well-conditioned
SPD :math:`\Lambda = Q \operatorname{diag}(\lambda) Q^\top` (Haar-random
:math:`Q`, eigenvalues uniform in [0.5, 1.5]) and non-symmetric
:math:`A, B = I + G/\sqrt d` (:math:`G` standard normal).  ``exact`` evaluates ``Result.derivation.values["expectation"]``
(a :class:`derive.engine.polynomial.Polynomial`) with
``{"Lambda": Λ, "A": A, "B": B}``; nothing here re-derives the result.  The
``wrong`` formulas are deliberately wrong closed forms typed in numpy
(negative controls that the comparison must reject).

Estimator: the radius integrated out
------------------------------------
Each integrand is a homogeneous polynomial of degree :math:`2k` in the Gaussian
vector :math:`g` it is built from (:math:`g = z` for one draw, :math:`k = 2` or
3; :math:`g = (z_1, \dots, z_N) \in \mathbb R^{Nd}` for the sample second
moment, :math:`k = 2`).  Write :math:`g = r\,v` with :math:`r = |g|` and
:math:`v = g/|g|`: :math:`r^2 \sim \chi^2_m` (:math:`m` the dimension of
:math:`g`) is independent of the direction :math:`v`, uniform on the sphere.
Hence :math:`\mathbb E[f(g) \mid v] = \mathbb E[r^{2k}]\, f(v)` with the exact
chi-square moment :math:`\mathbb E[r^{2k}] = m (m + 2) \cdots (m + 2k - 2)`
(:func:`chi_square_moment`).  The per-sample value is this conditional
expectation: same mean, and the radius, the heaviest-tailed factor (for the
sixth moment in d = 3, :math:`\mathbb E[r^{12}] / \mathbb E[r^6]^2 = 12.3`), no
longer contributes variance.  The direction is still random, so the check
keeps its power to fail: nothing of the moment being checked is used.
``brute_samplers`` keeps the plain per-draw estimators (used by the tests).

Sample counts are budgeted so that ``detectable_rel_error <= 0.007`` at the
default count (below the 1 % target at every seed tried) and every negative
control's expected gap is many times the threshold even at ``ci_samples``.

Run: ``python -m numeric.confirm gaussian.isserlis_4 gaussian.isserlis_6``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from numeric.checks import MonteCarloCheck

SAMPLE_SECOND_MOMENT_N = 3


# ----------------------------------------------------------------- instances
def random_spd(rng: np.random.Generator, d: int, low: float = 0.5, high: float = 1.5) -> np.ndarray:
    """A random SPD matrix with eigenvalues uniform in [low, high] and Haar-random eigenvectors."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))  # Haar measure on O(d)
    eigenvalues = rng.uniform(low, high, size=d)
    spd = (q * eigenvalues) @ q.T
    return (spd + spd.T) / 2.0


def random_nonsymmetric(rng: np.random.Generator, d: int) -> np.ndarray:
    """``I + G / sqrt(d)`` with standard-normal ``G``: non-symmetric, with traces bounded away from 0.

    The identity keeps ``tr(A Lambda)`` and the entries of the moments from
    cancelling to near zero, which would make max-norm relative errors large.
    """
    return np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d)


def make_instance(d: int, with_b: bool = False, N: int | None = None):
    def instance(rng: np.random.Generator) -> dict[str, Any]:
        values: dict[str, Any] = {"Lambda": random_spd(rng, d), "A": random_nonsymmetric(rng, d)}
        if with_b:
            values["B"] = random_nonsymmetric(rng, d)
        if N is not None:
            values["N"] = N
        return values

    return instance


# ------------------------------------------------------------------- exact
def symbolic_expectation(result_id: str, instance: dict[str, Any]) -> np.ndarray:
    """The derived ``values["expectation"]`` of ``result_id`` evaluated at ``instance``."""
    from derive.registry import get

    polynomial = get(result_id).derivation.values["expectation"]
    matrices = {name: value for name, value in instance.items() if name != "N"}
    d = instance["Lambda"].shape[0]
    return np.asarray(polynomial.evaluate(matrices, d=d, N=instance.get("N")), dtype=np.float64)


def exact_of(result_id: str):
    def exact(instance: dict[str, Any]) -> np.ndarray:
        return symbolic_expectation(result_id, instance)

    return exact


# ---------------------------------------------------------------- sampling
def _on(device: torch.device, array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64, device=device)


def gaussian_draws(instance: dict[str, Any], shape: tuple[int, ...], generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """Draws ``x = L z`` of ``N(0, Lambda)``, shape ``(*shape, d)``, float64."""
    lam = np.asarray(instance["Lambda"], dtype=np.float64)
    d = lam.shape[0]
    chol = _on(device, np.linalg.cholesky(lam))
    z = torch.randn((*shape, d), generator=generator, device=device, dtype=torch.float64)
    x = z @ chol.T
    assert x.shape == (*shape, d)
    return x


def chi_square_moment(dimension: int, k: int) -> float:
    """E[r^(2k)] for r^2 ~ chi-square with ``dimension`` degrees of freedom: m (m + 2) ... (m + 2k - 2).

    >>> chi_square_moment(3, 1), chi_square_moment(3, 3)
    (3, 105)
    """
    value = 1
    for i in range(k):
        value *= dimension + 2 * i
    return value


def direction_draws(instance: dict[str, Any], shape: tuple[int, ...], generator: torch.Generator,
                    device: torch.device, sphere_dims: int = 1) -> torch.Tensor:
    """``L v`` with ``v`` uniform on the unit sphere of the last ``sphere_dims`` axes; shape ``(*shape, d)``.

    ``v = z / |z|`` for standard normal ``z``: a Gaussian vector's direction, independent of its radius.
    """
    lam = np.asarray(instance["Lambda"], dtype=np.float64)
    d = lam.shape[0]
    z = torch.randn((*shape, d), generator=generator, device=device, dtype=torch.float64)
    axes = tuple(range(-sphere_dims, 0))
    v = z / torch.linalg.vector_norm(z, dim=axes, keepdim=True)
    return v @ _on(device, np.linalg.cholesky(lam)).T


def quadratic_form(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``x^T M x`` for each row of ``x`` (shape ``(batch, d)`` -> ``(batch,)``)."""
    return torch.einsum("bi,ij,bj->b", x, matrix, x)


# The integrands, as functions of the draws x ((batch, d), or (batch, N, d) for the sample second moment).
def isserlis_4_integrand(instance, x: torch.Tensor) -> torch.Tensor:
    """``x x^T A x x^T = (x^T A x) x x^T``, shape ``(batch, d, d)``; homogeneous of degree 4 in x."""
    values = quadratic_form(x, _on(x.device, instance["A"]))[:, None, None] * (x[:, :, None] * x[:, None, :])
    assert values.shape == (x.shape[0], x.shape[1], x.shape[1])
    return values


def quadratic_forms_integrand(instance, x: torch.Tensor) -> torch.Tensor:
    """``(x^T A x)(x^T B x)``, shape ``(batch,)``; degree 4."""
    return quadratic_form(x, _on(x.device, instance["A"])) * quadratic_form(x, _on(x.device, instance["B"]))


def second_moment_integrand(instance, x: torch.Tensor) -> torch.Tensor:
    """``S A S`` with ``S = (1/N) sum_i x_i x_i^T`` over the N draws of each sample, ``(batch, d, d)``; degree 4."""
    s = torch.einsum("bni,bnj->bij", x, x) / x.shape[1]
    return s @ _on(x.device, instance["A"]) @ s


def isserlis_6_integrand(instance, x: torch.Tensor) -> torch.Tensor:
    """``x x^T A x x^T B x x^T = (x^T A x)(x^T B x) x x^T``, shape ``(batch, d, d)``; degree 6."""
    return quadratic_forms_integrand(instance, x)[:, None, None] * (x[:, :, None] * x[:, None, :])


# name -> (integrand, k: the integrand's degree is 2k, draws per sample (None: one draw))
INTEGRANDS = {"gaussian.isserlis_4": (isserlis_4_integrand, 2, None),
              "gaussian.quadratic_forms": (quadratic_forms_integrand, 2, None),
              "gaussian.sample_second_moment": (second_moment_integrand, 2, SAMPLE_SECOND_MOMENT_N),
              "gaussian.isserlis_6": (isserlis_6_integrand, 3, None)}


def brute_sampler(result_id: str):
    """The plain per-draw estimator: the integrand at Gaussian draws x = L z."""
    integrand, _, draws = INTEGRANDS[result_id]

    def sample(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        shape = (batch,) if draws is None else (batch, int(instance["N"]))
        return integrand(instance, gaussian_draws(instance, shape, generator, device))

    sample.__name__ = f"brute_{result_id.split('.')[-1]}"
    return sample


def radial_sampler(result_id: str):
    """E[integrand | direction] = E[r^(2k)] integrand(L v): the radius integrated out (module docstring).

    One draw: ``v`` uniform on the sphere of R^d, r^2 ~ chi^2_d; N draws per sample (the sample
    second moment): the direction of the stacked (z_1, ..., z_N), r^2 ~ chi^2_{N d}.
    """
    integrand, k, draws = INTEGRANDS[result_id]

    def sample(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        d = np.asarray(instance["Lambda"]).shape[0]
        if draws is None:
            x, dimension = direction_draws(instance, (batch,), generator, device), d
        else:
            n = int(instance["N"])
            x, dimension = direction_draws(instance, (batch, n), generator, device, sphere_dims=2), n * d
        return chi_square_moment(dimension, k) * integrand(instance, x)

    sample.__name__ = f"radial_{result_id.split('.')[-1]}"
    return sample


BRUTE_SAMPLERS = {result_id: brute_sampler(result_id) for result_id in INTEGRANDS}
sample_isserlis_4 = radial_sampler("gaussian.isserlis_4")
sample_quadratic_forms = radial_sampler("gaussian.quadratic_forms")
sample_second_moment = radial_sampler("gaussian.sample_second_moment")
sample_isserlis_6 = radial_sampler("gaussian.isserlis_6")


# ------------------------------------------------------ negative controls
# Deliberately WRONG closed forms: each must be rejected by the comparison.
def _tr(m: np.ndarray) -> float:
    return float(np.trace(m))


def isserlis_4_without_transpose(inst):  # drops the Lambda A^T Lambda pairing
    lam, a = inst["Lambda"], inst["A"]
    return lam @ a @ lam + _tr(a @ lam) * lam


def isserlis_4_symmetric_a(inst):  # the symmetric-A form 2 Lambda A Lambda applied to a non-symmetric A
    lam, a = inst["Lambda"], inst["A"]
    return 2 * lam @ a @ lam + _tr(a @ lam) * lam


def isserlis_4_without_trace(inst):  # drops the tr(A Lambda) Lambda pairing
    lam, a = inst["Lambda"], inst["A"]
    return lam @ a @ lam + lam @ a.T @ lam


def quadratic_forms_independent(inst):  # E[ab] = E[a] E[b]
    lam, a, b = inst["Lambda"], inst["A"], inst["B"]
    return np.asarray(_tr(a @ lam) * _tr(b @ lam))


def quadratic_forms_single_cross(inst):  # one cross pairing instead of two
    lam, a, b = inst["Lambda"], inst["A"], inst["B"]
    return np.asarray(_tr(a @ lam) * _tr(b @ lam) + _tr(a @ lam @ b @ lam))


def quadratic_forms_trace_of_product(inst):  # tr(A Lambda B Lambda) where tr(A Lambda) tr(B Lambda) belongs
    lam, a, b = inst["Lambda"], inst["A"], inst["B"]
    return np.asarray(2 * _tr(a @ lam @ b @ lam) + _tr(a @ lam @ b.T @ lam))


def second_moment_without_1_over_n(inst):  # E[S] A E[S]: drops the 1/N terms
    lam, a = inst["Lambda"], inst["A"]
    return lam @ a @ lam


def second_moment_single_draw(inst):  # Isserlis for one draw (N = 1)
    lam, a = inst["Lambda"], inst["A"]
    return lam @ a @ lam + lam @ a.T @ lam + _tr(a @ lam) * lam


def second_moment_without_transpose(inst):  # drops Lambda A^T Lambda / N
    lam, a, n = inst["Lambda"], inst["A"], inst["N"]
    return lam @ a @ lam + _tr(a @ lam) * lam / n


def _sym(m: np.ndarray) -> np.ndarray:
    return (m + m.T) / 2.0


def isserlis_6_dropped_pairing(inst):  # the 15 pairings minus the one giving Lambda A Lambda B Lambda
    lam, a, b = inst["Lambda"], inst["A"], inst["B"]
    p, q = _sym(a), _sym(b)
    all_pairings = (
        lam * (_tr(p @ lam) * _tr(q @ lam) + 2 * _tr(p @ lam @ q @ lam))
        + 2 * _tr(q @ lam) * lam @ p @ lam
        + 2 * _tr(p @ lam) * lam @ q @ lam
        + 4 * lam @ p @ lam @ q @ lam
        + 4 * lam @ q @ lam @ p @ lam
    )
    return all_pairings - lam @ a @ lam @ b @ lam


def isserlis_6_unsymmetrized(inst):  # the symmetric-matrix formula applied to non-symmetric A, B
    lam, a, b = inst["Lambda"], inst["A"], inst["B"]
    return (
        lam * (_tr(a @ lam) * _tr(b @ lam) + 2 * _tr(a @ lam @ b @ lam))
        + 2 * _tr(b @ lam) * lam @ a @ lam
        + 2 * _tr(a @ lam) * lam @ b @ lam
        + 4 * lam @ a @ lam @ b @ lam
        + 4 * lam @ b @ lam @ a @ lam
    )


def isserlis_6_without_outer_pairings(inst):  # Lambda E[ab]: x x^T treated as independent of a, b
    lam, a, b = inst["Lambda"], inst["A"], inst["B"]
    p, q = _sym(a), _sym(b)
    return lam * (_tr(p @ lam) * _tr(q @ lam) + 2 * _tr(p @ lam @ q @ lam))


CHECKS = [
    MonteCarloCheck(
        id="gaussian.isserlis_4",
        instance=make_instance(4),
        exact=exact_of("gaussian.isserlis_4"),
        sample=sample_isserlis_4,
        wrong={
            "without A^T term": isserlis_4_without_transpose,
            "2 Lambda A Lambda (symmetric-A form)": isserlis_4_symmetric_a,
            "without trace term": isserlis_4_without_trace,
        },
        samples=1_500_000,
        ci_samples=150_000,
        batch=25_000,
        description="E[x x^T A x x^T], x ~ N(0, Lambda), d = 4",
    ),
    MonteCarloCheck(
        id="gaussian.quadratic_forms",
        instance=make_instance(4, with_b=True),
        exact=exact_of("gaussian.quadratic_forms"),
        sample=sample_quadratic_forms,
        wrong={
            "E[a] E[b] (independent)": quadratic_forms_independent,
            "one cross pairing": quadratic_forms_single_cross,
            "trace of product for product of traces": quadratic_forms_trace_of_product,
        },
        samples=800_000,
        ci_samples=50_000,
        batch=25_000,
        description="E[(x^T A x)(x^T B x)], x ~ N(0, Lambda), d = 4",
    ),
    MonteCarloCheck(
        id="gaussian.sample_second_moment",
        instance=make_instance(3, N=SAMPLE_SECOND_MOMENT_N),
        exact=exact_of("gaussian.sample_second_moment"),
        sample=sample_second_moment,
        wrong={
            "without 1/N terms": second_moment_without_1_over_n,
            "single draw (N = 1)": second_moment_single_draw,
            "without A^T / N term": second_moment_without_transpose,
        },
        samples=1_000_000,
        ci_samples=100_000,
        batch=25_000,
        description="E[S A S], S = (1/N) sum_i x_i x_i^T, N = 3, d = 3",
    ),
    MonteCarloCheck(
        id="gaussian.isserlis_6",
        instance=make_instance(3, with_b=True),
        exact=exact_of("gaussian.isserlis_6"),
        sample=sample_isserlis_6,
        wrong={
            "one pairing dropped (Lambda A Lambda B Lambda)": isserlis_6_dropped_pairing,
            "unsymmetrized A, B": isserlis_6_unsymmetrized,
            "Lambda E[ab] only": isserlis_6_without_outer_pairings,
        },
        samples=2_000_000,
        ci_samples=150_000,
        batch=25_000,
        description="E[x x^T A x x^T B x x^T], x ~ N(0, Lambda), d = 3",
    ),
]
