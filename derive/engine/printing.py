"""The one printer: expression trees as grammar text or LaTeX, and polynomials as expression trees.

A canonical polynomial is printed in two steps that only read it:

1. :func:`poly_expr` writes it as a tree of the input grammar
   (:mod:`derive.engine.grammar`), grouped the way papers write it: for each
   matrix part (chain), the terms are grouped by *monomial* — the product of
   the factors that are not sizes (scalars, traces, bilinear forms) — and each
   monomial carries one coefficient that is a rational function of the sizes
   (dimensions, counts), e.g. ``(1/2 + 3/(2 * N) + 1/N**2) * u**2 * tr(X)``.
2. :func:`expr_text` or :func:`expr_latex` renders any tree; text output is in
   the grammar, so it parses back to an equal polynomial (with the same
   declarations).

Names in LaTeX follow the papers: ``Lambda`` → ``\\Lambda``, ``U11`` →
``U_{11}``, transposes ``^{\\top}``, traces ``\\operatorname{tr}``; a context's
``latex_names`` override single names (``{"u": "u_{-1}"}``).

>>> from derive.engine.grammar import parse
>>> expr_text(parse("(A**2).T @ (B + C) / 2"))
'((A**2).T @ (B + C))/2'
>>> expr_latex(parse("tr(inv(Lambda) @ x @ x.T)"))
'\\\\operatorname{tr}\\\\left(\\\\Lambda^{-1} x x^{\\\\top}\\\\right)'
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy
from sympy.printing.latex import LatexPrinter

from derive.engine import grammar as g
from derive.engine.canonical import Contraction
from derive.engine.strands import is_loop

__all__ = ["relation_text", "relation_latex", "prose", "expr_text", "expr_latex", "poly_expr", "poly_text", "poly_latex", "to_text", "to_latex", "name_latex",
           "sympy_expr", "chain_expr", "monomial_groups", "terms_expr", "strand_expr", "signed_terms"]

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
    "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
    "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega",
}
LATEX_GREEK = {"epsilon": "varepsilon", "phi": "varphi", "eps": "varepsilon"}


# ---------------------------------------------------------------- trees → text

_PREC = {g.Add: 1, g.Sub: 1, g.Mul: 2, g.Div: 2, g.MatMul: 2, g.Neg: 3, g.Pow: 4}


def _prec(e: g.Expr) -> int:
    if isinstance(e, g.Number):
        if e.value < 0:
            return 3
        return 2 if e.value.denominator != 1 else 5
    return _PREC.get(type(e), 5)


def _exponent_text(p: Fraction) -> str:
    if p.denominator == 1:
        return str(p.numerator) if p > 0 else f"({p.numerator})"
    return f"({p.numerator}/{p.denominator})"


def signed_terms(e: g.Expr) -> list:
    """A sum tree flattened into ``[(sign, term), ...]`` (a balanced tree prints as a flat sum)."""
    out, stack = [], [(1, e)]
    while stack:
        sign, node = stack.pop()
        if isinstance(node, g.Add):
            stack += [(sign, node.right), (sign, node.left)]
        elif isinstance(node, g.Sub):
            stack += [(-sign, node.right), (sign, node.left)]
        elif isinstance(node, g.Neg):
            stack.append((-sign, node.operand))
        else:
            out.append((sign, node))
    return out


def _join_signed(pieces: list) -> str:
    text = ""
    for k, (sign, piece) in enumerate(pieces):
        if k == 0:
            text = piece if sign > 0 else f"-{piece}"
        else:
            text += f" + {piece}" if sign > 0 else f" - {piece}"
    return text


def _leftmost(x: g.Expr) -> g.Expr:
    while isinstance(x, g.MatMul):
        x = x.left
    return x


def _scalar_like(x: g.Expr) -> bool:
    """A product that reads as a bilinear form ``vᵀ W u`` (parenthesized inside scalar products)."""
    return isinstance(x, g.MatMul) and isinstance(_leftmost(x), g.Transpose)


def expr_text(e: g.Expr) -> str:
    """The tree in the input grammar, with the parentheses it needs (and a few for readability)."""

    def wrap(x: g.Expr, below: int) -> str:
        text = walk(x)
        return f"({text})" if _prec(x) < below else text

    def factor(x: g.Expr, right: bool) -> str:
        # a product inside * or /: bilinear forms and left-hand matrix products get parentheses to read well
        if isinstance(x, g.MatMul) and (not right or _scalar_like(x)):
            return f"({walk(x)})"
        return wrap(x, 2 if right else 2)

    def walk(x: g.Expr) -> str:
        if isinstance(x, g.Name):
            return x.name
        if isinstance(x, g.Number):
            v = x.value
            return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
        if isinstance(x, g.Indexed):
            return f"{x.name}[{x.index}]"
        if isinstance(x, (g.Add, g.Sub)):
            terms = signed_terms(x)
            return _join_signed([(sign, wrap(term, 2) if k else wrap(term, 2)) for k, (sign, term) in enumerate(terms)])
        if isinstance(x, g.Neg):
            return f"-{wrap(x.operand, 2)}"
        if isinstance(x, g.Mul):
            return f"{factor(x.left, False)} * {factor(x.right, True)}"
        if isinstance(x, g.MatMul):
            right = f"({walk(x.right)})" if isinstance(x.right, (g.Mul, g.Div)) else wrap(x.right, 2)
            return f"{wrap(x.left, 2)} @ {right}"
        if isinstance(x, g.Div):
            return f"{factor(x.left, False)}/{wrap(x.right, 3)}"
        if isinstance(x, g.Pow):
            return f"{wrap(x.base, 5)}**{_exponent_text(x.power)}"
        if isinstance(x, g.Transpose):
            return f"{wrap(x.operand, 5)}.T"
        if isinstance(x, g.Trace):
            return f"tr({walk(x.operand)})"
        if isinstance(x, g.Inverse):
            return f"inv({walk(x.operand)})"
        if isinstance(x, g.Identity):
            return "I" if x.dim == "d" else f"I({x.dim})"
        if isinstance(x, g.Zeros):
            return f"zeros({x.rows}, {x.cols})"
        if isinstance(x, g.Sum):
            count = "" if x.count == "N" else f", {x.count}"
            return f"sum({x.index}, {walk(x.body)}{count})"
        if isinstance(x, g.Expectation):
            return f"E({walk(x.operand)})"
        if isinstance(x, g.Gradient):
            return f"grad({walk(x.operand)}, {x.name})"
        if isinstance(x, g.Substitution):
            pairs = ", ".join(f"{name}={walk(value)}" for name, value in x.values)
            return f"at({walk(x.operand)}, {pairs})"
        raise TypeError(f"cannot print {x!r}")

    return walk(e)


RELATION_TEXT = {"=": "=", "!=": "≠", "<=": "≤", ">=": "≥", "<": "<", ">": ">"}
RELATION_LATEX = {"=": "=", "!=": "\\neq", "<=": "\\leq", ">=": "\\geq", "<": "<", ">": ">"}


def relation_text(lhs: g.Expr, relations: tuple = (), unicode: bool = True) -> str:
    """``lhs = rhs`` (or ``≤``, ``≠``, … when ``unicode``; grammar spellings otherwise)."""
    out = expr_text(lhs)
    for op, side in relations:
        out += f" {RELATION_TEXT[op] if unicode else op} {expr_text(side)}"
    return out


def relation_latex(lhs: g.Expr, relations: tuple = (), names: dict | None = None) -> str:
    out = expr_latex(lhs, names)
    for op, side in relations:
        out += f" {RELATION_LATEX[op]} {expr_latex(side, names)}"
    return out


# ---------------------------------------------------------------- prose with inline math

_LATEX_TEXT = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
               ">": r"\textgreater{}", "|": r"\textbar{}", "…": r"\dots{}", "–": "--", "—": "---", "‘": "`",
               "’": "'", "“": "``", "”": "''", "\u00a0": "~", "§": r"\S{}", "×": r"$\times$"}
_MARKDOWN_SPECIAL = set("\\`*_[]<>|#~$")


def prose(text: str, fmt: str = "text", names: dict | None = None) -> str:
    """Prose whose math is written in the grammar between backticks, rendered for a terminal
    (``fmt="text"``), LaTeX (``"latex"``: ``$…$``) or GitHub Markdown (``"markdown"``: ``$`…`$``).

    Outside the backticks only plain text is allowed; for LaTeX it is escaped,
    and a character that would need math mode (Greek, operators) is an error
    that asks for backticks, so prose and formulas are set alike.

    >>> print(prose("for `N >= 1` and `x[i]` i.i.d.", "latex"))
    for $N \\geq 1$ and $x_{i}$ i.i.d.
    """
    parts = text.split("`")
    if len(parts) % 2 == 0:
        raise ValueError(f"unbalanced backticks in {text!r}")
    out = []
    for k, part in enumerate(parts):
        if k % 2:
            lhs, relations = g.parse_relation(part)
            if fmt == "text":
                out.append(relation_text(lhs, relations))
            elif fmt == "latex":
                out.append(f"${relation_latex(lhs, relations, names)}$")
            else:
                out.append(f"$`{relation_latex(lhs, relations, names)}`$")
        elif fmt == "text":
            out.append(part)
        elif fmt == "latex":
            out.append(_latex_text(part, text))
        else:
            out.append("".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in part))
    return "".join(out)


def _latex_text(part: str, whole: str) -> str:
    out = []
    for ch in part:
        if ch in _LATEX_TEXT:
            out.append(_LATEX_TEXT[ch])
        elif ord(ch) < 128 or ch.isalpha() and ord(ch) < 0x250:  # ASCII and accented Latin letters
            out.append(ch)
        else:
            raise ValueError(f"{ch!r} in the prose {whole!r}: write math in the grammar between backticks")
    return "".join(out)


# ---------------------------------------------------------------- trees → LaTeX

_ACCENTS = {"hat": "\\hat", "tilde": "\\tilde", "bar": "\\bar", "dot": "\\dot"}
_SUBSCRIPT_WORDS = {"inf": "\\infty", "min": "\\min", "max": "\\max"}


def _base_latex(base: str) -> str:
    """One name without underscores: ``U11`` → ``U_{11}``, ``yhat`` → ``\\hat{y}``, ``Lambda`` → ``\\Lambda``."""
    match = re.fullmatch(r"([A-Za-z]+?)(\d+)", base)
    if match:
        return f"{_base_latex(match.group(1))}_{{{match.group(2)}}}"
    for suffix, accent in _ACCENTS.items():
        if base.endswith(suffix) and len(base) > len(suffix):
            return f"{accent}{{{_base_latex(base[:-len(suffix)])}}}"
    if base.endswith("star") and len(base) > 4:
        return f"{_base_latex(base[:-4])}^{{\\star}}"
    if base in GREEK or base in LATEX_GREEK:
        return "\\" + LATEX_GREEK.get(base, base)
    if base == "ell":
        return "\\ell"
    return base if len(base) == 1 else f"\\mathrm{{{base}}}"


def name_latex(name: str, names: dict | None = None) -> str:
    """LaTeX of a name: ``names`` first, else conventions (Greek letters, digits and ``_x`` as subscripts,
    suffixes ``hat``/``tilde``/``bar``/``dot``/``star``, ``ell``, ``_inf`` → ``_{\\infty}``).

    >>> print(" ".join(name_latex(n) for n in ("U11", "yhat", "elltilde", "c_inf", "W_Q", "Lambda")))
    U_{11} \\hat{y} \\tilde{\\ell} c_{\\infty} W_{Q} \\Lambda
    """
    if names and name in names:
        return names[name]
    base, _, sub = name.partition("_")
    if not sub:
        return _base_latex(base)
    if sub == "star":  # U11_star → U_{11}^{\star}
        return f"{_base_latex(base)}^{{\\star}}"
    sub_latex = _SUBSCRIPT_WORDS.get(sub) or (sub if len(sub) <= 2 or sub.isdigit() else f"\\mathrm{{{sub}}}")
    numbered = re.fullmatch(r"([A-Za-z]+?)(\d+)", base)
    if numbered:  # U11_inf → U_{11,\infty}: one subscript, not two
        return f"{_base_latex(numbered.group(1))}_{{{numbered.group(2)},{sub_latex}}}"
    return f"{_base_latex(base)}_{{{sub_latex}}}"


def _fraction_latex(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def _latex_prec(x: g.Expr) -> int:
    # a superscripted node (power, inverse, transpose) cannot take another superscript without brackets
    return 4 if isinstance(x, (g.Inverse, g.Transpose)) else _prec(x)


def _negative(x: g.Expr) -> bool:
    """A factor that prints with a leading minus (juxtaposed after another factor it needs brackets)."""
    return isinstance(x, g.Neg) or (isinstance(x, g.Number) and x.value < 0)


def expr_latex(e: g.Expr, names: dict | None = None) -> str:
    """The tree in LaTeX (``\\frac`` for divisions, juxtaposition for products)."""

    def wrap(x: g.Expr, below: int) -> str:
        text = walk(x)
        return f"\\left({text}\\right)" if _latex_prec(x) < below else text

    def walk(x: g.Expr) -> str:
        if isinstance(x, g.Name):
            return "I" if x.name == "I" else name_latex(x.name, names)
        if isinstance(x, g.Number):
            return _fraction_latex(x.value)
        if isinstance(x, g.Indexed):
            base = name_latex(x.name, names)
            return f"{{{base}}}_{{{x.index}}}" if "_" in base else f"{base}_{{{x.index}}}"  # x_q indexed: {x_q}_i
        if isinstance(x, (g.Add, g.Sub)):
            return _join_signed([(sign, wrap(term, 2)) for sign, term in signed_terms(x)])
        if isinstance(x, g.Neg):
            return f"-{wrap(x.operand, 3)}"
        if isinstance(x, (g.Mul, g.MatMul)):
            left, right = wrap(x.left, 2), wrap(x.right, 4 if _negative(x.right) else 2)
            if isinstance(x, g.Mul) and isinstance(x.left, g.Number) and isinstance(x.right, g.Number):
                return f"{left} \\cdot {right}"
            return f"{left} {right}"
        if isinstance(x, g.Div):
            if len(expr_text(x.left)) > 16:  # a long numerator: 1/N in front, as papers write it
                if isinstance(x.left, g.Neg):
                    return f"-\\frac{{1}}{{{walk(x.right)}}} {wrap(x.left.operand, 2)}"
                return f"\\frac{{1}}{{{walk(x.right)}}} {wrap(x.left, 4 if _negative(x.left) else 2)}"
            return f"\\frac{{{walk(x.left)}}}{{{walk(x.right)}}}"
        if isinstance(x, g.Pow):
            p, base = x.power, x.base
            if isinstance(base, g.Inverse) and _latex_prec(base.operand) >= 5:  # inv(A)**2 → A^{-2}
                p, base = -p, base.operand
            exponent = str(p.numerator) if p.denominator == 1 else f"{p.numerator}/{p.denominator}"
            return f"{wrap(base, 5)}^{{{exponent}}}"
        if isinstance(x, g.Transpose):
            inner = x.operand
            if isinstance(inner, g.Inverse) and _prec(inner.operand) >= 5:
                return f"{walk(inner.operand)}^{{-\\top}}"
            return f"{wrap(inner, 5)}^{{\\top}}"
        if isinstance(x, g.Trace):
            return f"\\operatorname{{tr}}\\left({walk(x.operand)}\\right)"
        if isinstance(x, g.Inverse):
            return f"{wrap(x.operand, 5)}^{{-1}}"
        if isinstance(x, g.Identity):
            return "I" if x.dim == "d" else f"I_{{{name_latex(x.dim, names)}}}"
        if isinstance(x, g.Zeros):
            return "0"
        if isinstance(x, g.Sum):
            body = wrap(x.body, 2)
            return f"\\sum_{{{x.index}=1}}^{{{name_latex(x.count, names)}}} {body}"
        if isinstance(x, g.Expectation):
            return f"\\mathbb{{E}}\\left[{walk(x.operand)}\\right]"
        if isinstance(x, g.Gradient):
            variable = name_latex(x.name, names)
            if isinstance(x.operand, g.Name):
                return f"\\frac{{\\partial {walk(x.operand)}}}{{\\partial {variable}}}"
            return f"\\nabla_{{{variable}}}\\left({walk(x.operand)}\\right)"
        if isinstance(x, g.Substitution):
            pairs = ",\\; ".join(f"{name_latex(name, names)} = {walk(value)}" for name, value in x.values)
            return f"\\left.{walk(x.operand)}\\right|_{{{pairs}}}"
        raise TypeError(f"cannot print {x!r}")

    return walk(e)


# ---------------------------------------------------------------- canonical parts → trees

def _letter_expr(l, context) -> g.Expr:
    name = l.name
    if isinstance(name, str):
        base: g.Expr = g.Name(name)
        anonymous = False
    else:
        alias = context.compound_name(name) if context is not None else None
        anonymous = alias is None
        base = g.Name(alias) if alias else terms_expr(name.value.shape, name.value.terms, context)
    p = l.power
    if anonymous:
        # an anonymous compound is only ever an inverse or a rational power of its polynomial; a
        # positive integer power is written as an inverse's negative power so that it parses back
        # to the same opaque letter rather than to the expanded product
        node = g.Inverse(base) if p == -1 else (g.Pow(g.Inverse(base), -p) if p.denominator == 1
                                                 else g.Pow(base, p))
    elif p == 1:
        node = base
    elif p.denominator == 1 and p < 0:  # inv(A)**2 rather than A**(-2)
        node = g.Inverse(base) if p == -1 else g.Pow(g.Inverse(base), -p)
    else:
        node = g.Pow(base, p)
    return g.Transpose(node) if l.transposed else node


def _matmul_chain(parts: list) -> g.Expr | None:
    result = None
    for node in parts:
        result = node if result is None else g.MatMul(result, node)
    return result


def strand_expr(strand, context, dim="d") -> g.Expr:
    """A canonical strand as a left-to-right product; ``dim`` is the size of an empty word's identity."""
    left, word, right = strand
    letters = [_letter_expr(l, context) for l in word]
    if is_loop(strand):
        return g.Trace(_matmul_chain(letters) if letters else g.Identity(dim))
    parts = ([g.Transpose(g.Name(left[1]))] if left[0] == "vec" else []) + letters
    if right[0] == "vec":
        parts.append(g.Name(right[1]))
    return _matmul_chain(parts) if parts else g.Identity(dim)


