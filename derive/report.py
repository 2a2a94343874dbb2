"""Lay registered results out as terminal text, LaTeX, Markdown and JSON.

Every formula is printed by the one printer (:mod:`derive.engine.printing`):
equations and steps are grammar trees, rendered as grammar text, LaTeX or
GitHub math; prose (titles, assumptions, remarks, justifications) carries its
math in the grammar between backticks and is rendered by the same printer
(:func:`~derive.engine.printing.prose`).  This module only arranges: it
breaks long sums into rows at their top-level signs, aligns derivation steps,
and gathers the sources into one bibliography.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from derive.engine import grammar as g
from derive.engine.polynomial import Polynomial
from derive.engine.printing import expr_latex, expr_text, prose, signed_terms, to_latex, to_text
from derive.registry import Equation, Result, Step, flat_values

__all__ = ["GENERATED_BY", "result_text", "result_latex", "result_markdown", "result_json", "latex_document",
           "bibliography_latex", "equation_sides", "math_rows", "context_assumptions", "sources_of"]

GENERATED_BY = "python -m derive.export"
ROW_WIDTH = 64  # typeset letters per displayed row (about the text width of the document, see display_width)


# ---------------------------------------------------------------- what is printed

def _names(result: Result) -> dict:
    return dict(result.context.latex_names)


def _tree(math: Any):
    """A grammar tree for a step's or an equation's math, or None when it is not in the grammar (a sympy matrix)."""
    if isinstance(math, g.Expr):
        return math
    if isinstance(math, str):
        return g.parse(math)
    if isinstance(math, Polynomial):
        return math.expr()
    return None


def equation_sides(result: Result, equation: Equation) -> tuple:
    """The two sides of an equation as trees: the typed right side, or the derived value written out."""
    lhs = g.parse(equation.lhs)
    if equation.rhs is not None:
        return lhs, g.parse(equation.rhs)
    return lhs, flat_values(result.derivation.values)[equation.value].expr()


def context_assumptions(result: Result) -> list[str]:
    """Prose, derived from the context, for the distributions and the matrix properties the result assumes."""
    context = result.context
    lines = []
    for name, family in sorted(context.families.items()):
        mean = f"mean `{family.mean_text}`" if family.mean_text else "mean 0"
        what = "a scalar Gaussian" if family.dim == 1 else "Gaussian"
        lines.append(f"`{name}` is {what} with {mean} and covariance `{family.covariance}`")
    if context.families:
        lines.append("draws of different families, and the draws `x[i]` of one family at different indices, are "
                     "independent")
    for names, what in ((context.spd, "symmetric positive definite"), (context.symmetric - context.spd, "symmetric"),
                        (context.orthogonal, "orthogonal"), (context.orthonormal, "of orthonormal columns")):
        if names:
            listed = ", ".join(f"`{n}`" for n in sorted(names))
            lines.append(f"{listed} {'is' if len(names) == 1 else 'are'} {what}")
    return lines


def sources_of(result: Result) -> list:
    return [source.reference for source in result.sources]


def _source_text(source, fmt: str) -> str:
    where = f", {source.where}" if source.where else ""
    if fmt == "latex":
        return prose(source.reference.short(), "latex") + f"~\\cite{{{source.reference.key}}}" + prose(where, "latex")
    return source.reference.short() + where


# ---------------------------------------------------------------- long sums

def display_width(latex: str) -> float:
    """A rough typeset width of LaTeX math, in letters: commands count as one glyph, scripts as 0.6,
    a fraction as its wider part.  Enough to decide where a long sum breaks."""
    width, k = 0.0, 0
    while k < len(latex):
        ch = latex[k]
        if latex.startswith("\\frac{", k):
            num, k = _group(latex, k + 5)
            den, k = _group(latex, k)
            width += max(display_width(num), display_width(den))
            continue
        if ch in "^_":
            body, k = _group(latex, k + 1)
            width += 0.6 * display_width(body)
            continue
        if ch == "\\":
            match = re.match(r"\\([A-Za-z]+|.)", latex[k:])
            name = match.group(1)
            k += match.end()
            if name == "operatorname":
                body, k = _group(latex, k)
                width += len(body)
            elif name not in ("left", "right", "mathrm", "mathbb", "quad", "top"):
                width += 1.0
            continue
        width += 0.0 if ch in "{} " else 1.0
        k += 1
    return width


def _group(latex: str, k: int) -> tuple[str, int]:
    """The braced group (or single character) starting at ``latex[k]`` and the index after it."""
    if k < len(latex) and latex[k] == "{":
        depth = 0
        for j in range(k, len(latex)):
            depth += {"{": 1, "}": -1}.get(latex[j], 0)
            if depth == 0:
                return latex[k + 1:j], j + 1
    return latex[k:k + 1], k + 1


def math_rows(tree: g.Expr, width: float = ROW_WIDTH) -> list[list]:
    """The top-level terms of ``tree`` packed into rows ``[[(sign, term), ...], ...]``.

    A row holds as many terms as fit in ``width`` (the typeset width of their
    LaTeX, :func:`display_width`); a term wider than a row is a row of its own.
    """
    rows, row, used = [], [], 0.0
    for sign, term in signed_terms(tree):
        size = display_width(expr_latex(term)) + 2
        if row and used + size > width:
            rows.append(row)
            row, used = [], 0
        row.append((sign, term))
        used += size
    if row:
        rows.append(row)
    return rows


def _row_latex(row: list, names: dict, first: bool) -> str:
    out = []
    for k, (sign, term) in enumerate(row):
        body = expr_latex(term, names)
        body = f"\\left({body}\\right)" if isinstance(term, (g.Add, g.Sub)) else body
        if k == 0 and first:
            out.append(body if sign > 0 else f"-{body}")
        else:
            out.append(f"{'+' if sign > 0 else '-'} {body}")
    return " ".join(out)


def _display_rows(tree, names: dict, width: int) -> list[str]:
    rows = math_rows(tree, width)
    return [_row_latex(row, names, k == 0) for k, row in enumerate(rows)]


def _math_latex(math, names: dict) -> list[str]:
    """Rows of LaTeX for a step's math (one row unless it is a long sum)."""
    tree = _tree(math)
    if tree is None:
        return [to_latex(math, names)]
    return _display_rows(tree, names, ROW_WIDTH - 15)


