"""Independent tasks (parameter points × seeds × d) on a local process pool or a Dask distributed cluster.

``run_tasks(function, tasks)`` calls ``function(task)`` for every task (a dict of plain numbers, so it
pickles) and returns the results in the order of ``tasks``, with a progress bar over tasks on stderr.

* default: a local :class:`concurrent.futures.ProcessPoolExecutor` (``workers`` processes; ``workers=1``
  runs in this process, which is what tests and tiny sweeps want);
* ``scheduler="tcp://host:8786"``: the tasks go to a running Dask distributed scheduler (``dask-scheduler``
  + ``dask-worker`` on a cluster), so the same command scales past one machine;
* ``client=``: an existing ``distributed.Client`` (e.g. on a ``LocalCluster``; the test-suite does this).

Each worker limits torch to one thread: the parallelism is across tasks, not inside one fit.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable

from tqdm import tqdm


def _one_thread(function: Callable, task: dict) -> Any:
    import torch

    torch.set_num_threads(1)
    return function(task)


def _progress(total: int, show: bool | None):
    return tqdm(total=total, file=sys.stderr, disable=not show if show is not None else not sys.stderr.isatty(),
                unit="task", desc="fits")


def run_tasks(function: Callable[[dict], Any], tasks: list[dict], *, scheduler: str | None = None, client=None,
              workers: int | None = None, progress: bool | None = None) -> list:
    """``[function(task) for task in tasks]``, computed in parallel; results keep the order of ``tasks``.

    >>> run_tasks(abs, [-1, 2, -3], workers=1, progress=False)
    [1, 2, 3]
    """
    results: list = [None] * len(tasks)
    with _progress(len(tasks), progress) as bar:
        if client is not None or scheduler is not None:
            return _run_dask(function, tasks, scheduler, client, bar, results)
        if workers == 1 or len(tasks) <= 1:
            for index, task in enumerate(tasks):
                results[index] = function(task)
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_one_thread, function, task): index for index, task in enumerate(tasks)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    return results


def _run_dask(function, tasks, scheduler, client, bar, results):
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:  # pragma: no cover - a dependency of the project
        raise ValueError("--scheduler needs the 'distributed' package (pip install distributed)") from None
    own = client is None
    if own:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {error}") from None
    try:
        futures = client.map(_one_thread, [function] * len(tasks), tasks, pure=False)
        index = {future.key: k for k, future in enumerate(futures)}
        for future in dask_completed(futures):
            results[index[future.key]] = future.result()
            bar.update()
    finally:
        if own:
            client.close()
    return results
