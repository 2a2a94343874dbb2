"""python -m derive.export: derivations/ and the README table are fresh, deterministic, complete and compile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from derive import export, registry
from derive.cli import run
from derive.registry import Derivation, Result, Step, all_results

ROOT = Path(__file__).resolve().parent.parent
PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None, reason="pdflatex is not installed (apt-get install texlive-latex-base "
                             "texlive-latex-recommended; .ci/run does this)")

NASTY = ("100% & #1_x ^ {b} ~ $5 \\ <a> |z| “q” — café, with `E(x @ x.T @ A @ x) = tr(A @ Lambda)` "
         "and `N >= 1`, i.e. `x[i]`")


def fake_module() -> types.ModuleType:
    """A module declaring one result, as a new derive module would (never imported from disk)."""
    from derive.engine.pipeline import declare
    from derive.engine.polynomial import Polynomial
    from derive.references import Reference
    from derive.registry import Equation, Source

    module = types.ModuleType("derive._fake_export_results", "Fake results for the export test.\n\nMore text.\n")
    context = declare(gaussians={"x": "Lambda"}, scalars=["c"], latex_names={"x": "x_{q}"})
    long_sum = Polynomial.of(" + ".join(f"{k + 1} * c**{k} * tr(A**{k % 5 + 1})" for k in range(40)), context)
    reference = Reference("fake2026", "A. Author and B. Author", "A fake source: " + NASTY.split("`")[0], "Nowhere",
                          2026, url="https://example.org/a_b~c%d")
    module.RESULTS = [Result(
        id="fake.added_result", title="A result added later: " + NASTY,
        equations=(Equation("E(x.T @ A @ x)", "tr(A @ Lambda)"), Equation("long", value="long")),
        derive=lambda: Derivation(steps=(
            Step("long", long_sum, "a long sum " + NASTY),
            Step("E(x.T @ A @ x) + at(grad(long, A), c=2) - long", long_sum, "again"),
        ), values={"long": long_sum}, context=context, definitions={"long": long_sum}),
        sources=(Source(reference, "§1"),), assumptions=(NASTY, "`x[i].T @ x[i] >= 0`"))]
    for result in module.RESULTS:
        object.__setattr__(result, "module", module.__name__)
    return module


@pytest.fixture
def fake(monkeypatch):
    """Register the fake module in the registry (as if its file were in derive/), then restore."""
    module = fake_module()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = registry.result_modules()
    monkeypatch.setattr(registry, "result_modules", lambda: real + [module.__name__])
    registry.all_results.cache_clear()
    yield module
    registry.all_results.cache_clear()


def tree(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# ---------------------------------------------------------------- freshness

def test_derivations_dir_is_fresh(tmp_path):
    export.export(all_results(), tmp_path)
    committed, fresh = tree(ROOT / "derivations"), tree(tmp_path)
    missing, extra = sorted(set(fresh) - set(committed)), sorted(set(committed) - set(fresh))
    assert not missing and not extra, f"derivations/ is stale (missing {missing}, extra {extra}); " \
                                      "run python -m derive.export"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"derivations/ is stale ({stale}); run python -m derive.export"


def test_readme_table_is_fresh():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert export.START in text and export.END in text, "README.md has no results markers"
    table = export.readme_table(all_results(), link_dir="derivations")
    assert export.update_readme_text(text, table) == text, "README results table is stale; run python -m derive.export"
    for result in all_results():
        assert f"[`{result.id}`](derivations/{result.id}.md)" in text


# ---------------------------------------------------------------- determinism

def test_two_runs_are_byte_identical(tmp_path):
    outs = []
    for seed in ("1", "2"):
        (tmp_path / seed).mkdir()
        out, readme = tmp_path / seed / "derivations", tmp_path / seed / "README.md"
        readme.write_text("# Title\n\nText.\n", encoding="utf-8")
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-m", "derive.export", "--out", str(out), "--readme", str(readme),
                               "--no-compile"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append((tree(out), readme.read_bytes()))
    assert outs[0] == outs[1]
    # and in-process rendering agrees with the command's output
    assert {k: v.encode() for k, v in export.render(all_results()).items()} == outs[0][0]


# ---------------------------------------------------------------- a new result appears everywhere

def test_added_result_appears_without_touching_any_list(fake, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\nIntro.\n", encoding="utf-8")
    out = tmp_path / "derivations"
    assert run(export.main, ["--out", str(out), "--readme", str(readme), "--no-compile"]) == 0
    files = tree(out)
    assert "fake.added_result.tex" in files and "fake.added_result.md" in files
    document = files["derivations.tex"].decode()
    assert "Fake results for the export test" in document  # the group title: first docstring line
    assert "\\label{res:fake.added_result}" in document
    for result in all_results():
        assert f"{result.id}.md" in files
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Project\n\nIntro.\n\n## Results\n")
    assert "[`fake.added_result`](derivations/fake.added_result.md)" in text
    # running again is a no-op on the README, and replaces only the part between the markers
    readme.write_text(text + "\n## After\n", encoding="utf-8")
    assert run(export.main, ["--out", str(out), "--readme", str(readme), "--no-compile"]) == 0
    assert readme.read_text(encoding="utf-8") == text + "\n## After\n"


def test_export_takes_results_as_a_parameter(monkeypatch):
    module = fake_module()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    files = export.render(module.RESULTS)
    assert sorted(files) == ["derivations.tex", "fake.added_result.md", "fake.added_result.tex"]
    rows = files["fake.added_result.tex"].count("&\\quad")
    assert rows >= 6, "a 40-term sum must be broken over several rows"
    assert "x_{q}" in files["fake.added_result.tex"]  # the context's latex names
    md = files["fake.added_result.md"]
    assert "\\begin{aligned}" in md and md.count("```math\n") == 4  # two equations, two steps


def test_stale_generated_files_are_removed_others_kept(tmp_path):
    (tmp_path / "old.result.md").write_text(f"{export.MD_HEADER} from x; do not edit. -->\n", encoding="utf-8")
    (tmp_path / "old.result.tex").write_text(f"{export.TEX_HEADER} Source: x.\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("mine\n", encoding="utf-8")
    export.export([fake_module().RESULTS[0]], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "derivations.tex", "fake.added_result.md", "fake.added_result.tex", "notes.md"]


# ---------------------------------------------------------------- numeric status, read statically

def test_numeric_status_is_read_without_importing(tmp_path):
    (tmp_path / "fake_checks.py").write_text(
        "import torch\nCHECKS = [Check(id='fake.added_result', run=None), Check(id=\"other\")]\n", encoding="utf-8")
    (tmp_path / "helpers.py").write_text("ROWS = [Row(id='fake.not_a_check')]\n", encoding="utf-8")
    found = export.numeric_checks(tmp_path)
    assert found == {"fake.added_result": ["numeric.fake_checks"], "other": ["numeric.fake_checks"]}
    table = export.readme_table(fake_module().RESULTS, found)
    assert "checked by `numeric.fake_checks`" in table
    assert "no numeric check" in export.readme_table(fake_module().RESULTS, {})


def test_real_numeric_checks_are_found():
    found = export.numeric_checks()
    assert "gaussian.isserlis_4" in found  # numeric/gaussian_moments.py declares it


def test_export_never_imports_torch_or_numeric(tmp_path):
    code = ("import sys; from derive import export; "
            f"export.main(['--out', {str(tmp_path)!r}, '--no-readme', '--no-compile']); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numeric')); "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("argv", [["--out", "{file}"], ["--pdf-out", "x.pdf"], ["--pdf", "--no-compile"],
                                  ["--no-such-option"]])
def test_bad_input_is_one_line_exit_2(argv, tmp_path, capsys):
    afile = tmp_path / "a_file"
    afile.write_text("x", encoding="utf-8")
    argv = [a.replace("{file}", str(afile)) for a in argv] + ["--no-readme"]
    assert run(export.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


# ---------------------------------------------------------------- LaTeX

@needs_pdflatex
def test_document_compiles_to_a_nonempty_pdf(fake, tmp_path):
    pdf = tmp_path / "out" / "derivations.pdf"
    files = export.render(all_results())  # includes the fake result with nasty text and a 40-term sum
    overfull = export.compile_pdf(files[export.DOCUMENT], pdf)
    assert pdf.exists() and pdf.stat().st_size > 1000
    assert pdf.read_bytes().startswith(b"%PDF")
    wide = [line for line in overfull if export._overfull_points(line) > 10]
    assert not wide, f"formulas run off the page: {wide}"


@needs_pdflatex
def test_latex_error_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export, "latex_document",
                        lambda *a, **k: "\\documentclass{article}\\begin{document}\\nosuchmacro\\end{document}\n")
    assert run(export.main, ["--out", str(tmp_path / "d"), "--no-readme"]) == 1
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert errors == ["error: LaTeX: ! Undefined control sequence."], err


@needs_pdflatex
def test_pdf_flag_writes_next_to_the_output_dir(tmp_path):
    out = tmp_path / "derivations"
    assert run(export.main, ["--out", str(out), "--no-readme", "--pdf"]) == 0
    assert (tmp_path / "derivations.pdf").stat().st_size > 1000
    assert not list(out.glob("*.pdf"))


def test_export_elsewhere_leaves_the_readme_alone(tmp_path):
    readme = export.DEFAULT_README.read_bytes()
    assert export.main(["--out", str(tmp_path / "out"), "--no-compile"]) == 0
    assert export.DEFAULT_README.read_bytes() == readme
    assert (tmp_path / "out" / "derivations.tex").exists()


def test_prose_with_math_outside_the_grammar_is_refused():
    """Greek or operators outside backticks would need a translator: they are an error, with one line."""
    from derive.engine.printing import prose

    with pytest.raises(ValueError, match="backticks") as info:
        prose("for Λ ≥ 0", "latex")
    assert "\n" not in str(info.value)


@needs_pdflatex
def test_pdf_text_has_a_bibliography_and_no_internal_labels(tmp_path):
    """The compiled document names its sources by reference, each once in the bibliography, never as a seed."""
    import re

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    pdf = tmp_path / "derivations.pdf"
    export.compile_pdf(export.render(all_results())[export.DOCUMENT], pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"-\n|\s+", lambda m: "" if m.group(0).startswith("-") else " ", text)
    assert "seed" not in flat.lower() and "\\" not in flat
    assert "References" in flat
    for result in all_results():
        for source in result.sources:
            assert source.reference.title[:30] in flat, source.reference.title
            assert str(source.reference.year) in flat
