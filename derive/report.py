"""Render registered results as terminal text, LaTeX fragments, Markdown and a standalone LaTeX document.

Every command that prints a derivation (``python -m derive.lsa_optimum``,
``python -m derive.iclr_rank``, ``python -m derive.export``) goes through these
functions, which go through the one printer, :mod:`derive.engine.printing`.  This
module only lays the printed formulas out: it breaks long sums into rows of an
``align*`` (:func:`split_sum`, :func:`math_rows`) and turns the registry's plain
text (statements, assumptions, justifications, with Unicode math such as
``Λ``, ``xᵀ`` and ASCII such as ``u_{-1}``, ``W^PV``) into LaTeX text mode
(:func:`text_latex`) or Markdown (:func:`markdown_escape`).
"""

from __future__ import annotations

import importlib
import re
import sys
import textwrap

from derive.engine.printing import to_latex, to_text
from derive.registry import Result, Step

GENERATED_BY = "python -m derive.export"


def _names(result: Result) -> dict:
    module = sys.modules.get(result.module) if result.module else None
    if module is None and result.module:
        try:
            module = importlib.import_module(result.module)
        except ImportError:
            module = None
    return getattr(module, "LATEX_NAMES", {}) if module else {}


# ---------------------------------------------------------------- terminal text

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


def latex_to_plain(latex: str) -> str:
    """A rough plain-text reading of a short LaTeX left-hand side (for terminals)."""
    import re

    text = re.sub(r"\\operatorname\{(\w+)\}", r"\1", latex)
    text = text.replace("^{\\top}", ".T").replace("\\top", "T").replace("\\left", "").replace("\\right", "")
    text = re.sub(r"\\(mathbb|mathrm|text|tfrac|tilde|hat)\s*", "", text)
    text = re.sub(r"\\([A-Za-z]+)", r"\1", text)
    return text.replace("{", "").replace("}", "").replace("\\", "")


def step_text(step: Step) -> str:
    lhs = step.text_lhs or latex_to_plain(step.lhs)
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


# ---------------------------------------------------------------- plain text → LaTeX text mode

# Unicode that appears in the registry's plain text, as LaTeX math (without the $ … $).
UNICODE_MATH = {
    "Λ": r"\Lambda", "Γ": r"\Gamma", "Σ": r"\Sigma", "Θ": r"\Theta", "Δ": r"\Delta", "Φ": r"\Phi", "Ψ": r"\Psi",
    "Ω": r"\Omega", "Π": r"\Pi", "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon",
    "η": r"\eta", "θ": r"\theta", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi",
    "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "φ": r"\varphi", "χ": r"\chi", "ψ": r"\psi",
    "ω": r"\omega", "ℓ": r"\ell", "ŷ": r"\hat y", "≠": r"\neq", "≥": r"\geq", "≤": r"\leq", "→": r"\to",
    "←": r"\leftarrow", "↦": r"\mapsto", "⇒": r"\Rightarrow", "⇔": r"\Leftrightarrow", "∂": r"\partial",
    "‖": r"\|", "⊗": r"\otimes", "⊕": r"\oplus", "∈": r"\in", "∉": r"\notin", "⊂": r"\subset", "⊆": r"\subseteq",
    "·": r"\cdot", "∞": r"\infty", "√": r"\surd", "×": r"\times", "≈": r"\approx", "∑": r"\sum", "∏": r"\prod",
    "⟨": r"\langle", "⟩": r"\rangle", "∇": r"\nabla", "∀": r"\forall", "∃": r"\exists", "±": r"\pm",
    "∝": r"\propto", "≡": r"\equiv", "⊤": r"\top", "∘": r"\circ", "⋆": r"\star", "★": r"\star",
    "ℝ": r"\mathbb{R}", "𝔼": r"\mathbb{E}", "½": r"\tfrac12", "−": "-",
}
SUPERSCRIPTS = {"ᵀ": r"\top", "⁻": "-", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7",
                "⁸": "8", "⁹": "9", "⁰": "0", "⁺": "+", "ⁿ": "n", "ᵢ": None}
