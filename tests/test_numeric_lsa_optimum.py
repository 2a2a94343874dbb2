"""The numeric confirmation of the LSA optimum chain (numeric/lsa_optimum.py) at CI sizes.

Every Monte Carlo check passes at its ``ci_samples`` and rejects its negative
controls; the deterministic checks pass at small settings and flag their wrong
variants; the conditional estimators agree with the brute-force forward pass
(statistically, and exactly where a cubature over w makes it an identity); SGD training of the full model keeps u12, u21 at 0 within noise
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
    assert {c.id for c in lsa.CHECKS + dyn.CHECKS} == LSA_IDS


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


def test_context_estimator_agrees_with_brute_force():
    """E[loss | context] (w, x_q integrated out) and the plain forward-pass loss estimate the same mean."""
    instance = lsa.instance_maker("full")(np.random.default_rng(7))
    brute = _moments(lsa.loss_samples, instance, 300_000, seed=1)
    context = _moments(lsa.context_loss_samples, instance, 20_000, seed=2, batch=10_000)
    z = abs(float(brute.mean) - float(context.mean)) / math.hypot(float(brute.stderr), float(context.stderr))
    assert z < 5.0, (float(brute.mean), float(context.mean), z)
    assert float(context.variance) < 0.1 * float(brute.variance)


def _forward_pass_cubature_over_w(instance, x, xq, W_PV, W_KQ):
    """E_w of the forward-pass loss for fixed x, x_q by the 3-point Gauss-Hermite rule in each w coordinate
    (exact: the loss is of degree 4 in w)."""
    d = x.shape[-1]
    nodes, weights = lsa.hermite_cubature(d, 3)
    w = torch.as_tensor(nodes)[:, None, :].expand(len(nodes), x.shape[0], d)
    prompts = {"x": x.expand(len(nodes), *x.shape), "xq": xq.expand(len(nodes), *xq.shape), "w": w,
               "y": (x.expand(len(nodes), *x.shape) @ w.unsqueeze(-1)).squeeze(-1)}
    yhat, target = lsa.prediction_and_target(prompts, W_PV, W_KQ)
    return (0.5 * (yhat - target) ** 2 * torch.as_tensor(weights)[:, None]).sum(0)


@pytest.mark.parametrize("kind", ["full", "zero_cross", "minimizer"])
def test_conditional_formula_is_the_forward_pass_integrated_over_w(kind):
    """Identity to rounding: loss_given_query = E_w[forward-pass loss] (cubature over w), and its gradient
    (autograd through both) agrees; the closed-form gradient_given_context = autograd of loss_given_context."""
    instance = lsa.instance_maker(kind)(np.random.default_rng(3))
    d, N = 3, int(instance["N"])
    generator = torch.Generator().manual_seed(0)
    prompts = lsa.sample_prompts(instance["Lambda"], N, (50,), generator, "cpu")
    x, xq = prompts["x"], prompts["xq"]
    pv_full = torch.as_tensor(instance["W_PV"]).clone().requires_grad_(True)
    kq_full = torch.as_tensor(instance["W_KQ"]).clone().requires_grad_(True)
    brute = _forward_pass_cubature_over_w(instance, x, xq, pv_full, kq_full)
    S = x.transpose(1, 2) @ x / N
    formula = lsa.loss_given_query(pv_full[d], kq_full[:, :d], S, xq, N)
    torch.testing.assert_close(formula, brute, rtol=1e-11, atol=1e-11)
    g_brute = torch.autograd.grad(brute.sum(), (pv_full, kq_full))
    g_formula = torch.autograd.grad(formula.sum(), (pv_full, kq_full))
    for a, b in zip(g_formula, g_brute):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # closed-form gradient of E[loss | context] = autograd
    chol = torch.as_tensor(np.linalg.cholesky(instance["Lambda"]))
    wpv, wkq = torch.as_tensor(instance["W_PV"]), torch.as_tensor(instance["W_KQ"])
    pv = wpv[d].expand(50, 1, d + 1).clone().requires_grad_(True)
    K = wkq[:, :d].expand(50, 1, d + 1, d).clone().requires_grad_(True)
    g_pv, g_K = torch.autograd.grad(lsa.loss_given_context(pv, K, S, chol, N).sum(), (pv, K))
    closed = lsa.gradient_given_context(wpv[d], wkq[:, :d], S, chol, N)
    auto = {"u12": g_pv[:, 0, :d], "u": g_pv[:, 0, d:], "U11": g_K[:, 0, :d].reshape(50, -1), "u21": g_K[:, 0, d]}
    for name in auto:
        torch.testing.assert_close(closed[name], auto[name], rtol=1e-10, atol=1e-10)


def test_query_cubature_is_exact_for_the_loss_given_the_context():
    """E_{x_q}[loss_given_query] by the even 4-point rule = by a 6-point full rule (both exact: degree 6)."""
    instance = lsa.instance_maker("full")(np.random.default_rng(4))
    d, N = 3, 4
    S, chol, _, _ = lsa._context_draws(instance, 20, torch.Generator().manual_seed(1), "cpu")
    wpv, wkq = torch.as_tensor(instance["W_PV"]), torch.as_tensor(instance["W_KQ"])
    nodes, weights = lsa.hermite_cubature(d, 6)
    xq = torch.as_tensor(nodes) @ chol.T
    reference = lsa.loss_given_query(wpv[d], wkq[:, :d], S[:, None], xq[None], N) @ torch.as_tensor(weights)
    torch.testing.assert_close(lsa.loss_given_context(wpv[d], wkq[:, :d], S, chol, N), reference, rtol=1e-11,
                               atol=1e-11)


def test_cross_gradient_symmetry_check_is_exact_and_its_wrong_variant_fails():
    report = lsa.cross_gradient_symmetry_check(samples=300, seed=2)
    assert report["passed"], report["detail"]
    assert report["error"] <= report["tolerance"] and all(report["negative_controls"].values())


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
    runs = {c.run for c in lsa.CHECKS + dyn.CHECKS if isinstance(c, DeterministicCheck)}
    assert runs == {lsa.prediction_check, lsa.cross_gradient_symmetry_check, dyn.flow_check, dyn.training_check}


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
    for sampler in (lsa.loss_samples, lsa.conditional_loss_samples, lsa.gradient_sampler("u12", "u21"),
                    lsa.context_loss_samples, lsa.context_gradient_sampler("U11", "u", "u12", "u21")):
        values = sampler(inst, 1000, generator, device)
        assert values.device.type == "cuda" and torch.isfinite(values).all()
    report = dyn.training_experiment(seed=0, device=device, **{**dyn.TRAINING_SMALL, "horizon": 3.0})
    assert np.isfinite(report["extrapolated"]["uU11"]).all()
