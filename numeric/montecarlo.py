r"""Streaming Monte Carlo estimation and the z-test that confirms a derived mean.

Math
----
A :class:`numeric.checks.MonteCarloCheck` produces i.i.d. per-sample values
:math:`Y_1, Y_2, \dots` (each an array of the shape of the exact value) whose
mean is the quantity :math:`\mu`.  After :math:`n` samples, per entry :math:`j`,

.. math::

    \bar Y_j = \tfrac1n \sum_i Y_{ij}, \qquad
    s_j^2 = \tfrac{1}{n-1} \sum_i (Y_{ij} - \bar Y_j)^2, \qquad
    \mathrm{se}_j = s_j / \sqrt{n}, \qquad
    z_j = |\bar Y_j - \mathrm{exact}_j| / \mathrm{se}_j .

*Streaming.*  :class:`StreamingMoments` keeps only ``(n, mean, M2)`` with
``M2 = sum (Y - mean)^2``, in float64, of the shape of one sample: memory is
flat in the number of samples.  Each batch is reduced with a two-pass formula
(batch mean, then squared deviations from it) and merged with the running
state by the pairwise update of Chan, Golub & LeVeque (1979)::

    delta = mean_b - mean_a;  n = n_a + n_b
    mean  = mean_a + delta * n_b / n
    M2    = M2_a + M2_b + delta**2 * n_a * n_b / n

No raw power sums are formed, so a large common offset (values ~1e8 with unit
spread) costs no precision.

*Threshold.*  With ``k = 5`` the single-entry two-sided false-alarm rate is
``alpha = 2 Phi(-k) ~= 5.7e-7``.  A check with ``m`` (stochastic) entries uses the
Bonferroni-corrected threshold ``t = Phi^{-1}(1 - alpha / (2 m))``, i.e. each
entry is tested at level ``alpha / m``; a correct formula therefore fails with
probability at most ``alpha ~= 5.7e-7`` per check (in the normal approximation of
the sample mean), whatever its number of entries.  ``t = 5`` for one entry,
``t ~= 5.6`` for 16.

*Deterministic entries.*  An entry whose per-sample values do not vary (an exact
zero of the symmetric structure, or a constant) has ``se_j ~= 0`` and its z-score
would be ``0/0``.  With ``scale = max(max_j sqrt(mean_j^2 + s_j^2), max_j |exact_j|)``
(the largest root-mean-square per-sample value or exact value) and
``tol = DETERMINISTIC_ULPS * eps_float64 * scale`` (``1024 * 2.2e-16``, i.e.
~2.3e-13 relative), an entry with ``se_j <= tol`` is *deterministic*: it passes
when ``|mean_j - exact_j| <= tol``.  Its reported z is ``t * |mean_j - exact_j| / tol``,
which crosses the threshold exactly when the error exceeds the tolerance.
Deterministic entries are not counted in the Bonferroni ``m``.

*Detectable error.*  ``detectable_abs_error_j = t * se_j`` (``tol`` for
deterministic entries): a formula whose value in entry ``j`` is off by more
than this is rejected with probability at least 1/2 (by ``(t + 2) se_j``:
at least 97.7 %).  The summary

    ``detectable_rel_error = max_j detectable_abs_error_j / max(max_j |exact_j|, scale)``, where
    ``scale`` (optional, ``MonteCarloCheck.scale``) is the formula's largest term at the instance

is the smallest error, measured relative to the largest entry of the exact
value (max-norm), that the check detects in *every* entry.  It is ``inf`` when
the exact value is identically zero.

*Negative controls.*  Each wrong formula in ``check.wrong`` is evaluated at the
same instance and compared with the same sample mean, standard errors and
threshold; it is *rejected* when its max z exceeds ``t``.  Its *expected gap*
``max_j |wrong_j - exact_j| / se_j`` is the z it would reach if the sample mean
sat exactly on the true value; a control is *strong* when this gap is at least
``CONTROL_MARGIN = 3`` times the threshold, so that its rejection is not a coin
flip (the observed z is the expected gap give or take a few units).  A check
without any wrong formula has no teeth: :attr:`Outcome.controls_rejected` is
False for it.

*Power target.*  ``POWER_TARGET = 0.01``: at its default sample count every
check must detect a 1 % relative error (``detectable_rel_error <= 0.01``);
:attr:`Outcome.power_ok` and :attr:`Outcome.controls_strong` say whether this
run met the targets (``numeric.confirm`` enforces them at default counts).

*Heavy tails.*  The per-sample values are products of up to six Gaussians, so
the 5-sigma false-alarm rate of the normal approximation is not guaranteed by
the central limit theorem alone.  ``numeric/calibrate.py`` measures the
empirical false-alarm rate of every check at lower thresholds (2-3.5 sigma) over
many independent runs and compares it with the nominal ``2 Phi(-k)``; the table
is in ``docs/benchmarks.md``.

Run
---
Used by ``python -m numeric.confirm``; directly::

    from numeric.montecarlo import run_montecarlo
    outcome = run_montecarlo(check, samples=100_000, device="cpu", seed=0)
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from numeric.device import resolve_device

DEFAULT_K = 5.0
# --device cuda with default counts: the GPU's headroom buys more samples per check (same code, same test);
# larger batches keep the device busy.  Only the default counts change; an explicit --samples is kept.
CUDA_SAMPLE_FACTOR = 8
CUDA_BATCH_FACTOR = 8
POWER_TARGET = 0.01  # every Monte Carlo check detects a 1 % relative error at its default sample count
CONTROL_MARGIN = 3.0  # a negative control's expected gap is at least 3x the rejection threshold
DETERMINISTIC_ULPS = 1024.0
FLOAT64_EPS = float(np.finfo(np.float64).eps)


def single_entry_alpha(k: float = DEFAULT_K) -> float:
    """Two-sided false-alarm rate of one entry tested at ``k`` sigma: ``2 Phi(-k)``."""
    return float(2.0 * norm.sf(k))


def bonferroni_threshold(entries: int, k: float = DEFAULT_K, dof: float | None = None) -> float:
    """Threshold giving family-wise false-alarm rate ``2 Phi(-k)`` over ``entries`` entries.

    ``dof=None``: a normal quantile (z-test, many samples).  ``dof = R - 1`` for a
    mean over R replicates divided by its estimated standard error: the statistic
    is Student-t with ``dof`` degrees of freedom, and the threshold is the t
    quantile at the same per-entry level (15 degrees of freedom: 8.3 instead of
    5 for one entry; read as normal, the false-alarm rate would be ~280x too large).

    >>> round(bonferroni_threshold(1), 6)
    5.0
    >>> bonferroni_threshold(16) > 5.5
    True
    >>> round(bonferroni_threshold(1, dof=15), 1)
    8.3
    """
    entries = max(int(entries), 1)
    per_entry_alpha = single_entry_alpha(k) / entries
    if dof is None:
        return float(norm.isf(per_entry_alpha / 2.0))
    from scipy.stats import t as student_t

    return float(student_t.isf(per_entry_alpha / 2.0, dof))


def welch_dof(se: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of a sum of independent estimates with standard errors ``se_i``
    (each from ``dof_i`` degrees of freedom), summed over the first axis: ``(sum se_i^2)^2 / sum se_i^4 / dof_i``.

    >>> float(welch_dof(np.array([1.0, 1.0]), np.array([15, 15])))
    30.0
    """
    se2 = np.asarray(se, dtype=np.float64) ** 2
    dof = np.asarray(dof, dtype=np.float64).reshape((-1,) + (1,) * (se2.ndim - 1))
    return se2.sum(0) ** 2 / (se2**2 / dof).sum(0)


