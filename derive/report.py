"""Render registered results as terminal text, LaTeX fragments and a standalone LaTeX document.

Every command that prints a derivation (``python -m derive.lsa_optimum``,
``python -m derive.iclr_rank``, ``python -m derive.export``) goes through these
functions, which go through the one printer, :mod:`derive.printing`.
"""

from __future__ import annotations

import textwrap

from derive.printing import to_latex, to_text
from derive.registry import Result, Step


def _names(result: Result) -> dict:
    import importlib

    module = importlib.import_module(result.module) if result.module else None
    return getattr(module, "LATEX_NAMES", {}) if module else {}


def wrap_sum(text: str, width: int = 100, indent: str = "        ") -> str:
    """Break a long sum at top-level ``+``/``-`` signs, one term group per line."""
    if len(text) <= width:
        return text
    pieces, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth += ch in "([" and 1 or (ch in ")]" and -1 or 0)
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


def step_text(step: Step) -> str:
    lhs = step.text_lhs or step.lhs
    return f"{lhs} =\n        {wrap_sum(to_text(step.math))}\n      because: {step.because}"


def result_text(result: Result, number: int | None = None) -> str:
    head = f"[{number}] " if number is not None else ""
    lines = [f"{head}{result.id}: {result.title}", textwrap.fill(result.statement, 100, initial_indent="  ",
                                                                   subsequent_indent="  ")]
    if result.assumptions:
        lines.append("  assumptions: " + "; ".join(result.assumptions))
    for k, step in enumerate(result.derivation.steps, 1):
        lines.append(f"  ({k}) " + step_text(step))
    return "\n".join(lines)


def latex_escape(text: str) -> str:
    """Plain text (with Unicode math) → LaTeX text mode."""
    replacements = {
        "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "ᵀ": r"$^{\top}$", "⁻¹": r"$^{-1}$", "²": r"$^{2}$", "³": r"$^{3}$", "⁴": r"$^{4}$", "¹": r"$^{1}$",
        "½": r"$\tfrac12$", "ℓ̃": r"$\tilde\ell$", "Λ": r"$\Lambda$", "Γ": r"$\Gamma$", "Σ": r"$\Sigma$",
        "Θ": r"$\Theta$", "σ": r"$\sigma$", "ρ": r"$\rho$", "ŷ": r"$\hat y$", "≠": r"$\neq$", "≥": r"$\geq$",
        "≤": r"$\leq$", "→": r"$\to$", "∂": r"$\partial$", "‖": r"$\|$", "⊗": r"$\otimes$", "∈": r"$\in$",
        "…": r"\dots{}", "·": r"$\cdot$", "−": "-", "ᵢ": r"$_i$", "ₜ": r"$_t$", "ₓ": r"$_x$", "⊕": r"$\oplus$",
        "₁": r"$_1$", "₂": r"$_2$", "ₙ": r"$_n$", "∞": r"$\infty$", "√": r"$\sqrt{}$", "×": r"$\times$",
        "≈": r"$\approx$", "∑": r"$\sum$", "Σᵢ": r"$\sum_i$", "μ": r"$\mu$", "α": r"$\alpha$", "τ": r"$\tau$",
        "κ": r"$\kappa$", "⟨": r"$\langle$", "⟩": r"$\rangle$", "π": r"$\pi$", "ε": r"$\varepsilon$",
    }
    out = []
    for ch in text:
        out.append(replacements.get(ch, ch if ord(ch) < 128 else ch))
    text = "".join(out)
    for combo, rep in (("ℓ̃", r"$\tilde\ell$"),):
        text = text.replace(combo, rep)
    return text


def result_latex(result: Result, level: str = "subsection") -> str:
    """A LaTeX fragment: title, statement, assumptions, and the steps as an ``align*``."""
    names = _names(result)
    lines = [f"\\{level}{{{latex_escape(result.title)}}}", f"\\label{{res:{result.id}}}",
             f"\\textbf{{Result}} \\texttt{{{latex_escape(result.id)}}}. {latex_escape(result.statement)}", ""]
    if result.source:
        lines += [f"\\emph{{Source:}} {latex_escape(result.source)}", ""]
    if result.assumptions:
        lines.append("\\emph{Assumptions:}")
        lines.append("\\begin{itemize}")
        lines += [f"  \\item {latex_escape(a)}" for a in result.assumptions]
        lines.append("\\end{itemize}")
    lines.append("\\emph{Derivation} (computed by the engine):")
    lines.append("\\begin{align*}")
    rows = []
    for step in result.derivation.steps:
        body = to_latex(step.math, names)
        rows.append(f"  {step.lhs} &= {body} && \\text{{{latex_escape(step.because)}}}")
    lines.append(" \\\\\n".join(rows))
    lines.append("\\end{align*}")
    return "\n".join(lines) + "\n"


PREAMBLE = r"""\documentclass{article}
\usepackage[margin=2cm]{geometry}
\usepackage{amsmath,amssymb}
\allowdisplaybreaks
"""


def latex_document(results, title: str, groups: dict | None = None) -> str:
    """A standalone document; ``groups`` maps a section title to the results under it."""
    parts = [PREAMBLE, f"\\title{{{latex_escape(title)}}}", "\\date{}", "\\begin{document}", "\\maketitle",
             "\\tableofcontents", ""]
    groups = groups or {title: list(results)}
    for section, members in groups.items():
        parts.append(f"\\section{{{latex_escape(section)}}}")
        parts += [result_latex(r) for r in members]
    parts.append("\\end{document}")
    return "\n".join(parts) + "\n"