def chain_expr(chain, context, shape) -> g.Expr | None:
    """The matrix/vector part of a term; ``None`` for scalars."""
    if not chain:
        return None
    result = strand_expr(chain[0], context, shape[0])
    for strand in chain[1:]:
        result = g.MatMul(result, strand_expr(strand, context, shape[1]))
    return result


def _balanced_sum(signed: list) -> g.Expr:
    """``±a ± b ± …`` as a balanced tree (a long sum must not nest deeply)."""
    if len(signed) == 1:
        sign, term = signed[0]
        return term if sign > 0 else g.Neg(term)
    middle = len(signed) // 2
    left = _balanced_sum(signed[:middle])
    right = signed[middle:]
    if right[0][0] < 0:
        return g.Sub(left, _balanced_sum([(-s, t) for s, t in right]))
    return g.Add(left, _balanced_sum(right))


def _product(factors: list) -> g.Expr | None:
    result = None
    for f in factors:
        result = f if result is None else g.Mul(result, f)
    return result


def sympy_expr(value: sympy.Expr, context=None) -> g.Expr:
    """A sympy scalar as a tree: sums in sympy's order, negative powers as divisions."""
    if isinstance(value, Contraction):
        return strand_expr(value.strand, context)
    if isinstance(value, sympy.Symbol):
        return g.Name(value.name)
    if value.is_Rational:
        return g.Number(Fraction(int(value.p), int(value.q)))
    if value.is_Add:
        signed = []
        for term in value.as_ordered_terms():
            sign = -1 if term.could_extract_minus_sign() else 1
            signed.append((sign, sympy_expr(-term if sign < 0 else term, context)))
        return _balanced_sum(signed)
    if value.is_Mul:
        coef, factors = value.as_coeff_mul()
        if coef < 0:
            return g.Neg(sympy_expr(-value, context))
        numerator, denominator = [], []
        if coef.p != 1:
            numerator.append(g.Number(Fraction(int(coef.p))))
        if coef.q != 1:
            denominator.append(g.Number(Fraction(int(coef.q))))
        for f in sorted(factors, key=_factor_key):
            base, exp = f.as_base_exp()
            if exp.is_Rational and exp < 0:
                denominator.append(sympy_expr(base ** -exp, context))
            else:
                numerator.append(sympy_expr(f, context))
        top = _product(numerator) or g.Number(Fraction(1))
        bottom = _product(denominator)
        return top if bottom is None else g.Div(top, bottom)
    if value.is_Pow and value.exp.is_Rational:
        if value.exp < 0:
            return g.Div(g.Number(Fraction(1)), sympy_expr(value.base ** -value.exp, context))
        return g.Pow(sympy_expr(value.base, context), Fraction(int(value.exp.p), int(value.exp.q)))
    raise ValueError(f"cannot write {value} in the expression grammar")