SUBSCRIPTS = {"₀": "0", "₁": "1", "₂": "2", "₃": "3", "₄": "4", "₅": "5", "₆": "6", "₇": "7", "₈": "8", "₉": "9",
              "ᵢ": "i", "ⱼ": "j", "ₖ": "k", "ₜ": "t", "ₓ": "x", "ₙ": "n", "ₘ": "m", "ₐ": "a", "ₑ": "e", "₋": "-",
              "₊": "+"}
del SUPERSCRIPTS["ᵢ"]
COMBINING = {"\u0303": r"\tilde", "\u0302": r"\hat", "\u0304": r"\bar", "\u0307": r"\dot"}  # ℓ̃ = ℓ + U+0303
TEXT_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "…": r"\dots{}", "–": "--", "—": "---", "§": r"\S{}",
    "“": "``", "”": "''", "‘": "`", "’": "'", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
    "\u00a0": "~",
}


def _unicode_math_runs(text: str) -> list[tuple[str, str]]:
    """Split into ("text", s) and ("math", latex) runs; Unicode math becomes LaTeX math."""
    runs: list[tuple[str, str]] = []

    def add(kind, s):
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + s)
        else:
            runs.append((kind, s))

    k = 0
    while k < len(text):
        ch = text[k]
        if ch in SUPERSCRIPTS or ch in SUBSCRIPTS:
            table, mark = (SUPERSCRIPTS, "^") if ch in SUPERSCRIPTS else (SUBSCRIPTS, "_")
            j = k
            while j < len(text) and text[j] in table:
                j += 1
            body = "".join(table[c] for c in text[k:j])
            add("math", f"{mark}{{{body}}}")
            k = j
        elif ch in UNICODE_MATH:
            accent = COMBINING.get(text[k + 1]) if k + 1 < len(text) else None
            symbol = UNICODE_MATH[ch]
            if ch == "Σ" and k + 1 < len(text) and text[k + 1] in SUBSCRIPTS:  # Σᵢ is a sum, not a covariance
                symbol = r"\sum"
            if accent:
                add("math", f"{accent}{{{symbol}}}")
                k += 2
            else:
                add("math", symbol + (" " if symbol[-1].isalpha() else ""))
                k += 1
        elif ch in COMBINING and runs:
            k += 1  # an accent on a plain letter: dropped (rare)
        else:
            add("text", ch)
            k += 1
    return runs


def latex_escape(text: str) -> str:
    """Plain text (with Unicode math) → LaTeX text mode; Unicode math goes into ``$…$``."""
    text = text.replace("->", "→").replace("<=", "≤").replace(">=", "≥")
    out = []
    for kind, s in _unicode_math_runs(text):
        if kind == "math":
            out.append(f"${s.strip()}$")
        else:
            out.append("".join(TEXT_ESCAPES.get(ch, ch) for ch in s))
    return "".join(out)


_SCRIPTED = re.compile(r"[^\s_^][_^](?:\{|[A-Za-z0-9])")  # u_{-1}, W^PV, x_t, e_{d+1}
_FUNCTIONS = {"tr", "diag", "vec", "det", "exp", "log", "rank"}
_NOT_MATH = set("\\$&%#\"`")


def _is_math_word(word: str) -> bool:
    """A whitespace-free chunk that reads as a formula: it carries scripts or Unicode math, and no real word."""
    if not word or any(c in _NOT_MATH for c in word):
        return False
    if word.strip("(),.;:") in _GREEK_WORDS:
        return True
    if not (_SCRIPTED.search(word) or any(c in UNICODE_MATH or c in SUPERSCRIPTS or c in SUBSCRIPTS for c in word)):
        return False
    runs = re.findall(r"[A-Za-z]+", word)
    return all(len(run) <= 3 or run in _FUNCTIONS or run in _GREEK_WORDS for run in runs)