class StreamingMoments:
    """Running count, mean and sum of squared deviations of per-sample arrays, in float64.

    ``update(values)`` takes a batch with the sample index first, shape
    ``(batch, *shape)``; the state has shape ``shape`` and lives on the device
    of the first batch, so no per-batch transfer to the host happens.

    >>> acc = StreamingMoments()
    >>> acc.update(torch.tensor([[1.0], [2.0], [3.0]]))
    >>> acc.update(torch.tensor([[4.0]]))
    >>> acc.count, acc.mean.tolist(), acc.variance.tolist()
    (4, [2.5], [1.6666666666666667])
    """

    def __init__(self, shape: tuple[int, ...] | None = None):
        self.shape = None if shape is None else tuple(shape)
        self.count = 0
        self._mean: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None

    def update(self, values: torch.Tensor | np.ndarray) -> None:
        values = torch.as_tensor(values)
        if not values.is_floating_point():
            raise TypeError(f"per-sample values must be floating point, got {values.dtype}")
        values = values.to(torch.float64)
        if values.ndim < 1:
            raise ValueError("a batch needs a leading sample dimension")
        if self.shape is None:
            self.shape = tuple(values.shape[1:])
        if tuple(values.shape[1:]) != self.shape:
            raise ValueError(f"batch of shape {tuple(values.shape)} does not match per-sample shape {self.shape}")
        n_b = values.shape[0]
        if n_b == 0:
            return
        mean_b = values.mean(dim=0)
        m2_b = ((values - mean_b) ** 2).sum(dim=0)
        if self._mean is None:
            self.count, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        n_a = self.count
        n = n_a + n_b
        delta = mean_b.to(self._mean.device) - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b.to(self._m2.device) + delta**2 * (n_a * n_b / n)
        self.count = n

    def _require(self, minimum: int) -> None:
        if self.count < minimum:
            raise ValueError(f"need at least {minimum} samples, have {self.count}")

    @property
    def mean(self) -> np.ndarray:
        self._require(1)
        return self._mean.detach().cpu().numpy().copy()

    @property
    def variance(self) -> np.ndarray:
        """Unbiased per-entry sample variance ``M2 / (n - 1)``."""
        self._require(2)
        return (self._m2 / (self.count - 1)).detach().cpu().numpy().copy()

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of the mean per entry, ``sqrt(variance / n)``."""
        return np.sqrt(self.variance / self.count)

    def state_nbytes(self) -> int:
        """Bytes held by the running state (independent of the number of samples)."""
        held = [t for t in (self._mean, self._m2) if t is not None]
        return sum(t.element_size() * t.nelement() for t in held)


@dataclass(frozen=True)
class Comparison:
    """A sample mean compared with one formula's values (see module docstring)."""

    z: np.ndarray
    max_z: float
    rejected: bool  # max_z > threshold


