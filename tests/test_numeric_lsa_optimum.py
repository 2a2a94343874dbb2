"""The numeric confirmation of the LSA optimum chain (numeric/lsa_optimum.py) at CI sizes.

Every Monte Carlo check passes at its ``ci_samples`` and rejects its negative
controls; the deterministic checks pass at small settings and flag their wrong
variants; the conditional estimator agrees statistically with the brute-force
forward pass; SGD training of the full model keeps u12, u21 at 0 within noise
and drives u U11 to Gamma^{-1}.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numeric import lsa_dynamics as dyn
from numeric import lsa_optimum as lsa
from numeric.checks import DeterministicCheck, MonteCarloCheck
from numeric.montecarlo import StreamingMoments, run_montecarlo

MC_CHECKS = [c for c in lsa.CHECKS if isinstance(c, MonteCarloCheck)]
LSA_IDS = {"lsa.prediction", "lsa.population_loss", "lsa.invariant_subspace", "lsa.reduced_loss",
           "lsa.minimizer", "lsa.balanced_invariant"}


def test_every_lsa_result_has_a_check():
    from derive.registry import all_results

    registered = {r.id for r in all_results() if r.module == "derive.lsa_optimum"}
    assert registered == LSA_IDS
    assert {c.id for c in lsa.CHECKS} == LSA_IDS


# ------------------------------------------------------------------ the model itself
def test_forward_pass_matches_the_definition_prompt_by_prompt():
    rng = np.random.default_rng(3)
    inst = lsa.random_instance(rng, d=3, N=4, scale=1.0)
    generator = torch.Generator().manual_seed(3)
    prompts = lsa.sample_prompts(inst["Lambda"], 4, (5,), generator, "cpu")
    E = lsa.embed(prompts).numpy()
    out = lsa.lsa_forward(torch.as_tensor(E), torch.as_tensor(inst["W_PV"]), torch.as_tensor(inst["W_KQ"])).numpy()
    for k in range(5):
        x, xq, w = prompts["x"][k].numpy(), prompts["xq"][k].numpy(), prompts["w"][k].numpy()
        e = np.zeros((4, 5))
        e[:3, :4], e[:3, 4], e[3, :4] = x.T, xq, x @ w
        np.testing.assert_allclose(E[k], e, rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(out[k], e + inst["W_PV"] @ e @ (e.T @ inst["W_KQ"] @ e) / 4, rtol=1e-13, atol=1e-13)


def test_bench_entry_point():
    generator = torch.Generator().manual_seed(0)
    for method in ("conditional", "brute"):
        values = lsa.lsa_loss_samples(8, 16, 2, generator, torch.device("cpu"), method=method)
        assert values.shape == (2,) and values.dtype == torch.float64
    with pytest.raises(ValueError):
        lsa.lsa_loss_samples(8, 16, 2, generator, "cpu", method="magic")


# ------------------------------------------------ conditional vs brute-force estimator
def _moments(sampler, instance, samples, seed, batch=50_000):
    generator = torch.Generator().manual_seed(seed)
    moments = StreamingMoments(())
    for _ in range(samples // batch):
        moments.update(sampler(instance, batch, generator, "cpu"))
    return moments


def _bench_instance(d, N):
    return lsa.optimum_instance(d, N)


def _u21_only(rng):  # u12 = 0 (x_q integrated out), u21 != 0
    inst = lsa.instance_maker("zero_cross")(rng)
    inst["W_KQ"][3, :3] = 0.5 * rng.standard_normal(3)
    return inst


@pytest.mark.parametrize("case", ["full", "zero_cross", "u21_only", "bench d=8 N=16"])
def test_conditional_estimator_agrees_with_brute_force(case):
    rng = np.random.default_rng(5)
    instance = {"full": lambda: lsa.instance_maker("full")(rng),
                "zero_cross": lambda: lsa.instance_maker("zero_cross")(rng),
                "u21_only": lambda: _u21_only(rng),
                "bench d=8 N=16": lambda: _bench_instance(8, 16)}[case]()
    samples = 100_000 if case.startswith("bench") else 200_000
    brute = _moments(lsa.loss_samples, instance, samples, seed=1)
    conditional = _moments(lsa.conditional_loss_samples, instance, samples, seed=2)
    z = abs(float(brute.mean) - float(conditional.mean)) / math.hypot(float(brute.stderr), float(conditional.stderr))
    assert z < 5.0, (case, float(brute.mean), float(conditional.mean), z)
    assert float(conditional.variance) < float(brute.variance)  # it is a variance reduction
    if case in ("full", "zero_cross", "u21_only"):  # and both estimate the derived loss
        exact = float(lsa.exact_population_loss(instance))
        assert abs(float(conditional.mean) - exact) < 5.0 * float(conditional.stderr)


# --------------------------------------------------------------- the declared checks
@pytest.mark.parametrize("index", range(len(MC_CHECKS)),
                         ids=[f"{c.id}:{c.description[:40]}" for c in MC_CHECKS])
def test_montecarlo_check_passes_and_rejects_controls(index):
    check = MC_CHECKS[index]
    outcome = run_montecarlo(check, check.ci_samples, "cpu", seed=0)
    assert outcome.passed, (outcome.z, outcome.mean, outcome.exact)
    assert outcome.controls_rejected, outcome.negative_control_z


def test_prediction_check():
    report = lsa.prediction_check(samples=60, seed=1)
    assert report["passed"], report["detail"]
    assert max(report["errors"].values()) <= report["tolerance"]
    assert all(report["negative_controls"].values()), report["wrong"]


def test_flow_check_conserves_invariant_and_reaches_the_limit():
    report = dyn.flow_check(seed=1, d=2, N=4, T=60.0)
    assert report["passed"], report["detail"]
    assert report["invariant_drift"] <= dyn.INVARIANT_TOL
    assert report["limit_error"] <= dyn.LIMIT_TOL
    assert all(report["negative_controls"].values()), report["wrong"]


def test_training_keeps_cross_blocks_at_zero_and_finds_gamma_inverse(tmp_path):
    figure = tmp_path / "training.png"
    report = dyn.training_experiment(seed=0, figure=figure, **dyn.TRAINING_SMALL)
    assert report["passed"], report["detail"]
    for entry in report["per_lr"].values():
        assert entry["cross_passed"], entry["cross_max_z"]  # u12, u21 ~ 0 within noise
        assert entry["cross_rms"] < 0.1 * entry["U11_rms_final"]
    extrapolated = report["extrapolated"]
    assert extrapolated["passed"], extrapolated  # u U11 -> Gamma^-1 within MC error
    assert extrapolated["Lambda_inv_rejected"], extrapolated  # not the N -> infinity answer
    assert report["drift_decreases"] and 1.3 < report["drift_ratio"] < 3.5, report["drift_ratio"]
    assert figure.exists() and figure.stat().st_size > 10_000


def test_deterministic_checks_are_declared():
    runs = {c.run for c in lsa.CHECKS if isinstance(c, DeterministicCheck)}
    assert runs == {lsa.prediction_check, lsa.flow_check, lsa.training_check}


# ------------------------------------------------------------------- command line
@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--device", "tpu"], ["--bogus"], ["--figure", " "]])
def test_cli_bad_input_is_one_line(argv, capsys):
    from derive.cli import run

    assert run(dyn.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_samplers_run_on_cuda():
    device = torch.device("cuda")
    inst = lsa.instance_maker("full")(np.random.default_rng(0))
    generator = torch.Generator(device=device).manual_seed(0)
    for sampler in (lsa.loss_samples, lsa.conditional_loss_samples, lsa.gradient_sampler("u12", "u21")):
        values = sampler(inst, 1000, generator, device)
        assert values.device.type == "cuda" and torch.isfinite(values).all()
    report = dyn.training_experiment(seed=0, device=device, **{**dyn.TRAINING_SMALL, "horizon": 3.0})
    assert np.isfinite(report["extrapolated"]["uU11"]).all()
