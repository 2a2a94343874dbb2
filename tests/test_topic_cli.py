"""Every topic module of ``derive`` prints its results as ``python -m derive.<topic>``."""

import importlib.util
import json
import subprocess
import sys

import pytest

from derive.registry import all_results
from derive.topic import topic_main

TOPICS = sorted({r.module for r in all_results() if r.module.startswith("derive.")})


@pytest.mark.parametrize("module", TOPICS)
def test_topic_module_is_runnable_and_prints_its_results(module, capsys):
    source = open(importlib.util.find_spec(module).origin, encoding="utf-8").read()
    assert 'if __name__ == "__main__":' in source, f"{module} has no entry point"
    assert topic_main(module, ["--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in printed] == [r.id for r in all_results() if r.module == module]


def test_one_topic_end_to_end_and_a_bad_option():
    done = subprocess.run([sys.executable, "-m", "derive.gaussian_moments"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "gaussian.isserlis_4" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "derive.gaussian_moments", "--format", "pdf"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