@dataclass
class Outcome:
    """What one Monte Carlo confirmation measured; arrays have the shape of the exact value."""

    id: str
    samples: int
    device: str
    seed: int
    seconds: float
    mean: np.ndarray
    stderr: np.ndarray
    exact: np.ndarray
    z: np.ndarray
    max_z: float
    threshold: float
    alpha: float  # family-wise false-alarm rate of the test, 2 Phi(-k)
    passed: bool
    deterministic: np.ndarray  # bool mask of entries compared with the float64 tolerance
    deterministic_tol: float
    detectable_abs_error: np.ndarray
    detectable_rel_error: float
    negative_controls: dict[str, bool] = field(default_factory=dict)  # name -> rejected
    negative_control_z: dict[str, float] = field(default_factory=dict)  # name -> max z
    # name -> max_j |wrong_j - exact_j| / se_j: the z the control would reach with the mean exactly on the truth
    negative_control_expected_z: dict[str, float] = field(default_factory=dict)
    kind: str = "monte_carlo"

    @property
    def controls_rejected(self) -> bool:
        """Every wrong formula rejected, and there is at least one (a check without controls has no teeth)."""
        return bool(self.negative_controls) and all(self.negative_controls.values())

    @property
    def control_margins(self) -> dict[str, float]:
        """name -> expected gap / threshold (at least :data:`CONTROL_MARGIN` for a strong control)."""
        return {name: gap / self.threshold for name, gap in self.negative_control_expected_z.items()}

    @property
    def controls_strong(self) -> bool:
        return bool(self.negative_controls) and all(m >= CONTROL_MARGIN for m in self.control_margins.values())

    @property
    def power_ok(self) -> bool:
        return self.detectable_rel_error <= POWER_TARGET


