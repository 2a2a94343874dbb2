"""The project's printers: the input grammar (text) and LaTeX.  There is one of each.

* :func:`to_text` writes a result in the input grammar, so it can be pasted
  back into ``python -m derive.expect``.
* :func:`to_latex` writes LaTeX in the papers' notation: ``Lambda`` → ``\\Lambda``,
  ``U11`` → ``U_{11}``, transposes ``^{\\top}``, traces ``\\operatorname{tr}``;
  ``names`` overrides single names (``{"u": "u_{-1}"}``).

Both accept a :class:`~derive.polynomial.Polynomial`, a sympy expression (whose
traces are :class:`~derive.terms.Contraction` atoms), a sympy Matrix, or a
string (already in the target format).

>>> from derive.polynomial import expectation
>>> p = expectation("x @ x.T @ A @ x @ x.T", gaussians={"x": "Lambda"})
>>> print(to_latex(p))
\\Lambda A \\Lambda + \\Lambda A^{\\top} \\Lambda + \\operatorname{tr}\\left(A \\Lambda\\right) \\Lambda
"""

from __future__ import annotations

import re

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from derive.terms import LOOP
from derive.words import COMPOUNDS

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
    "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
    "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega",
}


# ---------------------------------------------------------------- text (the input grammar)

def letter_text(l, names: dict | None = None) -> str:
    """A letter in the grammar; compound letters (words.Compound) print their polynomial or an alias."""
    compound = l.name in COMPOUNDS and not l.name.isidentifier() and not (names and l.name in names)
    raw = names[l.name] if names and l.name in names else l.name
    p = l.power
    if p == 1:
        base = f"({raw})" if compound else raw
    elif p == -1:
        base = f"inv({raw})"
    elif p.denominator == 1 and p < 0:
        base = f"inv({raw})**{-p.numerator}"
    else:
        wrapped = f"({raw})" if compound else raw
        base = f"{wrapped}**{p.numerator}" if p.denominator == 1 else f"{wrapped}**({p})"
    return base + (".T" if l.transposed else "")


def word_text(word, names: dict | None = None) -> str:
    return " @ ".join(letter_text(l, names) for l in word)


def strand_text(strand, names: dict | None = None) -> str:
    """A canonical strand in the grammar; bilinear forms are parenthesized so they stay atomic."""
    left, word, right = strand
    if left == LOOP:
        return f"tr({word_text(word, names)})"
    parts = []
    if left[0] == "vec":
        parts.append(f"{left[1]}.T")
    if word:
        parts.append(word_text(word, names))
    if right[0] == "vec":
        parts.append(right[1])
    text = " @ ".join(parts) if parts else "I"
    return f"({text})" if left[0] == "vec" and right[0] == "vec" else text


class GrammarPrinter(StrPrinter):
    """sympy's str printer, restricted to what the input grammar parses."""

    def __init__(self, names: dict | None = None):
        super().__init__()
        self.names = names or {}

    def _print_Pow(self, expr, rational=False):
        exp = expr.exp
        if exp.is_Rational and exp.q != 1:
            return f"{self.parenthesize(expr.base, PRECEDENCE['Pow'], strict=True)}**({exp.p}/{exp.q})"
        return super()._print_Pow(expr, rational=False)

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}" if expr.q != 1 else str(expr.p)


def chain_text(chain, names=None) -> str:
    return " @ ".join(strand_text(s, names) for s in chain)


def to_text(obj, names: dict | None = None) -> str:
    """``names`` maps a symbol (or a compound letter's text) to the text printed for it."""
    from derive.polynomial import Polynomial

    if isinstance(obj, Polynomial):
        return _poly_text(obj, names)
    if isinstance(obj, str):
        return obj
    if isinstance(obj, sympy.MatrixBase):
        return str(obj.tolist())
    return GrammarPrinter(names).doprint(obj)


def _poly_text(poly, names=None) -> str:
    if not poly.terms:
        return "0 * I" if poly.shape == ("d", "d") else "0"
    printer = GrammarPrinter(names)
    return _join_terms(poly, printer.doprint, lambda chain: chain_text(chain, names), "({}) * {}", "{} * {}")


def _join_terms(poly, coef_fmt, chain_fmt, grouped: str, plain: str) -> str:
    """``Σ coef · chain`` with signs pulled out; ``grouped`` wraps a coefficient that is a sum."""
    pieces = []
    for chain, coef in _ordered(poly.terms):
        if not chain:
            pieces.append(coef_fmt(coef))
            continue
        body = chain_fmt(chain)
        if coef == 1:
            pieces.append(body)
        elif coef == -1:
            pieces.append(f"-{body}")
        else:
            pieces.append((grouped if coef.is_Add else plain).format(coef_fmt(coef), body))
    text = pieces[0]
    for piece in pieces[1:]:
        text += f" - {piece[1:]}" if piece.startswith("-") else f" + {piece}"
    return text


def _ordered(terms: dict):
    # deterministic, longest chains first (the order a paper writes them), then by text
    def degree(chain) -> float:
        return sum(abs(float(l.power)) for s in chain for l in s[1]) + sum(s[0][0] == "vec" or s[2][0] == "vec"
                                                                            for s in chain)
    return sorted(terms.items(), key=lambda item: (-degree(item[0]), chain_text(item[0])))


# ---------------------------------------------------------------- LaTeX