def _factor_key(f: sympy.Expr):
    """Scalars and sizes first (by name), then traces and bilinear forms."""
    base = f.as_base_exp()[0]
    return (isinstance(base, Contraction), str(base))


def monomial_groups(coef: sympy.Expr, sizes: frozenset) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """``[(size coefficient, monomial), ...]`` with ``coef = Σ size_coefficient · monomial``.

    A monomial is the product of the factors that are not sizes (traces,
    bilinear forms, scalar symbols); its coefficient collects numbers and
    dimensions/counts.  Ordered by monomial degree, then text.
    """
    grouped: dict = {}
    for term in sympy.Add.make_args(sympy.expand(coef)):
        number, factors = term.as_coeff_mul()
        size_part, monomial = [number], []
        for f in factors:
            (size_part if f.free_symbols <= sizes else monomial).append(f)
        key = sympy.Mul(*monomial)
        grouped[key] = grouped.get(key, 0) + sympy.Mul(*size_part)
    def degree(monomial: sympy.Expr) -> float:
        return sum(abs(float(f.as_base_exp()[1])) for f in sympy.Mul.make_args(monomial)) if monomial != 1 else 0.0

    items = [(c, m) for m, c in grouped.items() if c != 0]
    return sorted(items, key=lambda item: (-degree(item[1]), str(item[1])))


