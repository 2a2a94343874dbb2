"""The README's examples are run: its console blocks for ``python -m derive.expect`` and its Python session."""

from __future__ import annotations

import doctest
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def console_examples() -> list[tuple[list[str], str]]:
    """``(argv, expected stdout)`` for every ``$ python -m derive.expect ...`` line of the README."""
    lines = README.read_text(encoding="utf-8").splitlines()
    examples = []
    for k, line in enumerate(lines):
        if line.startswith("$ python -m derive.expect "):
            argv = shlex.split(line[2:])
            expected = []
            for follow in lines[k + 1:]:
                if not follow.strip() or follow.startswith("```") or follow.startswith("$ "):
                    break
                expected.append(follow)
            examples.append((argv, "\n".join(expected)))
    return examples


EXAMPLES = console_examples()


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("argv, expected", EXAMPLES, ids=[" ".join(a[3:4]) for a, _ in EXAMPLES])
def test_console_example(argv, expected):
    out = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected.strip()


def test_python_session():
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0