def _word_math(word: str) -> str | None:
    """``$…$`` for one math word (trailing punctuation stays text), or None when it is not safe as math."""
    stripped = word.rstrip(".,;:")
    trailing = word[len(stripped):]
    if not stripped or stripped.count("{") != stripped.count("}"):
        return None
    parts, k = [], 0
    while k < len(stripped):
        ch = stripped[k]
        if ch in "_^":
            k += 1
            if k < len(stripped) and stripped[k] == "{":
                depth, j = 0, k
                while j < len(stripped):
                    depth += (stripped[j] == "{") - (stripped[j] == "}")
                    if depth == 0:
                        break
                    j += 1
                body, k = stripped[k + 1:j], j + 1
            else:
                j = k
                while j < len(stripped) and stripped[j].isascii() and stripped[j].isalnum():
                    j += 1
                body, k = stripped[k:j], j
            if not body:
                return None
            body = "\\top" if (ch == "^" and body == "T") else _inner_math(body)
            parts.append(f"{ch}{{{body}}}")
        else:
            j = k
            while j < len(stripped) and stripped[j] not in "_^":
                j += 1
            parts.append(_inner_math(stripped[k:j]))
            k = j
    math = "".join(parts).strip()
    # two scripts of one kind on one base is a TeX error: leave such a word as text
    if re.search(r"\^\{[^{}]*\}\s*\^|_\{[^{}]*\}\s*_|[_^]\s*$", math):
        return None
    return f"${math}$" + latex_escape(trailing)


def _inner_math(s: str) -> str:
    s = s.replace("(+)", "⊕").replace("->", "→").replace("<=", "≤").replace(">=", "≥")
    out = []
    for kind, run in _unicode_math_runs(s):
        if kind == "math":
            out.append(run)
            continue
        run = re.sub(r"(?<![A-Za-z])(" + "|".join(sorted(_FUNCTIONS)) + r")(?=[(\[])", r"\\operatorname{\1}", run)
        run = re.sub(r"(?<![A-Za-z])(" + "|".join(_GREEK_WORDS) + r")(?![A-Za-z])", r"\\\1 ", run)
        out.append("".join({"%": r"\%", "#": r"\#", "&": r"\&", "~": r"\sim ", "|": r"\vert ", "<": "<",
                            ">": ">"}.get(c, c) for c in run))
    return "".join(out)


_JOINER_CHARS = re.compile(r"[A-Za-z0-9()\[\].,;:+\-/*=<>~−]+")  # x, A, N(0, U11, =, +, vec(U)
_GREEK_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "lambda", "mu", "sigma", "tau", "theta", "rho", "Gamma",
                "Delta", "Theta", "Lambda", "Sigma", "Phi", "Psi", "Omega")


def _is_joiner(word: str) -> bool:
    """A single letter, number, operator or short formula (``N(0,``, ``E[x``, ``vec(U)``) that may sit in a formula."""
    if not word or not _JOINER_CHARS.fullmatch(word) or word.strip("(") == "a":
        return False
    runs = [r for r in re.findall(r"[A-Za-z]+", word) if r not in _FUNCTIONS and r not in _GREEK_WORDS]
    return all(len(r) == 1 for r in runs) and len(runs) <= 2


def text_latex(text: str) -> str:
    """Registry plain text → LaTeX text mode; formulas (``u_{-1}``, ``W^PV``, ``E[x xᵀ A x xᵀ]``) set as math.

    A formula is a run of words each of which is formula-like (scripts or Unicode math, no real word) or
    a single letter / number / operator next to one; anything that would not be safe TeX stays text.
    """
    words = re.split(r"(\s+)", text)
    kinds = []  # "math", "join" or "text" for the non-space items (even indices)
    for k in range(0, len(words), 2):
        w = words[k]
        kinds.append("math" if _is_math_word(w) else
                     "join" if _is_joiner(w) else "text")
    out, k = [], 0
    n = len(kinds)
    while k < n:
        if kinds[k] == "text":
            out.append(latex_escape(words[2 * k]))
            if 2 * k + 1 < len(words):
                out.append(latex_escape(words[2 * k + 1]))
            k += 1
            continue
        j = k
        while j < n and kinds[j] != "text":
            j += 1
            if words[2 * (j - 1)][-1:] in (":", ";"):  # a clause ends the formula
                break
        span = list(range(k, j))
        math = None
        if any(kinds[m] == "math" for m in span):
            math = _word_math(" ".join(words[2 * m] for m in span))
        if math is not None:
            out.append(math)
        else:
            for m in span:
                w = words[2 * m]
                out.append((_word_math(w) if kinds[m] == "math" else None) or latex_escape(w))
                if m < j - 1:
                    out.append(latex_escape(words[2 * m + 1]))
        if 2 * (j - 1) + 1 < len(words):
            out.append(latex_escape(words[2 * (j - 1) + 1]))
        k = j
    return "".join(out)


