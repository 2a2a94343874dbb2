"""numeric.incontext_training: the experiment runs end to end at a tiny size; bad input is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import torch

from numeric import incontext_training as tr


def test_tiny_experiment_and_figure(tmp_path):
    config = tr.Config(depths=(1, 2), seeds=2, steps=10, batch=32, test_prompts=256)
    results = tr.run_experiment(config, torch.device("cpu"))
    rows = results["rows"]
    assert [r["depth"] for r in rows] == [1, 2] and set(rows[1]["layerwise"]) == {"1", "2"}
    for row in rows:
        assert row["least_squares"] < row["pgd"] and row["least_squares"] < row["gd"]  # N > d, little noise
    assert rows[1]["pgd"] < rows[0]["pgd"]  # a second preconditioned step helps
    path = tr.save_figure(results, str(tmp_path / "depth.png"))
    assert (tmp_path / "depth.png").stat().st_size > 10_000 and path.endswith("depth.png")


def test_stack_with_gd_weights_is_gd():
    """The training model, set to the construction's weights, reproduces t steps of preconditioned GD."""
    config = tr.Config(d=3, N=8)
    batch = tr.prompts(config, 16, torch.Generator().manual_seed(0), "cpu")
    model = tr.LinearAttentionStack(3, 3, torch.Generator().manual_seed(0))
    P = 0.2 * torch.eye(3, dtype=torch.float64) + 0.1 * torch.triu(torch.ones(3, 3, dtype=torch.float64), 1)
    with torch.no_grad():
        model.W_pv.zero_()
        model.W_kq.zero_()
        model.W_pv[:, 3, 3] = -1.0
        model.W_kq[:, :3, :3] = P.T
        readouts = model(tr.embed(batch))
    for a, b in zip(readouts, tr.gd_predictions(batch, model.preconditioners())):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    wrong = tr.gd_predictions(batch, [P.T] * 3)  # the transpose of the preconditioner
    assert not torch.allclose(readouts[-1], wrong[-1], rtol=1e-6)


def test_bad_input_is_one_line_exit_2():
    for args in (["--depths", "0,2"], ["--seeds", "1"]):
        out = subprocess.run([sys.executable, "-m", "numeric.incontext_training", *args], capture_output=True,
                             text=True)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and out.stderr.startswith("error:"), args