class ZTest:
    """The comparison of a sample mean (with standard errors) against formulas.

    Built once from the estimate and the exact value (which fix the
    deterministic-entry tolerance); :meth:`compare` then tests any formula.
    ``dof``: the statistic is Student-t with that many degrees of freedom (a mean
    over ``dof + 1`` replicates); the threshold is then a t quantile.
    """

    def __init__(self, mean: np.ndarray, stderr: np.ndarray, exact: np.ndarray, samples: int, k: float = DEFAULT_K,
                 reference: float | None = None, dof: float | None = None):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.stderr = np.asarray(stderr, dtype=np.float64)
        self.exact = np.asarray(exact, dtype=np.float64)
        if not (self.mean.shape == self.stderr.shape == self.exact.shape):
            raise ValueError(
                f"shapes differ: mean {self.mean.shape}, stderr {self.stderr.shape}, exact {self.exact.shape}"
            )
        rms = np.sqrt(self.mean**2 + samples * self.stderr**2)  # sqrt(mean^2 + s^2)
        scale = max(float(np.max(rms, initial=0.0)), float(np.max(np.abs(self.exact), initial=0.0)), reference or 0.0)
        self.tol = DETERMINISTIC_ULPS * FLOAT64_EPS * scale
        self.deterministic = self.stderr <= self.tol
        stochastic_entries = int(np.count_nonzero(~self.deterministic))
        # dof: Student-t quantiles for a mean over few replicates (None: normal, many samples)
        self.threshold = bonferroni_threshold(stochastic_entries, k, dof)
        self.alpha = single_entry_alpha(k)
        self.detectable_abs_error = np.where(self.deterministic, self.tol, self.threshold * self.stderr)
        exact_max = max(float(np.max(np.abs(self.exact), initial=0.0)), reference or 0.0)
        worst = float(np.max(self.detectable_abs_error, initial=0.0))
        self.detectable_rel_error = worst / exact_max if exact_max > 0 else math.inf

    def expected_z(self, formula_values: np.ndarray) -> float:
        """max_j |formula_j - exact_j| / se_j: the z a wrong formula reaches when the mean sits on the exact value."""
        gap = np.abs(np.asarray(formula_values, dtype=np.float64) - self.exact)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(self.deterministic, self.threshold * gap / self.tol if self.tol > 0 else np.inf * gap,
                         gap / self.stderr)
        z = np.where(np.isnan(z), np.inf, z)
        return float(np.max(z, initial=0.0))

    def compare(self, formula_values: np.ndarray) -> Comparison:
        values = np.asarray(formula_values, dtype=np.float64)
        if values.shape != self.mean.shape:
            raise ValueError(f"formula has shape {values.shape}, the estimate has shape {self.mean.shape}")
        error = np.abs(self.mean - values)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_stochastic = error / self.stderr
            # deterministic entries: error in tolerances, scaled so that tol <-> threshold
            z_deterministic = self.threshold * error / self.tol if self.tol > 0 else np.where(error > 0, np.inf, 0.0)
        z = np.where(self.deterministic, z_deterministic, z_stochastic)
        z = np.where(np.isnan(z), np.inf, z)  # a NaN formula value is never accepted
        max_z = float(np.max(z, initial=0.0))
        return Comparison(z=z, max_z=max_z, rejected=max_z > self.threshold)