def _size_coefficient(value: sympy.Expr) -> sympy.Expr:
    """The shorter of the expanded and the factored form (``1 + 1/N`` rather than ``(N + 1)/N``)."""
    expanded = sympy.expand(value)
    factored = sympy.factor(expanded)
    return factored if len(str(factored)) < len(str(expanded)) else expanded


def _sizes_in(terms: dict) -> frozenset:
    """Without a context, the sizes are the positive-integer symbols (dimensions and counts are declared so)."""
    return frozenset(sym for coef in terms.values() for sym in coef.free_symbols
                     if sym.is_integer and sym.is_positive)


def _chain_degree(chain) -> float:
    return sum(abs(float(l.power)) for s in chain for l in s[1]) + sum(
        s[0][0] == "vec" or s[2][0] == "vec" for s in chain)


def poly_expr(poly) -> g.Expr:
    """A canonical polynomial (anything with ``shape``, ``terms``, ``context``) as a grammar tree."""
    return terms_expr(poly.shape, poly.terms, getattr(poly, "context", None))


def terms_expr(shape, terms: dict, context) -> g.Expr:
    """``Σ coef · chain`` of the given shape as a grammar tree, grouped by monomial."""
    sizes = context.size_symbols if context is not None else _sizes_in(terms)
    pieces = []
    chains = sorted(terms.items(), key=lambda item: (-_chain_degree(item[0]),
                                                     expr_text(chain_expr(item[0], context, shape)) if item[0] else ""))
    for chain, coef in chains:
        matrix = chain_expr(chain, context, shape)
        for size_coef, monomial in monomial_groups(coef, sizes):
            size_coef = _size_coefficient(size_coef)
            sign = -1 if size_coef.could_extract_minus_sign() else 1
            size_coef = -size_coef if sign < 0 else size_coef
            pieces.append((sign, _term_expr(size_coef, monomial, matrix, context)))
    if not pieces:
        rows, cols = shape
        return g.Number(Fraction(0)) if shape == (1, 1) else g.Zeros(rows, cols)
    return _balanced_sum(pieces)


