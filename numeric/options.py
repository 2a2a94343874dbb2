"""The command-line options every numeric entry point shares, built on :mod:`derive.cli`.

``--device auto|cpu|cuda``, ``--seed S`` (>= 0), ``--format text|json`` and,
where a sample count applies, ``--samples N`` (>= 2).  :func:`run_settings` is the
block of run settings (seed, device, sizes, torch version) that every
experiment's JSON output carries, so that a number can be reproduced.

>>> from derive.cli import OneLineParser
>>> parser = add_common_options(OneLineParser(prog="demo"), samples=True)
>>> args = parser.parse_args(["--seed", "3", "--samples", "10"])
>>> (args.seed, args.samples, args.device, args.format)
(3, 10, 'auto', 'text')
"""

from __future__ import annotations

import argparse
import platform
from typing import Any

from derive.cli import UsageError
from numeric.device import DEVICE_NAMES


def integer_at_least(minimum: int, why: str):
    """argparse type: an integer >= ``minimum``; ``why`` is the one-line complaint otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise UsageError(f"{why}, got {value}")
        return value

    return parse


def device_name(text: str) -> str:
    key = str(text).strip().lower()
    if key not in DEVICE_NAMES:
        raise UsageError(f"unknown device {text!r}; expected one of {', '.join(DEVICE_NAMES)}")
    return key


def add_common_options(parser: argparse.ArgumentParser, samples: bool = False, seed_help: str | None = None,
                       samples_help: str | None = None) -> argparse.ArgumentParser:
    """Add ``--device``, ``--seed``, ``--format`` (and ``--samples`` when ``samples``) to ``parser``."""
    parser.add_argument("--device", type=device_name, default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--seed", type=integer_at_least(0, "--seed must be non-negative"), default=0,
                        help=seed_help or "seed of every random draw")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    if samples:
        parser.add_argument("--samples", type=integer_at_least(2, "--samples must be at least 2"), default=None,
                            help=samples_help or "number of samples (default: the check's own)")
    return parser


def run_settings(seed: int, device: Any, **sizes: Any) -> dict[str, Any]:
    """Seed, device (with the GPU model when it is CUDA), sizes, torch and python versions."""
    import torch

    device_text = str(device)
    settings: dict[str, Any] = {"seed": int(seed), "device": device_text, **sizes,
                                "torch": torch.__version__, "python": platform.python_version()}
    if device_text.startswith("cuda") and torch.cuda.is_available():
        settings["gpu"] = torch.cuda.get_device_name(0)
    return settings