# ---------------------------------------------------------------- breaking long formulas

UPRIGHT_WIDE = {"Lambda", "Gamma", "Sigma", "Theta", "Delta", "Phi", "Psi", "Omega", "Pi", "Xi", "mathbb", "otimes",
                "oplus", "sum", "prod", "infty"}
MATH_WIDTH = 68.0  # usable width of a displayed row in units of visible_width (≈ 6 pt; text width ≈ 500 pt)
_ZERO = {"left", "right", "big", "Big", "bigg", "Bigg", "displaystyle", "textstyle", "limits", "nolimits", "!"}
_SPACES = {",": 0.3, ":": 0.4, ";": 0.5, " ": 0.5, "quad": 2.0, "qquad": 4.0}
_WIDE = {"operatorname": None, "mathrm": None, "text": None, "mathbb": None, "mathcal": None}


def _group(s: str, k: int) -> tuple[str, int]:
    """The argument starting at s[k] (a {group} or one token) and the index after it."""
    while k < len(s) and s[k] == " ":
        k += 1
    if k >= len(s):
        return "", k
    if s[k] == "{":
        depth = 0
        for j in range(k, len(s)):
            depth += (s[j] == "{") - (s[j] == "}")
            if depth == 0:
                return s[k + 1:j], j + 1
        return s[k + 1:], len(s)
    if s[k] == "\\":
        match = re.match(r"\\([A-Za-z]+|.)", s[k:])
        return match.group(0), k + match.end()
    return s[k], k + 1


