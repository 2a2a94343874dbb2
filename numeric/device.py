"""Choosing the torch device for the Monte Carlo checks.

``resolve_device("auto")`` is CUDA when a GPU is available and the CPU
otherwise; ``"cpu"`` and ``"cuda"`` ask for one explicitly.  Anything else,
and ``"cuda"`` on a machine without a GPU, raises :class:`ValueError` with a
one-line message (the CLIs print it as their single line on stderr).

>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import torch

DEVICE_NAMES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """The torch device meant by ``name`` (one of :data:`DEVICE_NAMES`)."""
    if not isinstance(name, str):
        raise ValueError(f"device must be one of {', '.join(DEVICE_NAMES)}; got {name!r}")
    key = name.strip().lower()
    if key == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but no CUDA GPU is available (use --device cpu or auto)")
        return torch.device("cuda")
    raise ValueError(f"unknown device {name!r}; expected one of {', '.join(DEVICE_NAMES)}")
