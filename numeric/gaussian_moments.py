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


def brute_isserlis_4(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``x x^T A x x^T`` per sample, shape ``(batch, d, d)``."""
    x = gaussian_draws(instance, (batch,), generator, device)
    d = x.shape[1]
    a = _on(device, instance["A"])
    values = quadratic_form(x, a)[:, None, None] * (x[:, :, None] * x[:, None, :])
    assert values.shape == (batch, d, d)
    return values


def brute_quadratic_forms(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``(x^T A x)(x^T B x)`` per sample, shape ``(batch,)``."""
    x = gaussian_draws(instance, (batch,), generator, device)
    values = quadratic_form(x, _on(device, instance["A"])) * quadratic_form(x, _on(device, instance["B"]))
    assert values.shape == (batch,)
    return values


def brute_second_moment(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``S A S`` with ``S = (1/N) sum_i x_i x_i^T`` over ``N`` fresh draws, shape ``(batch, d, d)``."""
    n_draws = int(instance["N"])
    x = gaussian_draws(instance, (batch, n_draws), generator, device)
    d = x.shape[2]
    s = torch.einsum("bni,bnj->bij", x, x) / n_draws
    values = s @ _on(device, instance["A"]) @ s
    assert values.shape == (batch, d, d)
    return values


def brute_isserlis_6(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``x x^T A x x^T B x x^T = (x^T A x)(x^T B x) x x^T`` per sample, shape ``(batch, d, d)``."""
    x = gaussian_draws(instance, (batch,), generator, device)
    d = x.shape[1]
    scalar = quadratic_form(x, _on(device, instance["A"])) * quadratic_form(x, _on(device, instance["B"]))
    values = scalar[:, None, None] * (x[:, :, None] * x[:, None, :])
    assert values.shape == (batch, d, d)
    return values


BRUTE_SAMPLERS = {"gaussian.isserlis_4": brute_isserlis_4, "gaussian.quadratic_forms": brute_quadratic_forms,
                  "gaussian.sample_second_moment": brute_second_moment, "gaussian.isserlis_6": brute_isserlis_6}


def sample_isserlis_4(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """E[x x^T A x x^T | direction] = E[r^4] (v^T A v) v v^T, v = L z/|z| (radius integrated out), (batch, d, d)."""
    x = direction_draws(instance, (batch,), generator, device)
    d = x.shape[1]
    values = chi_square_moment(d, 2) * quadratic_form(x, _on(device, instance["A"]))[:, None, None] * (
        x[:, :, None] * x[:, None, :])
    assert values.shape == (batch, d, d)
    return values


def sample_quadratic_forms(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """E[(x^T A x)(x^T B x) | direction] = E[r^4] (v^T A v)(v^T B v), shape ``(batch,)``."""
    x = direction_draws(instance, (batch,), generator, device)
    values = chi_square_moment(x.shape[1], 2) * quadratic_form(x, _on(device, instance["A"])) * quadratic_form(
        x, _on(device, instance["B"]))
    assert values.shape == (batch,)
    return values


def sample_second_moment(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """E[S A S | direction of (z_1..z_N)] = E[r^4] S_v A S_v, r^2 ~ chi^2_{N d}, shape ``(batch, d, d)``.

    S is homogeneous of degree 2 in the stacked vector (z_1, ..., z_N) of the N draws, so S A S is of degree 4.
    """
    n_draws = int(instance["N"])
    x = direction_draws(instance, (batch, n_draws), generator, device, sphere_dims=2)
    d = x.shape[2]
    s = torch.einsum("bni,bnj->bij", x, x) / n_draws
    values = chi_square_moment(n_draws * d, 2) * (s @ _on(device, instance["A"]) @ s)
    assert values.shape == (batch, d, d)
    return values


def sample_isserlis_6(instance, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """E[(x^T A x)(x^T B x) x x^T | direction] = E[r^6] (v^T A v)(v^T B v) v v^T, shape ``(batch, d, d)``."""
    x = direction_draws(instance, (batch,), generator, device)
    d = x.shape[1]
    scalar = quadratic_form(x, _on(device, instance["A"])) * quadratic_form(x, _on(device, instance["B"]))
    values = chi_square_moment(d, 3) * scalar[:, None, None] * (x[:, :, None] * x[:, None, :])
    assert values.shape == (batch, d, d)
    return values


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