def visible_width(latex: str) -> float:
    """A rough width of typeset math, in letters: enough to decide where a long sum breaks."""
    width, k = 0.0, 0
    while k < len(latex):
        ch = latex[k]
        if ch == "\\":
            match = re.match(r"\\([A-Za-z]+|.)", latex[k:])
            name, k = match.group(1), k + match.end()
            if name in _ZERO:
                if name in ("left", "right") and k < len(latex):
                    token, k2 = _group(latex, k)
                    width += 0 if token == "." else 0.5
                    k = k2
                continue
            if name in _SPACES:
                width += _SPACES[name]
            elif name in ("frac", "tfrac", "dfrac"):
                num, k = _group(latex, k)
                den, k = _group(latex, k)
                width += max(visible_width(num), visible_width(den)) * (0.75 if name == "tfrac" else 1.0) + 0.4
            elif name == "sqrt":
                if k < len(latex) and latex[k] == "[":
                    k = latex.index("]", k) + 1
                body, k = _group(latex, k)
                width += visible_width(body) + 1.2
            elif name in _WIDE:
                body, k = _group(latex, k)
                width += len(re.sub(r"\\[A-Za-z]+|[{}\\]", "x", body)) * (0.8 if name == "text" else 1.0)
            elif name in ("hat", "tilde", "bar", "dot", "ddot", "vec", "mathbf", "boldsymbol"):
                continue
            elif name == "begin":
                env, k = _group(latex, k)
                end = latex.find(f"\\end{{{env}}}", k)
                end = len(latex) if end == -1 else end
                width += _matrix_width(latex[k:end])
                k = end + len(f"\\end{{{env}}}")
            elif name in UPRIGHT_WIDE:
                width += 1.35
            elif name in ("lim", "min", "max", "log", "exp", "det", "sup", "inf", "ln", "cdots", "ldots", "dots"):
                width += 2.5
            else:
                width += 1.0
        elif ch in "^_":
            body, k = _group(latex, k + 1)
            width += 0.7 * visible_width(body)
        elif ch in "{} ":
            k += 1
        elif ch in "+-=<>":
            width += 1.8 if ch != "-" or latex[:k].strip() else 1.0
            k += 1
        elif ch == "&":
            width += 1.0
            k += 1
        else:
            width += (1.3 if ch.isupper() else 0.85 if ch.isdigit() else 1.0) if ch.isalnum() else \
                0.75 if ch in "()[]|" else 0.5
            k += 1
    return width


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside braces."""
    parts, depth, start, k = [], 0, 0, 0
    while k < len(text):
        if text[k] == "\\" and not text.startswith(sep, k):
            k += 2
            continue
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
        elif depth == 0 and text.startswith(sep, k):
            parts.append(text[start:k])
            k += len(sep)
            start = k
            continue
        k += 1
    parts.append(text[start:])
    return parts


def _matrix_width(body: str) -> float:
    """Width of a matrix body ``a & b \\\\ c & d``: the widest cell of each column, plus the gaps."""
    rows = [[visible_width(cell) for cell in _split_top(row, "&")] for row in _split_top(body, "\\\\")]
    columns = max((len(r) for r in rows), default=0)
    widest = [max((r[j] for r in rows if j < len(r)), default=0.0) for j in range(columns)]
    return sum(widest) + 2.0 * max(columns - 1, 0) + 1.0


def split_sum(latex: str) -> list[str]:
    """Split printed math at its top-level `` + ``/`` - ``; each piece keeps its sign ("+ a", "- b")."""
    pieces, depth, start, k = [], 0, 0, 0
    while k < len(latex):
        if latex.startswith("\\left", k) or latex.startswith("\\right", k):
            k += 5 if latex.startswith("\\left", k) else 6
            continue  # the bracket that follows is counted below
        ch = latex[k]
        if ch == "\\":  # an escaped character (\{, \|) or a command: skip it whole
            k += 2
            continue
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif depth == 0 and ch in "+-" and latex[k - 1:k] == " " and latex[k + 1:k + 2] == " " and latex[:k].strip():
            pieces.append(latex[start:k].strip())
            start = k
        k += 1
    pieces.append(latex[start:].strip())
    return [" ".join(p.split()) for p in pieces if p]


def math_rows(latex: str, width: float) -> list[str]:
    """``latex`` as rows no wider than ``width`` (where a top-level sum allows): rows 2… start with a sign."""
    if visible_width(latex) <= width:
        return [latex]
    rows, row = [], ""
    for piece in split_sum(latex):
        if row and visible_width(row + " " + piece) > width:
            rows.append(row)
            row = ""
        row = f"{row} {piece}" if row else piece
    rows.append(row)
    return rows


def _step_rows(step: Step, names: dict, column: float, stacked: bool) -> list[str]:
    """Rows of one step; ``column`` is the width of the align's left column (the widest unstacked lhs)."""
    body = to_latex(step.math, names)
    if stacked:  # lhs on its own row, the value indented below it
        rows = math_rows(body, MATH_WIDTH - column - 6)
        out = [f"  & {step.lhs}", f"  & \\qquad = {rows[0]}"]
        out += [f"  & \\qquad \\quad {row}" for row in rows[1:]]
        return out
    rows = math_rows(body, MATH_WIDTH - column - 3)
    out = [f"  {step.lhs} &= {rows[0]}"]
    out += [f"  & \\quad {row}" for row in rows[1:]]
    return out


def derivation_align(result: Result, numbered: bool = True) -> str:
    """The derivation as one ``align*``, each step's justification before its formula.

    The first justification is the paragraph that opens the display; the others are ``\\intertext``.
    A step whose left-hand side is wide and whose formula does not fit beside it is stacked: the
    left-hand side on its own row, the value below it.
    """
    names = _names(result)
    steps = result.derivation.steps
    widths = [(visible_width(s.lhs), visible_width(to_latex(s.math, names))) for s in steps]
    stacked = [lhs > 0.4 * MATH_WIDTH and lhs + rhs + 2 > MATH_WIDTH for lhs, rhs in widths]
    column = max((lhs for (lhs, _), st in zip(widths, stacked) if not st), default=0.0)
    lines = []
    for k, step in enumerate(steps, 1):
        label = f"({k})~" if numbered and len(steps) > 1 else ""
        because = f"{label}{text_latex(step.because)}:"
        if k == 1:
            lines += [because, "\\begin{align*}"]
        else:
            lines.append(f"  \\intertext{{{because}}}")
        rows = _step_rows(step, names, column, stacked[k - 1])
        lines.append(" \\\\\n".join(rows) + (" \\\\" if k < len(steps) else ""))
    lines.append("\\end{align*}")
    return "\n".join(lines)


