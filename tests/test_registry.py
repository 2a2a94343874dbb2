"""The registry: one declaration per result, discovered everywhere; derive never imports torch."""

import subprocess
import sys

from derive.registry import all_results, get


def test_ids_unique_and_namespaced():
    ids = [r.id for r in all_results()]
    assert len(ids) == len(set(ids))
    for r in all_results():
        assert "." in r.id and r.title and r.statement and r.module.startswith("derive.")


def test_every_result_derives_with_steps():
    for r in all_results():
        derivation = r.derivation
        assert derivation.steps, r.id
        for step in derivation.steps:
            assert step.lhs and step.because


def test_get_unknown_id_names_the_known_ones():
    try:
        get("no.such.result")
    except KeyError as error:
        assert "gaussian.isserlis_4" in str(error)
    else:
        raise AssertionError("expected KeyError")


def test_paper_statements_match_where_given():
    for r in all_results():
        if r.paper is None or not r.id.startswith("gaussian."):
            continue
        assert r.derivation.values["expectation"] == r.paper(), r.id


def test_derive_never_imports_torch():
    code = ("import sys, importlib, pkgutil, derive\n"
            "for m in pkgutil.iter_modules(derive.__path__): importlib.import_module('derive.' + m.name)\n"
            "from derive.registry import all_results\n"
            "[r.derivation for r in all_results()]\n"
            "assert 'torch' not in sys.modules, 'derive imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_listing_cli():
    out = subprocess.run([sys.executable, "-m", "derive"], capture_output=True, text=True)
    assert out.returncode == 0
    for r in all_results():
        assert r.id in out.stdout