def _term_expr(size_coef: sympy.Expr, monomial: sympy.Expr, matrix: g.Expr | None, context) -> g.Expr:
    """``size_coef · monomial · matrix``; ``c/N`` reads ``monomial/N`` when the numerator is 1."""
    factors = []
    if monomial != 1:
        mono = sympy_expr(monomial, context)
        if size_coef != 1 and not size_coef.is_Add and sympy.fraction(size_coef)[0] == 1:
            mono = g.Div(mono, sympy_expr(1 / size_coef, context))
        elif size_coef != 1:
            factors.append(sympy_expr(size_coef, context))
        factors.append(mono)
    elif size_coef != 1 or matrix is None:
        factors.append(sympy_expr(size_coef, context))
    if matrix is not None:
        if len(factors) == 1 and isinstance(factors[0], g.Div) and factors[0].left == g.Number(Fraction(1)):
            return g.Div(matrix, factors[0].right)  # inv(Gamma)/u rather than 1/u * inv(Gamma)
        factors.append(matrix)
    return _product(factors)


def poly_text(poly) -> str:
    return expr_text(poly_expr(poly))


def poly_latex(poly, names: dict | None = None) -> str:
    context = getattr(poly, "context", None)
    merged = {**(context.latex_names if context is not None else {}), **(names or {})}
    return expr_latex(poly_expr(poly), merged)