# ---------------------------------------------------------------- LaTeX

def result_latex(result: Result, level: str = "subsection") -> str:
    """A LaTeX fragment: title, statement, source, assumptions, and the steps as an ``align*``."""
    lines = [f"\\{level}{{{text_latex(result.title)}}}", f"\\label{{res:{result.id}}}",
             f"\\textbf{{Result}} \\texttt{{{latex_escape(result.id)}}}. {text_latex(result.statement)}", ""]
    if result.source:
        lines += [f"\\emph{{Source:}} {text_latex(result.source)}", ""]
    if result.assumptions:
        lines.append("\\emph{Assumptions:}")
        lines.append("\\begin{itemize}\\setlength{\\itemsep}{0pt}\\setlength{\\parskip}{0pt}")
        lines += [f"  \\item {text_latex(a)}" for a in result.assumptions]
        lines.append("\\end{itemize}")
        lines.append("")
    lines.append("\\emph{Derivation} (each formula computed by the engine).")
    lines.append(derivation_align(result))
    return "\n".join(lines) + "\n"


PREAMBLE = r"""\documentclass{article}
\usepackage[margin=2cm]{geometry}
\usepackage[T1]{fontenc}
\usepackage{amsmath,amssymb}
\allowdisplaybreaks
\setcounter{MaxMatrixCols}{20}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.6ex plus 0.3ex}
"""


def latex_document(results, title: str, groups: dict | None = None) -> str:
    """A standalone document; ``groups`` maps a section title to the results under it."""
    parts = [PREAMBLE, f"\\title{{{text_latex(title)}}}", "\\date{}", "\\begin{document}", "\\maketitle",
             "\\tableofcontents", ""]
    groups = groups or {title: list(results)}
    for section, members in groups.items():
        parts.append(f"\\section{{{text_latex(section)}}}")
        parts += [result_latex(r) for r in members]
    parts.append("\\end{document}")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- Markdown

_MARKDOWN_SPECIAL = set("\\`*_[]<>|#~$")


def markdown_escape(text: str) -> str:
    """Plain text → Markdown text (also safe inside a table cell)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in " ".join(text.split()))


def step_markdown(step: Step, names: dict) -> str:
    """The step as display math (an ``aligned`` block when the sum is long), then its justification.

    The math goes in a fenced ``math`` block, GitHub's form of display math that Markdown leaves alone:
    inside ``$$ … $$`` GitHub's Markdown pass eats backslash escapes first (``\\\\`` row breaks, ``\\|``
    norms, ``\\,`` spaces), which breaks formulas such as the excess loss.
    """
    body = to_latex(step.math, names)
    rows = math_rows(body, MATH_WIDTH - min(visible_width(step.lhs), 30.0) - 3)
    if len(rows) == 1:
        math = f"{step.lhs} = {body}"
    else:
        math = "\\begin{aligned}\n" + f"{step.lhs} &= {rows[0]} \\\\\n"
        math += " \\\\\n".join(f"&\\quad {row}" for row in rows[1:]) + "\n\\end{aligned}"
    return f"```math\n{math}\n```\n\n{markdown_escape(step.because)}.\n"


def result_markdown(result: Result) -> str:
    """The result in Markdown with display math as GitHub renders it (fenced ``math`` blocks)."""
    names = _names(result)
    lines = [f"<!-- Generated by {GENERATED_BY} from {result.module or 'the registry'}; do not edit. -->", "",
             f"# {markdown_escape(result.title)}", "", f"**Result** `{result.id}`. {markdown_escape(result.statement)}",
             ""]
    if result.source:
        lines += [f"*Source:* {markdown_escape(result.source)}", ""]
    if result.assumptions:
        lines.append("*Assumptions:*")
        lines.append("")
        lines += [f"- {markdown_escape(a)}" for a in result.assumptions]
        lines.append("")
    lines += ["## Derivation", "", "Each formula is computed by the engine; the line under it says why it holds.", ""]
    for k, step in enumerate(result.derivation.steps, 1):
        lines.append(f"**Step {k}.**")
        lines.append("")
        lines.append(step_markdown(step, names))
    return "\n".join(lines).rstrip("\n") + "\n"
