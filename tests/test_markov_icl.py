"""Tests of numeric.markov_icl (small configuration) and of numeric.iclr_rank's checks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from numeric import markov_icl as mi
from numeric.checks import all_checks

SMALL = mi.Config(states=3, length=32, steps=300, batch=64, eval_sequences=600, seed=1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small_run():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield mi.run_experiment(SMALL, CPU, models=("linear", "linear_prev", "perm_mlp", "softmax2"),
                                fixed_chain=True, show_progress=False)
    finally:
        torch.set_num_threads(threads)


def test_small_run_orders_the_models(small_run):
    results, curves, _ = small_run
    assert results["bigram"]["loss"] < results["unigram"]["loss"] - 5 * results["bigram"]["stderr"]
    assert results["linear"]["gap_closed"] <= 0.3
    assert results["perm_mlp"]["gap_closed"] <= 0.3
    assert results["linear_prev"]["gap_closed"] >= 0.6
    assert results["softmax2"]["gap_closed"] >= 0.6
    # footnote 2: on one fixed chain the linear layer gets near that chain's oracle
    fixed = results["linear_fixed_chain"]["loss"]
    assert fixed - results["oracle_fixed_chain"]["loss"] < 0.2 * (
        results["unigram_fixed_chain"]["loss"] - results["oracle_fixed_chain"]["loss"])
    assert all(len(curves[name]) == entry["steps"] for name, entry in results.items() if name in curves)


def test_shuffle_invariance(small_run):
    _, _, trained = small_run
    generator = torch.Generator().manual_seed(5)
    tokens, _ = mi.sample_batch(50, SMALL.states, SMALL.length, generator, CPU)
    shuffled = mi.shuffle_context(tokens, generator)
    assert torch.equal(tokens[:, -1], shuffled[:, -1])
    assert torch.equal(F.one_hot(tokens).sum(1), F.one_hot(shuffled).sum(1))
    linear_change = mi.last_position_logits(trained["linear"], tokens) - mi.last_position_logits(
        trained["linear"], shuffled)
    assert linear_change.abs().max().item() < 1e-10
    softmax_change = mi.last_position_logits(trained["softmax2"], tokens) - mi.last_position_logits(
        trained["softmax2"], shuffled)
    assert softmax_change.abs().max().item() > 1e-3
    # the previous-token layer sees bigrams, so it is not invariant either
    prev_change = mi.last_position_logits(trained["linear_prev"], tokens) - mi.last_position_logits(
        trained["linear_prev"], shuffled)
    assert prev_change.abs().max().item() > 1e-3


def test_exact_baselines_on_long_sequences():
    generator = torch.Generator().manual_seed(0)
    tokens, transitions = mi.sample_batch(200, 4, 400, generator, CPU)
    losses = {k: mi.summarize(v)["loss"] for k, v in mi.exact_losses(tokens, transitions, 4).items()}
    assert losses["oracle"] <= losses["bigram"] <= losses["unigram"]
    assert losses["bigram"] - losses["oracle"] < 0.05  # the estimator converges


def test_estimators_match_counting():
    tokens = torch.tensor([[0, 1, 1, 2, 0, 1]])
    states = 3
    unigram = mi.unigram_log_probs(tokens, states).exp()[0]
    bigram = mi.bigram_log_probs(tokens, states).exp()[0]
    assert unigram.shape == bigram.shape == (6, 3)
    # at t = 4 (prefix 0 1 1 2 0): counts (2, 2, 1) + 1 over 5 + 3
    assert torch.allclose(unigram[4], torch.tensor([3.0, 3.0, 2.0], dtype=torch.float64) / 8)
    # at t = 4 the token is 0; transitions out of 0 so far: 0 -> 1 once
    assert torch.allclose(bigram[4], torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 4)
    # at t = 2 the token is 1; transitions out of 1 within 0 1 1: 1 -> 1 once
    assert torch.allclose(bigram[2], torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 4)
    transitions = torch.full((1, 3, 3), 1 / 3, dtype=torch.float64)
    oracle = mi.oracle_log_probs(tokens, transitions)
    assert torch.allclose(oracle, torch.full((1, 6, 3), 1 / 3, dtype=torch.float64).log())


def test_sampled_chains_follow_transitions():
    generator = torch.Generator().manual_seed(2)
    transitions = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.0, 0.5]], dtype=torch.float64)
    tokens = mi.sample_chains(transitions.expand(300, 3, 3), 50, generator)
    pairs = mi.prefix_bigram_counts(tokens, 3)[:, -1].sum(0)
    assert pairs[0, 0] == pairs[0, 2] == pairs[1, 0] == pairs[1, 1] == pairs[2, 1] == 0
    assert abs(pairs[2, 0] / pairs[2].sum() - 0.5) < 0.05


def test_linear_attention_is_its_definition():
    torch.manual_seed(0)
    model = mi.LinearAttention(4, heads=2).double()
    tokens = torch.randint(4, (3, 10))
    z = F.one_hot(tokens, 4).double()
    expected = torch.zeros(3, 10, 4, dtype=torch.float64)
    for t in range(10):
        for h in range(2):
            scores = z[:, t : t + 1] @ model.query[h] @ model.key[h].T @ z[:, : t + 1].transpose(1, 2)
            expected[:, t] += (scores @ z[:, : t + 1] @ model.value[h]).squeeze(1) / (t + 1)
    assert torch.allclose(model(tokens), expected + model.bias, atol=1e-12)


def test_cli_small_json_and_figure(tmp_path, capsys):
    figure = tmp_path / "markov.png"
    threads = torch.get_num_threads()
    try:
        code = mi.main(["--states", "3", "--length", "8", "--steps", "2", "--device", "cpu",
                        "--format", "json", "--figure", str(figure)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["settings"]["seed"] == 0 and payload["settings"]["states"] == 3 and "torch" in payload["settings"]
    assert payload["figure"] == str(figure)
    results = payload["results"]
    for name in ("unigram", "bigram", "oracle", "linear", "linear_prev", "perm_mlp", "softmax1", "softmax2"):
        assert {"loss", "stderr"} <= set(results[name])
    assert figure.stat().st_size > 1000


@pytest.mark.parametrize("arguments", [
    ["--states", "1"], ["--length", "1"], ["--steps", "0"], ["--device", "tpu"], ["--states", "x"],
] + ([["--device", "cuda"]] if not torch.cuda.is_available() else []))
def test_cli_bad_input(arguments):
    out = subprocess.run([sys.executable, "-m", "numeric.markov_icl", *arguments, "--figure", ""],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.parametrize("check", [c for checks in all_checks().values() for c in checks
                                   if c.id.startswith("iclr.")], ids=lambda c: c.id)
def test_iclr_checks_pass(check):
    outcome = check.run(10, "cpu", 0)
    assert outcome["passed"], outcome["detail"]


def test_iclr_checks_cover_results():
    from derive.registry import all_results

    iclr_ids = {r.id for r in all_results() if r.id.startswith("iclr.")}
    assert iclr_ids <= set(all_checks())
