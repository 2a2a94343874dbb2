"""The README's user-results example, run end to end: discovered by environment variable and by entry point,
listed, shown, evaluated, exported and confirmed like the built-in results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_files() -> dict[str, str]:
    """The README's python blocks whose first line names a file (``# my_results.py``)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    files = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith(".py"):
            files[first[2:]] = block
    return files


def write_example(directory: Path) -> None:
    files = readme_files()
    assert {"my_results.py", "my_results_checks.py"} <= set(files)
    for name, code in files.items():
        (directory / name).write_text(code, encoding="utf-8")


def run(args, env, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def by_variable(tmp_path):
    write_example(tmp_path)
    return {**os.environ, "PYTHONPATH": str(tmp_path), "ICL_DERIVE_RESULTS": "my_results"}


@pytest.fixture
def by_entry_point(tmp_path):
    write_example(tmp_path)
    info = tmp_path / "my_results_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-results-dist\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[icl_derive.results]\nmine = my_results\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("ICL_DERIVE_RESULTS", None)
    return env


def test_listed_shown_evaluated_exported_and_confirmed(by_variable, tmp_path):
    env = by_variable
    listing = run(["-m", "derive"], env)
    assert listing.returncode == 0 and "mine.norm_moment" in listing.stdout, listing.stderr
    shown = run(["-m", "derive", "show", "mine.norm_moment", "--format", "json"], env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["equations"][0]["rhs"] == "d * (d + 2)"
    evaluated = run(["-m", "derive", "eval", "mine.norm_moment", "--at", '{"d": 3}'], env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["values"]["moment"] == 15.0
    out = tmp_path / "exported"
    exported = run(["-m", "derive.export", "--out", str(out), "--no-readme", "--no-compile"], env)
    assert exported.returncode == 0, exported.stderr
    assert (out / "mine.norm_moment.md").exists() and "mine.norm\\_moment" in (out / "derivations.tex").read_text()
    confirmed = run(["-m", "numeric.confirm", "mine.norm_moment", "--samples", "200000", "--format", "json"], env)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    (row,) = json.loads(confirmed.stdout)
    assert row["passed"] and all(row["negative_controls"].values())


def test_discovered_through_an_entry_point(by_entry_point):
    listing = run(["-m", "derive"], by_entry_point)
    assert listing.returncode == 0 and "mine.norm_moment" in listing.stdout, listing.stderr


def test_a_missing_user_module_is_one_line(tmp_path):
    env = {**os.environ, "ICL_DERIVE_RESULTS": "no_such_results_module"}
    out = run(["-m", "derive"], env)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