def to_text(obj) -> str:
    """Text of a polynomial, a tree, a sympy scalar or a string (returned as is)."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, g.Expr):
        return expr_text(obj)
    if hasattr(obj, "terms") and hasattr(obj, "shape"):
        return poly_text(obj)
    if isinstance(obj, sympy.MatrixBase):
        return str(obj.tolist())
    if isinstance(obj, sympy.Basic):
        try:
            return expr_text(sympy_expr(obj))
        except ValueError:  # a sympy matrix expression or function outside the grammar
            return sympy.sstr(obj)
    return str(obj)


def to_latex(obj, names: dict | None = None) -> str:
    """LaTeX of a polynomial, a tree, a sympy object or a string (returned as is)."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, g.Expr):
        return expr_latex(obj, names)
    if hasattr(obj, "terms") and hasattr(obj, "shape"):
        return poly_latex(obj, names)
    if isinstance(obj, sympy.Basic) and not isinstance(obj, sympy.MatrixBase):
        try:
            return expr_latex(sympy_expr(obj), names)
        except ValueError:
            pass
    return _SympyLatex(names).doprint(obj)


class _SympyLatex(LatexPrinter):
    """sympy's LaTeX printer (for sympy matrices and matrix expressions) with the project's names."""

    def __init__(self, names: dict | None = None):
        super().__init__({"mul_symbol": None})
        self.names = names or {}

    def _print_Symbol(self, expr, style="plain"):
        return name_latex(expr.name, self.names)

    def _print_Contraction(self, expr):
        return expr_latex(strand_expr(expr.strand, None), self.names)

    def _print_Transpose(self, expr):  # sympy writes ^{T}; the papers write ^{\top}
        return super()._print_Transpose(expr).replace("^{T}", "^{\\top}")
