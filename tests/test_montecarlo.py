"""The streaming statistics and the z-test of numeric.montecarlo, on synthetic checks with known means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from numeric.checks import MonteCarloCheck
from numeric.device import resolve_device
from numeric.montecarlo import (
    StreamingMoments,
    ZTest,
    bonferroni_threshold,
    run_montecarlo,
    single_entry_alpha,
)


# ------------------------------------------------------------------ accumulator
def _feed(values: np.ndarray, batch_sizes: list[int]) -> StreamingMoments:
    moments = StreamingMoments()
    start = 0
    for size in batch_sizes:
        moments.update(torch.as_tensor(values[start:start + size]))
        start += size
    assert start == len(values)
    return moments


def _exact_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry mean and unbiased variance with exactly rounded sums (math.fsum)."""
    columns = values.reshape(len(values), -1).T
    means = np.array([math.fsum(c) / len(c) for c in columns])
    variances = np.array([math.fsum((c - mu) ** 2) / (len(c) - 1) for c, mu in zip(columns, means)])
    return means.reshape(values.shape[1:]), variances.reshape(values.shape[1:])


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e8, -1e10])
def test_accumulator_matches_exact_sums_with_large_offsets(offset):
    rng = np.random.default_rng(1)
    spread = np.array([[1.0, 1e-3], [7.0, 1e4], [0.5, 2.0]])
    values = offset + spread * rng.standard_normal((10_007, 3, 2))
    batch_sizes = [1, 2, 3000, 17, 4000, 2987]  # uneven, including single-sample batches
    moments = _feed(values, batch_sizes)
    assert moments.count == len(values)
    assert moments.mean.shape == moments.variance.shape == (3, 2)
    exact_mean, exact_var = _exact_moments(values)
    # The data only resolve a spread to ulp(offset): the best possible relative accuracy of the
    # variance is of order ulp(offset) / spread (naive power sums lose (offset / spread)^2 * eps).
    resolution = np.spacing(abs(offset) + 1.0) / spread
    assert np.all(np.abs(moments.variance / exact_var - 1) <= 1e-12 + resolution)
    assert np.all(np.abs(moments.mean - exact_mean) <= 4 * np.spacing(abs(offset) + spread))
    np.testing.assert_allclose(moments.stderr, np.sqrt(moments.variance / len(values)), rtol=1e-15)
    np.testing.assert_allclose(moments.variance, values.var(axis=0, ddof=1), rtol=1e-12 + resolution.max())


def test_accumulator_beats_naive_power_sums_at_large_offset():
    """Sum/sum-of-squares without a shift loses the variance entirely at offset 1e8; ours does not."""
    rng = np.random.default_rng(2)
    values = 1e8 + rng.standard_normal(100_000)
    naive = (np.sum(values**2) - np.sum(values) ** 2 / len(values)) / (len(values) - 1)
    moments = _feed(values, [25_000] * 4)
    reference = values.var(ddof=1)
    assert abs(naive - reference) / reference > 1e-3  # the naive formula is badly off
    assert abs(float(moments.variance) - reference) / reference < 1e-8


def test_accumulator_state_is_flat_in_the_number_of_samples():
    moments = StreamingMoments((4, 4))
    generator = torch.Generator().manual_seed(0)
    moments.update(torch.randn((10, 4, 4), generator=generator, dtype=torch.float64))
    after_one_batch = moments.state_nbytes()
    for _ in range(200):
        moments.update(torch.randn((1000, 4, 4), generator=generator, dtype=torch.float64))
    assert moments.count == 200_010
    assert moments.state_nbytes() == after_one_batch == 2 * 16 * 8  # mean and M2, float64


def test_accumulator_rejects_mismatched_batches_and_promotes_to_float64():
    moments = StreamingMoments()
    moments.update(torch.ones((3, 2), dtype=torch.float32))
    assert moments.mean.dtype == np.float64
    with pytest.raises(ValueError):
        moments.update(torch.ones((3, 5), dtype=torch.float64))
    with pytest.raises(TypeError):
        moments.update(torch.ones((3, 2), dtype=torch.int64))


# --------------------------------------------------------------------- threshold
def test_bonferroni_threshold_keeps_the_family_wise_rate():
    assert bonferroni_threshold(1) == pytest.approx(5.0, abs=1e-9)
    for entries in (1, 4, 16, 64):
        t = bonferroni_threshold(entries)
        assert entries * 2 * norm.sf(t) == pytest.approx(single_entry_alpha(), rel=1e-9)
    assert bonferroni_threshold(1) < bonferroni_threshold(16) < bonferroni_threshold(64)
    assert single_entry_alpha() == pytest.approx(5.733e-7, rel=1e-3)


# ------------------------------------------------------------ synthetic checks
MU = np.array([1.0, -2.0, 0.5, 3.0])
SIGMA = np.array([1.0, 2.0, 0.5, 4.0])


def _normal_sample(instance, batch, generator, device):
    noise = torch.randn((batch, 4), generator=generator, device=device, dtype=torch.float64)
    return torch.as_tensor(MU, device=device) + torch.as_tensor(SIGMA, device=device) * noise


def _synthetic_check(wrong=None, samples=2000):
    return MonteCarloCheck(id="synthetic.normal", instance=lambda rng: {}, exact=lambda inst: MU,
                           sample=_normal_sample, wrong=wrong or {}, samples=samples, ci_samples=samples,
                           batch=samples)