def stream_samples(check, instance: dict[str, Any], samples: int, device: torch.device, seed: int,
                   expected_shape: tuple[int, ...], progress: bool | None = False,
                   batch: int | None = None) -> StreamingMoments:
    """Draw ``samples`` values of ``check.sample`` in batches (``check.batch`` unless ``batch``) and accumulate
    their moments."""
    batch_size = int(check.batch if batch is None else batch)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    moments = StreamingMoments(expected_shape)
    bar = None
    if progress is not False:  # None: shown only when stderr is a terminal
        from tqdm import tqdm

        bar = tqdm(total=samples, desc=check.id, unit="sample", unit_scale=True, delay=2.0, leave=False,
                   file=sys.stderr, dynamic_ncols=True, disable=None if progress is None else not progress)
    try:
        remaining = samples
        while remaining > 0:
            batch = min(batch_size, remaining)
            values = check.sample(instance, batch, generator, device)
            if not isinstance(values, torch.Tensor):
                raise TypeError(f"{check.id}: sample must return a torch.Tensor, got {type(values).__name__}")
            if tuple(values.shape) != (batch, *expected_shape):
                raise ValueError(
                    f"{check.id}: sample returned shape {tuple(values.shape)}, expected {(batch, *expected_shape)}"
                )
            moments.update(values)
            remaining -= batch
            if bar is not None:
                bar.update(batch)
    finally:
        if bar is not None:
            bar.close()
    return moments


def run_montecarlo(check, samples: int | None = None, device: torch.device | str = "cpu", seed: int = 0,
                   k: float = DEFAULT_K, progress: bool | None = False) -> Outcome:
    """Confirm ``check`` (a :class:`numeric.checks.MonteCarloCheck`) by simulation.

    ``progress``: show a tqdm bar on stderr (after 2 s); ``None`` shows it only on a terminal.
    The instance is drawn with ``np.random.default_rng(seed)``, the samples with
    a ``torch.Generator`` on ``device`` seeded with ``seed``.  ``samples``
    defaults to ``check.samples`` (times :data:`CUDA_SAMPLE_FACTOR` on a CUDA device, whose batches are
    :data:`CUDA_BATCH_FACTOR` times larger).  See the module docstring for the test.
    """
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    on_gpu = device.type == "cuda"
    if samples is None:
        samples = int(check.samples) * (CUDA_SAMPLE_FACTOR if on_gpu else 1)
    samples = int(samples)
    if samples < 2:
        raise ValueError(f"samples must be at least 2 (got {samples})")
    if int(check.batch) < 1:
        raise ValueError(f"{check.id}: batch must be positive")
    start = time.perf_counter()
    instance = check.instance(np.random.default_rng(seed))
    exact = np.asarray(check.exact(instance), dtype=np.float64)
    moments = stream_samples(check, instance, samples, device, seed, exact.shape, progress=progress,
                             batch=int(check.batch) * (CUDA_BATCH_FACTOR if on_gpu else 1))
    mean, stderr = moments.mean, moments.stderr
    reference = None if getattr(check, "scale", None) is None else float(check.scale(instance))
    test = ZTest(mean, stderr, exact, samples, k, reference=reference)
    own = test.compare(exact)
    controls: dict[str, bool] = {}
    control_z: dict[str, float] = {}
    expected_z: dict[str, float] = {}
    for name, formula in check.wrong.items():
        values = np.asarray(formula(instance), dtype=np.float64)
        comparison = test.compare(values)
        controls[name] = comparison.rejected
        control_z[name] = comparison.max_z
        expected_z[name] = test.expected_z(values)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return Outcome(
        id=check.id, samples=samples, device=str(device), seed=int(seed), seconds=seconds,
        mean=mean, stderr=stderr, exact=exact, z=own.z, max_z=own.max_z, threshold=test.threshold,
        alpha=test.alpha, passed=not own.rejected, deterministic=test.deterministic,
        deterministic_tol=test.tol, detectable_abs_error=test.detectable_abs_error,
        detectable_rel_error=test.detectable_rel_error, negative_controls=controls,
        negative_control_z=control_z, negative_control_expected_z=expected_z,
    )
