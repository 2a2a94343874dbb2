"""Simulations of the fitted readout against the d → ∞ theory, and the sweep runners (process pool, Dask).

The finite-d tolerance is measured (docs/lu_asymptotics.md): at d = 40 every point of the small sweep is
within numeric.lu_asymptotics.TOLERANCE_40 (15 %) of the theory, and the mean |relative deviation| is
smaller than at d = 20 (about 0.1 → 0.04 over the default "points" sweep, roughly 1/d).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numeric import lu_asymptotics as lu
from numeric.sweep import run_tasks

CHEAP = [p for p in lu.sweep_points("points") if p["tau"] < 1]  # dual-form fits: fast in CI


def test_simulation_converges_to_the_theory():
    outcome = lu.asymptotic_check(seed=0, ds=(20, 40), seeds=(4, 2), points=CHEAP)
    assert outcome["passed"], outcome["detail"]
    assert outcome["deviation"][40] < outcome["deviation"][20]
    assert outcome["worst"] <= lu.TOLERANCE_40


def test_dual_and_primal_fits_equal_the_dense_solve():
    generator = torch.Generator().manual_seed(0)
    for n in (15, 40):  # p = d(d+1) = 20: dual below, primal above
        data = lu.draw_pretraining(4, 6, 3, n, 0.3, generator, "cpu")
        for lam in (0.0, 0.2):
            fast = lu.fit_readout(data["query"], data["features"], data["labels"], lam)
            dense = lu.fit_naive(data["query"], data["features"], data["labels"], lam)
            assert torch.allclose(fast, dense, atol=1e-9, rtol=1e-9)


def test_process_pool_and_inline_agree():
    tasks = lu.tasks_for([CHEAP[0]], [6], 2)
    inline = run_tasks(lu.simulate_task, tasks, workers=1, progress=False)
    pooled = run_tasks(lu.simulate_task, tasks, workers=2, progress=False)
    assert [r["e_icl"] for r in inline] == pytest.approx([r["e_icl"] for r in pooled], rel=1e-12)


def test_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    tasks = lu.tasks_for([CHEAP[0]], [6], 3)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = run_tasks(lu.simulate_task, tasks, client=client, progress=False)
    inline = run_tasks(lu.simulate_task, tasks, workers=1, progress=False)
    assert [r["seed"] for r in remote] == [t["seed"] for t in tasks]
    assert np.allclose([r["e_icl"] for r in remote], [r["e_icl"] for r in inline], rtol=1e-12)


@pytest.mark.parametrize("argv", [["--d", "1"], ["--seeds", "0"], ["--sweep", "lambda"], ["--device", "tpu"],
                                  ["--workers", "0"]])
def test_cli_bad_input_is_one_line(argv, capsys):
    from derive.cli import run

    assert run(lu.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_cli_runs_a_tiny_sweep(capsys, tmp_path):
    import json

    assert lu.main(["--d", "6", "8", "--seeds", "2", "--workers", "1", "--no-progress", "--device", "cpu",
                    "--plain-prompts", "4000", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["sweeps"]["points"]["rows"]
    assert {r["d"] for r in rows} == {6, 8} and all(r["seeds"] == 2 for r in rows)
    assert abs(report["plain_monte_carlo"]["z"]) < 5