def test_false_alarm_rate_matches_the_nominal_level():
    """At k = 2 (family-wise alpha = 2 Phi(-2) = 4.55 %) a correct formula fails about 4.5 % of the time."""
    check = _synthetic_check()
    runs = 300
    alarms = sum(not run_montecarlo(check, 2000, "cpu", seed, k=2.0).passed for seed in range(runs))
    expected = runs * single_entry_alpha(2.0)  # ~13.6 (Bonferroni is slightly conservative)
    spread = np.sqrt(expected)
    assert expected - 3.5 * spread < alarms < expected + 4 * spread


def test_power_against_a_shift_of_eight_standard_errors():
    samples = 2000
    shift = np.zeros(4)
    shift[3] = 8 * SIGMA[3] / np.sqrt(samples)  # rejected with probability ~ P(N(8, 1) > 5.3) > 99 %
    check = _synthetic_check(wrong={"shifted": lambda inst: MU + shift}, samples=samples)
    outcomes = [run_montecarlo(check, samples, "cpu", seed) for seed in range(100)]
    assert sum(o.negative_controls["shifted"] for o in outcomes) >= 97
    assert sum(o.passed for o in outcomes) == 100  # and the 5-sigma test essentially never false-alarms


# ------------------------------------------- a hand-computed check end to end
LAMBDA = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])


def _outer_sample(instance, batch, generator, device):
    chol = torch.as_tensor(np.linalg.cholesky(instance["Lambda"]), device=device)
    x = torch.randn((batch, 3), generator=generator, device=device, dtype=torch.float64) @ chol.T
    return x[:, :, None] * x[:, None, :]


SECOND_MOMENT_CHECK = MonteCarloCheck(
    id="local.second_moment",
    instance=lambda rng: {"Lambda": LAMBDA},
    exact=lambda inst: inst["Lambda"],  # E[x x^T] = Lambda, by hand
    sample=_outer_sample,
    wrong={"identity": lambda inst: np.eye(3), "Lambda^2": lambda inst: inst["Lambda"] @ inst["Lambda"],
           "1.05 Lambda": lambda inst: 1.05 * inst["Lambda"]},
    samples=200_000, ci_samples=200_000, batch=50_000,
)


def test_hand_computed_check_passes_and_wrong_formulas_are_rejected():
    outcome = run_montecarlo(SECOND_MOMENT_CHECK, device="cpu", seed=3)
    assert outcome.samples == 200_000
    assert outcome.mean.shape == outcome.stderr.shape == outcome.z.shape == (3, 3)
    assert outcome.passed and outcome.max_z < outcome.threshold
    assert outcome.threshold == pytest.approx(bonferroni_threshold(9))
    assert not outcome.deterministic.any()
    expected_detectable = outcome.threshold * outcome.stderr.max() / np.abs(LAMBDA).max()
    assert outcome.detectable_rel_error == pytest.approx(expected_detectable)
    assert outcome.detectable_rel_error < 0.05  # so a 5 % error is caught
    assert outcome.negative_controls == {"identity": True, "Lambda^2": True, "1.05 Lambda": True}
    assert outcome.controls_rejected


def test_same_seed_same_outcome():
    first = run_montecarlo(SECOND_MOMENT_CHECK, 20_000, "cpu", seed=7)
    second = run_montecarlo(SECOND_MOMENT_CHECK, 20_000, "cpu", seed=7)
    np.testing.assert_array_equal(first.mean, second.mean)


def test_sample_of_the_wrong_shape_is_an_error():
    bad = MonteCarloCheck(id="local.bad", instance=lambda rng: {}, exact=lambda inst: np.zeros(3),
                          sample=lambda inst, batch, gen, dev: torch.zeros((batch, 4), dtype=torch.float64),
                          samples=10, batch=5)
    with pytest.raises(ValueError, match="shape"):
        run_montecarlo(bad)


# ---------------------------------------------------------- deterministic entries
def _with_exact_zeros(instance, batch, generator, device):
    noise = torch.randn((batch,), generator=generator, device=device, dtype=torch.float64)
    zeros = torch.zeros((batch,), device=device, dtype=torch.float64)
    ones = torch.ones((batch,), device=device, dtype=torch.float64)
    return torch.stack([noise, zeros, ones], dim=1)


def test_exact_zero_and_constant_entries_use_the_float64_tolerance():
    check = MonteCarloCheck(
        id="local.zeros", instance=lambda rng: {}, exact=lambda inst: np.array([0.0, 0.0, 1.0]),
        sample=_with_exact_zeros,
        wrong={"nonzero structural zero": lambda inst: np.array([0.0, 1e-6, 1.0]),
               "constant off by 1e-9": lambda inst: np.array([0.0, 0.0, 1.0 + 1e-9])},
        samples=10_000, batch=5_000)
    outcome = run_montecarlo(check, seed=0)
    assert outcome.deterministic.tolist() == [False, True, True]
    assert outcome.threshold == pytest.approx(5.0)  # only the stochastic entry is counted
    assert np.isfinite(outcome.z).all() and outcome.passed
    assert outcome.negative_controls == {"nonzero structural zero": True, "constant off by 1e-9": True}


def test_ztest_rounding_noise_within_tolerance_passes():
    test = ZTest(mean=np.array([1e-17, 2.0]), stderr=np.array([0.0, 0.01]), exact=np.array([0.0, 2.0]),
                 samples=100)
    assert test.deterministic.tolist() == [True, False]
    assert not test.compare(np.array([0.0, 2.0])).rejected
    assert test.compare(np.array([1e-9, 2.0])).rejected
    assert test.compare(np.array([np.nan, 2.0])).rejected


# ------------------------------------------------------------------- devices
def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_hand_computed_check_on_cuda():
    outcome = run_montecarlo(SECOND_MOMENT_CHECK, device="cuda", seed=3)
    assert outcome.device.startswith("cuda")
    assert outcome.passed and outcome.controls_rejected