# ---------------------------------------------------------------- terminal text

def wrap_sum(text: str, width: int = 100, indent: str = "        ") -> str:
    """Break a long sum at top-level ``+``/``-`` signs, one group of terms per line."""
    if len(text) <= width:
        return text
    pieces, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth += 1 if ch in "([" else -1 if ch in ")]" else 0
        if depth == 0 and text[k:k + 3] in (" + ", " - ") and k > start:
            pieces.append(text[start:k])
            start = k + 1
    pieces.append(text[start:])
    lines, line = [], ""
    for piece in (p.strip() for p in pieces):
        if line and len(line) + len(piece) + 1 > width:
            lines.append(line)
            line = ""
        line = f"{line} {piece}" if line else piece
    lines.append(line)
    return ("\n" + indent).join(l.strip() for l in lines)


def _math_text(math) -> str:
    tree = _tree(math)
    return wrap_sum(expr_text(tree) if tree is not None else to_text(math))


def _fill(text: str, indent: str) -> str:
    return textwrap.fill(text, 100, initial_indent=indent, subsequent_indent=" " * len(indent))


def result_text(result: Result, number: int | None = None, derivation: bool = True) -> str:
    head = f"[{number}] " if number is not None else ""
    lines = [f"{head}{result.id}: {prose(result.title)}"]
    for equation in result.equations:
        lhs, rhs = equation_sides(result, equation)
        lines.append(f"  {expr_text(lhs)} =\n        {wrap_sum(expr_text(rhs))}")
    if result.where:
        lines.append("  where " + "; ".join(f"{name} = {text}" for name, text in result.where))
    for label, items in (("assumptions", context_assumptions(result) + list(result.assumptions)),
                         ("remarks", list(result.remarks))):
        if items:
            lines.append(f"  {label}:")
            lines += [_fill(prose(item), "    - ") for item in items]
    if result.sources:
        lines.append("  sources: " + "; ".join(_source_text(s, "text") for s in result.sources))
    if derivation:
        lines.append("  derivation:")
        for k, step in enumerate(result.derivation.steps, 1):
            lines.append(f"  ({k}) {step.lhs} =\n        {_math_text(step.math)}\n      because: "
                         f"{prose(step.because)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- LaTeX

def _equation_latex(result: Result, equation: Equation, names: dict) -> list[str]:
    lhs, rhs = equation_sides(result, equation)
    left = expr_latex(lhs, names)
    rows = _display_rows(rhs, names, ROW_WIDTH - min(display_width(left), 30))
    out = [f"  {left} &= {rows[0]}"]
    out += [f"  &\\quad {row}" for row in rows[1:]]
    return out


def _align(blocks: list[list[str]]) -> str:
    rows = [row for block in blocks for row in block]
    return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"


def derivation_latex(result: Result) -> str:
    """The derivation: each justification, then its formula in one ``align*`` (steps aligned at ``=``)."""
    names = _names(result)
    lines = []
    for k, step in enumerate(result.derivation.steps, 1):
        because = f"({k})~{prose(step.because, 'latex', names)}:"
        lines.append(because if k == 1 else f"  \\intertext{{{because}}}")
        if k == 1:
            lines.append("\\begin{align*}")
        lhs = expr_latex(g.parse(step.lhs), names)
        rows = _math_latex(step.math, names)
        body = [f"  {lhs} &= {rows[0]}"] + [f"  &\\quad {row}" for row in rows[1:]]
        lines.append(" \\\\\n".join(body) + (" \\\\" if k < len(result.derivation.steps) else ""))
    lines.append("\\end{align*}")
    return "\n".join(lines)


def result_latex(result: Result, level: str = "subsection") -> str:
    """A LaTeX fragment: title, statement, definitions, assumptions, remarks, sources, derivation."""
    names = _names(result)
    lines = [f"\\{level}{{{prose(result.title, 'latex', names)}}}", f"\\label{{res:{result.id}}}",
             f"\\textbf{{Result}} \\texttt{{{prose(result.id, 'latex')}}}.", "",
             _align([_equation_latex(result, e, names) for e in result.equations])]
    if result.where:
        definitions = ",\\quad ".join(f"{expr_latex(g.Name(n), names)} = {expr_latex(g.parse(t), names)}"
                                      for n, t in result.where)
        lines += [f"where ${definitions}$.", ""]
    for label, items in (("Assumptions", context_assumptions(result) + list(result.assumptions)),
                         ("Remarks", list(result.remarks))):
        if items:
            lines.append(f"\\emph{{{label}.}}")
            lines.append("\\begin{itemize}\\setlength{\\itemsep}{0pt}\\setlength{\\parskip}{0pt}")
            lines += [f"  \\item {prose(item, 'latex', names)}" for item in items]
            lines.append("\\end{itemize}")
    if result.sources:
        lines += ["\\emph{Sources.} " + "; ".join(_source_text(s, "latex") for s in result.sources) + ".", ""]
    lines += ["\\emph{Derivation} (every formula computed by the engine).", derivation_latex(result)]
    return "\n".join(lines) + "\n"


PREAMBLE = r"""\documentclass{article}
\usepackage[margin=2cm]{geometry}
\usepackage[T1]{fontenc}
\usepackage[utf8]{inputenc}
\usepackage{amsmath,amssymb}
\usepackage{url}
\allowdisplaybreaks
\setcounter{MaxMatrixCols}{20}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.6ex plus 0.3ex}
"""


def bibliography_latex(references) -> str:
    """One ``thebibliography`` for the distinct references, in the order first cited."""
    seen, lines = set(), ["\\begin{thebibliography}{99}"]
    for reference in references:
        if reference.key in seen:
            continue
        seen.add(reference.key)
        text = prose(f"{reference.authors}. {reference.title}. {reference.venue}, {reference.year}.", "latex")
        if reference.arxiv:
            text += f" arXiv:{reference.arxiv}."
        if reference.url:
            text += f" \\url{{{reference.url}}}"
        lines.append(f"\\bibitem{{{reference.key}}} {text}")
    lines.append("\\end{thebibliography}")
    return "\n".join(lines)


def latex_document(results, title: str, groups: dict | None = None) -> str:
    """A standalone document; ``groups`` maps a section title to the results under it; one bibliography."""
    parts = [PREAMBLE, f"\\title{{{prose(title, 'latex')}}}", "\\date{}", "\\begin{document}", "\\maketitle",
             "\\tableofcontents", ""]
    groups = groups or {title: list(results)}
    cited = []
    for section, members in groups.items():
        parts.append(f"\\section{{{prose(section, 'latex')}}}")
        for result in members:
            parts.append(result_latex(result))
            cited += sources_of(result)
    parts.append(bibliography_latex(cited))
    parts.append("\\end{document}")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- Markdown

def _math_block(rows_latex: list[str], lhs_latex: str) -> str:
    """A fenced ``math`` block (GitHub's display math; Markdown leaves its backslashes alone)."""
    if len(rows_latex) == 1:
        return f"```math\n{lhs_latex} = {rows_latex[0]}\n```"
    body = f"{lhs_latex} &= {rows_latex[0]} \\\\\n" + " \\\\\n".join(f"&\\quad {row}" for row in rows_latex[1:])
    return f"```math\n\\begin{{aligned}}\n{body}\n\\end{{aligned}}\n```"


def result_markdown(result: Result) -> str:
    """The result in GitHub Markdown: display math in fenced ``math`` blocks, inline math as ``$`…`$``."""
    names = _names(result)
    lines = [f"<!-- Generated by {GENERATED_BY} from {result.module or 'the registry'}; do not edit. -->", "",
             f"# {prose(result.title, 'markdown', names)}", "", f"**Result** `{result.id}`.", ""]
    for equation in result.equations:
        lhs, rhs = equation_sides(result, equation)
        lines += [_math_block(_display_rows(rhs, names, ROW_WIDTH - 15), expr_latex(lhs, names)), ""]
    if result.where:
        lines += ["where " + ", ".join(prose(f"`{n} = {t}`", "markdown", names) for n, t in result.where) + ".", ""]
    for label, items in (("Assumptions", context_assumptions(result) + list(result.assumptions)),
                         ("Remarks", list(result.remarks))):
        if items:
            lines += [f"*{label}.*", ""] + [f"- {prose(item, 'markdown', names)}" for item in items] + [""]
    if result.sources:
        lines += ["*Sources.*", ""]
        for source in result.sources:
            ref = source.reference
            where = f" ({source.where})" if source.where else ""
            link = f" <{ref.url}>" if ref.url else ""
            arxiv = f" arXiv:{ref.arxiv}." if ref.arxiv else ""
            lines.append(f"- {prose(f'{ref.authors}. {ref.title}. {ref.venue}, {ref.year}.', 'markdown')}"
                         f"{arxiv}{link}{where}")
        lines.append("")
    lines += ["## Derivation", "", "Every formula is computed by the engine; the line under it says why it holds.", ""]
    for k, step in enumerate(result.derivation.steps, 1):
        lhs = expr_latex(g.parse(step.lhs), names)
        lines += [f"**Step {k}.**", "", _math_block(_math_latex(step.math, names), lhs), "",
                  prose(step.because, "markdown", names) + ".", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- JSON

def _step_json(step: Step, names: dict) -> dict:
    tree = _tree(step.math)
    return {"lhs": step.lhs, "math": expr_text(tree) if tree is not None else to_text(step.math),
            "latex": to_latex(step.math, names) if tree is None else expr_latex(tree, names),
            "because": prose(step.because)}


def result_json(result: Result, derivation: bool = False) -> dict:
    names = _names(result)
    equations = []
    for equation in result.equations:
        lhs, rhs = equation_sides(result, equation)
        equations.append({"lhs": expr_text(lhs), "rhs": expr_text(rhs),
                          "latex": f"{expr_latex(lhs, names)} = {expr_latex(rhs, names)}",
                          **({"value": equation.value} if equation.value else {})})
    out = {"id": result.id, "title": prose(result.title), "module": result.module, "equations": equations,
           "where": {name: text for name, text in result.where},
           "assumptions": [prose(a) for a in context_assumptions(result) + list(result.assumptions)],
           "remarks": [prose(r) for r in result.remarks],
           "sources": [{"reference": s.reference.text(), "key": s.reference.key, "where": s.where}
                       for s in result.sources],
           "declarations": result.context.describe()}
    if derivation:
        out["derivation"] = [_step_json(step, names) for step in result.derivation.steps]
    return out