def name_latex(name: str, names: dict | None = None) -> str:
    if names and name in names:
        return names[name]
    subscripted = re.fullmatch(r"([A-Za-z]+)_\{?([A-Za-z0-9]+)\}?", name)  # W_Q, x_{23}, e_L
    if subscripted:
        return f"{name_latex(subscripted.group(1), names)}_{{{subscripted.group(2)}}}"
    match = re.fullmatch(r"([A-Za-z]+?)_?(\d+)", name)
    base, sub = (match.group(1), match.group(2)) if match else (name, "")
    if base in GREEK:
        base = "\\" + base
    elif len(base) > 1:
        base = f"\\mathrm{{{base}}}"
    return f"{base}_{{{sub}}}" if sub else base


def letter_latex(l, names=None) -> str:
    if l.name in COMPOUNDS and not l.name.isidentifier() and not (names and l.name in names):
        base = f"\\left({_poly_latex(COMPOUNDS[l.name].value, names or {})}\\right)"
    else:
        base = name_latex(l.name, names)
    p = l.power
    if p == 1:
        return base + ("^{\\top}" if l.transposed else "")
    if p == -1:
        return base + ("^{-\\top}" if l.transposed else "^{-1}")
    exponent = str(p.numerator) if p.denominator == 1 else f"{p.numerator}/{p.denominator}"
    if l.transposed:
        return f"\\left({base}^{{\\top}}\\right)^{{{exponent}}}"
    return f"{base}^{{{exponent}}}"


def word_latex(word, names=None) -> str:
    return " ".join(letter_latex(l, names) for l in word)


def strand_latex(strand, printer=None) -> str:
    names = getattr(printer, "names", None)
    left, word, right = strand
    if left == LOOP:
        return f"\\operatorname{{tr}}\\left({word_latex(word, names)}\\right)"
    parts = []
    if left[0] == "vec":
        parts.append(name_latex(left[1], names) + "^{\\top}")
    if word:
        parts.append(word_latex(word, names))
    if right[0] == "vec":
        parts.append(name_latex(right[1], names))
    return " ".join(parts) if parts else "I"


class ProjectLatexPrinter(LatexPrinter):
    """sympy's LaTeX printer with the project's names for symbols and traces."""

    def __init__(self, names: dict | None = None):
        super().__init__({"mul_symbol": None})
        self.names = names or {}

    def _print_Symbol(self, expr, style="plain"):
        return name_latex(expr.name, self.names)

    def _print_Transpose(self, expr):  # sympy writes ^{T}; the papers write ^{\top}
        return super()._print_Transpose(expr).replace("^{T}", "^{\\top}")


def to_latex(obj, names: dict | None = None) -> str:
    from derive.polynomial import Polynomial

    if isinstance(obj, Polynomial):
        return _poly_latex(obj, {**obj.decl.latex_names, **(names or {})})
    if isinstance(obj, str):
        return obj
    return ProjectLatexPrinter(names).doprint(obj)


def _poly_latex(poly, names) -> str:
    if not poly.terms:
        return "0"
    printer = ProjectLatexPrinter(names)
    return _join_terms(poly, printer.doprint, lambda chain: " ".join(strand_latex(s, printer) for s in chain),
                       "\\left({}\\right) {}", "{} {}")


# ---------------------------------------------------------------- expression trees (for statements)

def expr_latex(expr, names: dict | None = None) -> str:
    """LaTeX of an input expression tree, e.g. the left-hand side ``\\mathbb{E}[x x^{\\top} A x x^{\\top}]``."""
    from derive import grammar as g

    def atomic(e) -> bool:
        return isinstance(e, (g.Name, g.Number, g.Indexed, g.Trace, g.Inverse, g.Pow, g.Transpose))

    def wrap(e) -> str:
        text = walk(e)
        return text if atomic(e) else f"\\left({text}\\right)"

    def walk(e) -> str:
        if isinstance(e, g.Name):
            return name_latex(e.name, names)
        if isinstance(e, g.Number):
            v = e.value
            return str(v.numerator) if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"
        if isinstance(e, g.Indexed):
            return f"{name_latex(e.name, names)}_{{{e.index}}}"
        if isinstance(e, g.Add):
            return f"{walk(e.left)} + {walk(e.right)}"
        if isinstance(e, g.Sub):
            right = walk(e.right) if atomic(e.right) or isinstance(e.right, (g.Mul, g.MatMul)) else wrap(e.right)
            return f"{walk(e.left)} - {right}"
        if isinstance(e, g.Neg):
            return f"-{wrap(e.operand)}"
        if isinstance(e, (g.Mul, g.MatMul)):
            parts = [walk(p) if not isinstance(p, (g.Add, g.Sub, g.Sum)) else wrap(p) for p in (e.left, e.right)]
            return " ".join(parts)
        if isinstance(e, g.Div):
            return f"\\frac{{{walk(e.left)}}}{{{walk(e.right)}}}"
        if isinstance(e, g.Pow):
            p = e.power
            exponent = str(p.numerator) if p.denominator == 1 else f"{p.numerator}/{p.denominator}"
            return f"{wrap(e.base)}^{{{exponent}}}"
        if isinstance(e, g.Transpose):
            return f"{wrap(e.operand)}^{{\\top}}"
        if isinstance(e, g.Inverse):
            return f"{wrap(e.operand)}^{{-1}}"
        if isinstance(e, g.Trace):
            return f"\\operatorname{{tr}}\\left({walk(e.operand)}\\right)"
        if isinstance(e, g.Sum):
            return f"\\sum_{{{e.index}=1}}^{{N}} {wrap(e.body) if isinstance(e.body, (g.Add, g.Sub)) else walk(e.body)}"
        raise TypeError(f"cannot print {e!r}")

    return walk(expr)
