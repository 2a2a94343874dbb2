"""The one expression language of the project, parsed without eval.

Grammar (a subset of Python syntax, checked node by node against an allow-list)::

    expr  := expr (+ | - | * | / | @) expr | - expr | expr ** power
           | expr.T | tr(expr) | inv(expr) | sum(i, expr) | sum(i, expr, COUNT)
           | I | I(DIM) | zeros(ROWS, COLS)
           | E(expr) | grad(expr, NAME) | at(expr, NAME=expr, ...)
           | NAME | NAME[i] | NUMBER | ( expr )
    power := INTEGER | -INTEGER | (p/q)          # |INTEGER| <= MAX_POWER
    relation := expr (= | != | <= | >= | < | >) expr ...   # equations and inline math


``@`` is the matrix product, ``*`` multiplies by a scalar, ``/`` divides by a
constant scalar.  ``sum(i, E)`` is the sum of ``E`` over ``i = 1..N`` and
``sum(i, E, M)`` over ``i = 1..M`` for a declared count ``M``; ``x[i]`` is the
``i``-th draw of the Gaussian family ``x``.  ``I`` is the d×d identity and
``I(L)`` the L×L one; ``zeros(R, C)`` is a zero matrix (``R``, ``C`` dimensions
or ``1``).  Statements use three operators that later passes evaluate:
``E(X)`` is the expectation of ``X`` over the declared Gaussians,
``grad(f, X)`` the gradient of the scalar ``f`` with respect to the symbol
``X``, and ``at(f, X=v, u=w)`` is ``f`` with ``X`` and ``u`` replaced by ``v``
and ``w``.  :func:`parse_relation` reads ``lhs = rhs`` (and ``!=``, ``<=``,
``>=``, ``<``, ``>``) chains.  What a name means (a matrix of some shape, a vector, a scalar, a
dimension, a count, a Gaussian family) is decided by the declarations
(:mod:`derive.engine.context`), not by the grammar.

The text is tokenized, split at its top-level ``+``/``-`` (so that a long sum
does not nest), each term is parsed with :func:`ast.parse`, and every node is
checked; anything else (attribute access other than ``.T``, keyword arguments,
strings, other functions, comparisons, lambdas, ...) raises
:class:`GrammarError` with one line naming the offending piece.  Nothing is
ever passed to ``eval``, ``exec``, ``sympify`` or ``parse_expr``.

Limits (each refusal is one line): at most :data:`MAX_TEXT` characters,
nesting depth :data:`MAX_DEPTH` (a flat sum of many terms counts as one level
per doubling), integer exponents of magnitude at most :data:`MAX_POWER`,
number literals of at most :data:`MAX_DIGITS` digits.

>>> parse("x @ x.T @ A")
MatMul(left=MatMul(left=Name(name='x'), right=Transpose(operand=Name(name='x'))), right=Name(name='A'))
>>> parse("sum(i, x[i] @ x[i].T, M) / M")
Div(left=Sum(index='i', body=MatMul(left=Indexed(name='x', index='i'), right=Transpose(operand=Indexed(name='x', index='i'))), count='M'), right=Name(name='M'))
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from fractions import Fraction

from derive.engine.errors import GrammarError

__all__ = [
    "Expr", "Name", "Number", "Indexed", "Add", "Sub", "Mul", "Div", "MatMul", "Neg", "Pow", "Transpose",
    "Trace", "Inverse", "Sum", "Identity", "Zeros", "Expectation", "Gradient", "Substitution", "parse",
    "parse_relation", "depth", "children", "names", "RESERVED", "FUNCTIONS", "RELATIONS",
    "MAX_TEXT", "MAX_DEPTH", "MAX_POWER", "MAX_DIGITS",
]

RESERVED = {"I", "d", "N", "tr", "inv", "sum", "zeros", "E", "grad", "at"}
FUNCTIONS = {"tr": (1,), "inv": (1,), "sum": (2, 3), "I": (1,), "zeros": (2,), "E": (1,), "grad": (2,), "at": (1,)}
RELATIONS = ("!=", "<=", ">=", "=", "<", ">")

MAX_TEXT = 200_000  # characters of input
MAX_DEPTH = 200  # nesting levels of the expression tree
MAX_POWER = 64  # largest |k| in X**k
MAX_DIGITS = 100  # digits of a number literal


class Expr:
    """Base of the expression tree.  Nodes are immutable and hashable; Python operators build trees."""

    def __add__(self, other):
        return Add(self, _lift(other))

    def __radd__(self, other):
        return Add(_lift(other), self)

    def __sub__(self, other):
        return Sub(self, _lift(other))

    def __rsub__(self, other):
        return Sub(_lift(other), self)

    def __mul__(self, other):
        return Mul(self, _lift(other))

    def __rmul__(self, other):
        return Mul(_lift(other), self)

    def __truediv__(self, other):
        return Div(self, _lift(other))

    def __matmul__(self, other):
        return MatMul(self, _lift(other))

    def __neg__(self):
        return Neg(self)

    def __pow__(self, power):
        return Pow(self, Fraction(power))

    @property
    def T(self):
        return Transpose(self)


def _lift(value) -> "Expr":
    if isinstance(value, Expr):
        return value
    if isinstance(value, (int, Fraction)):
        return Number(Fraction(value))
    raise TypeError(f"cannot combine an expression with {value!r}")


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class Number(Expr):
    value: Fraction


@dataclass(frozen=True)
class Indexed(Expr):
    name: str
    index: str


@dataclass(frozen=True)
class Add(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Sub(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Mul(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Div(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class MatMul(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Pow(Expr):
    base: Expr
    power: Fraction


@dataclass(frozen=True)
class Transpose(Expr):
    operand: Expr


@dataclass(frozen=True)
class Trace(Expr):
    operand: Expr


@dataclass(frozen=True)
class Inverse(Expr):
    operand: Expr


@dataclass(frozen=True)
class Sum(Expr):
    index: str
    body: Expr
    count: str = "N"


@dataclass(frozen=True)
class Identity(Expr):
    """``I(dim)``; the plain name ``I`` is ``Name("I")``, the d×d identity."""

    dim: str


@dataclass(frozen=True)
class Zeros(Expr):
    """``zeros(rows, cols)``: a zero matrix; ``rows``/``cols`` are dimension names or 1."""

    rows: str | int
    cols: str | int


@dataclass(frozen=True)
class Expectation(Expr):
    """``E(operand)``: the expectation over the declared Gaussian families (a statement operator)."""

    operand: Expr


@dataclass(frozen=True)
class Gradient(Expr):
    """``grad(operand, name)``: the gradient of a scalar with respect to a declared symbol."""

    operand: Expr
    name: str


@dataclass(frozen=True)
class Substitution(Expr):
    """``at(operand, X=v, ...)``: the operand with names replaced by expressions."""

    operand: Expr
    values: tuple  # ((name, Expr), ...)


def children(node: Expr) -> tuple[Expr, ...]:
    """The sub-expressions of a node (its operands, and the values of a substitution)."""
    found = [v for v in vars(node).values() if isinstance(v, Expr)]
    if isinstance(node, Substitution):
        found += [value for _, value in node.values]
    return tuple(found)


def names(node: Expr) -> set:
    """Every name (and indexed family) a tree uses."""
    found, stack = set(), [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (Name, Indexed)):
            found.add(current.name)
        stack.extend(children(current))
    return found


def depth(node: Expr) -> int:
    """Nesting depth of a tree (a leaf has depth 1), computed without recursion."""
    best, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        best = max(best, level)
        stack.extend((child, level + 1) for child in children(current))
    return best


# ---------------------------------------------------------------- parsing

_BINARY = {ast.Add: Add, ast.Sub: Sub, ast.Mult: Mul, ast.Div: Div, ast.MatMult: MatMul}
_OPENERS, _CLOSERS = "([{", ")]}"


def parse(text: str) -> Expr:
    """Parse ``text`` into an :class:`Expr`, or raise :class:`GrammarError` (one line)."""
    if not isinstance(text, str) or not text.strip():
        raise GrammarError("empty expression")
    if len(text) > MAX_TEXT:
        raise GrammarError(f"the expression has {len(text):,} characters (limit {MAX_TEXT:,})")
    source = " ".join(text.split())  # one line: tokens never span lines
    terms = [(sign, _parse_term(piece)) for sign, piece in _split_sum(source)]
    tree = _balanced(terms)
    if depth(tree) > MAX_DEPTH:
        raise GrammarError(f"the expression nests more than {MAX_DEPTH} levels deep; split it")
    return tree


def parse_relation(text: str) -> tuple[Expr, tuple]:
    """``"a = b"`` → ``(a, (("=", b),))``; chains such as ``"0 < a <= b"`` give several pairs.

    The relation signs are read at the top level of the text (outside
    brackets); each side is parsed by :func:`parse`.  A text without a
    relation gives ``(expr, ())``.

    >>> lhs, rest = parse_relation("E(x.T @ x) = tr(Lambda)")
    >>> lhs, rest[0][0]
    (Expectation(operand=MatMul(left=Transpose(operand=Name(name='x')), right=Name(name='x'))), '=')
    """
    if not isinstance(text, str) or not text.strip():
        raise GrammarError("empty relation")
    source = " ".join(text.split())
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as error:
        raise GrammarError(f"syntax error in {source[:60]!r}: {error.args[0]}") from None
    cuts, depth_ = [], 0
    for token in tokens:
        if token.type == tokenize.OP and token.string in _OPENERS:
            depth_ += 1
        elif token.type == tokenize.OP and token.string in _CLOSERS:
            depth_ -= 1
        elif token.type == tokenize.OP and depth_ == 0 and token.string in RELATIONS + ("==",):
            cuts.append((token.start[1], token.end[1], "=" if token.string == "==" else token.string))
    if not cuts:
        return parse(source), ()
    pieces, start = [], 0
    for begin, end, _ in cuts:
        pieces.append(source[start:begin])
        start = end
    pieces.append(source[start:])
    sides = [parse(piece) for piece in pieces]
    return sides[0], tuple((op, side) for (_, _, op), side in zip(cuts, sides[1:]))


_NUMBER_BEFORE_EXPONENT = re.compile(r"(?<![A-Za-z0-9_.])[0-9.]+[eE]$")


def _split_sum(source: str) -> list[tuple[int, str]]:
    """``source`` cut at its top-level binary ``+``/``-``: ``[(sign, term text), ...]``.

    A long sum then parses term by term instead of as one deeply nested tree.
    A ``-`` (or ``+``) is binary when the character before it ends an operand
    (a letter, digit, ``_``, ``)`` or ``]``) and is not the ``e`` of a number
    such as ``1e-3``; otherwise it is a unary sign and stays.  (A scan of
    characters, not a tokenizer: this runs on every expression.)
    """
    cuts, depth_, previous = [], 0, ""
    for k, ch in enumerate(source):
        if ch in _OPENERS:
            depth_ += 1
        elif ch in _CLOSERS:
            depth_ -= 1
        elif ch in "+-" and depth_ == 0 and previous and (previous.isalnum() or previous in "_)]"):
            if not (previous in "eE" and _NUMBER_BEFORE_EXPONENT.search(source[:k].rstrip())):
                cuts.append((k, ch))
        if not ch.isspace():
            previous = ch
    pieces, start, sign = [], 0, 1
    for column, op in cuts:
        pieces.append((sign, source[start:column]))
        start, sign = column + 1, 1 if op == "+" else -1
    pieces.append((sign, source[start:]))
    for _, piece in pieces:
        if not piece.strip():
            raise GrammarError(f"syntax error in {source[:60]!r}: a '+' or '-' without an operand")
    return pieces


def _balanced(terms: list[tuple[int, Expr]]) -> Expr:
    """``±t₁ ± t₂ ± …`` as a balanced tree of Add/Sub (depth log₂ of the number of terms)."""
    if len(terms) == 1:
        sign, term = terms[0]
        return term if sign > 0 else Neg(term)
    middle = len(terms) // 2
    left = _balanced(terms[:middle])
    right_terms = terms[middle:]
    if right_terms[0][0] < 0:  # a - (b ± c ...) : flip the signs of the right half
        return Sub(left, _balanced([(-s, t) for s, t in right_terms]))
    return Add(left, _balanced(right_terms))


def _parse_term(piece: str) -> Expr:
    text = piece.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        if "nested" in str(error.msg):
            raise GrammarError(f"the expression nests too deeply: {error.msg}") from None
        raise GrammarError(f"syntax error in {text[:60]!r}: {error.msg}") from None
    except (RecursionError, MemoryError):
        raise GrammarError(f"the expression nests more than {MAX_DEPTH} levels deep; split it") from None
    except ValueError as error:  # e.g. an integer literal beyond Python's digit limit
        raise GrammarError(f"cannot read {text[:40]!r}: {error}") from None
    try:
        return _Converter(text).convert(tree.body)
    except RecursionError:
        raise GrammarError(f"the expression nests more than {MAX_DEPTH} levels deep; split it") from None


class _Converter:
    def __init__(self, source: str):
        self.source = source

    def piece(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        return text if len(text) <= 60 else text[:57] + "..."

    def fail(self, node: ast.AST, why: str):
        raise GrammarError(f"{why}: {self.piece(node)!r}")

    def convert(self, node: ast.AST) -> Expr:
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                return Pow(self.convert(node.left), self.power(node.right))
            op = _BINARY.get(type(node.op))
            if op is None:
                self.fail(node, "operator not allowed")
            return op(self.convert(node.left), self.convert(node.right))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return Neg(self.convert(node.operand))
            if isinstance(node.op, ast.UAdd):
                return self.convert(node.operand)
            self.fail(node, "operator not allowed")
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS and node.id != "I":
                self.fail(node, "function used as a value")
            return Name(node.id)
        if isinstance(node, ast.Constant):
            return Number(self.number(node))
        if isinstance(node, ast.Attribute):
            if node.attr != "T":
                self.fail(node, "only the attribute .T (transpose) is allowed")
            return Transpose(self.convert(node.value))
        if isinstance(node, ast.Subscript):
            if not isinstance(node.value, ast.Name) or not isinstance(node.slice, ast.Name):
                self.fail(node, "indexing must look like x[i]")
            if node.value.id in RESERVED or node.slice.id in RESERVED:
                self.fail(node, "reserved name used in indexing")
            return Indexed(node.value.id, node.slice.id)
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail(node, "not part of the expression grammar")

    def number(self, node: ast.Constant) -> Fraction:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(node, "only numbers are allowed as constants")
        text = ast.get_source_segment(self.source, node) or repr(value)
        if sum(ch.isdigit() for ch in text) > MAX_DIGITS:
            self.fail(node, f"number literal longer than {MAX_DIGITS} digits")
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                self.fail(node, "not a finite number")
            return Fraction(text.replace("_", ""))
        return Fraction(value)

    def call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            self.fail(node.func, "unknown function (allowed: tr, inv, sum, I, zeros, E, grad, at)")
        name = node.func.id
        if name == "at":
            return self.substitution(node)
        if node.keywords:
            self.fail(node, "keyword arguments are not allowed")
        arities = FUNCTIONS[name]
        if len(node.args) not in arities:
            expected = " or ".join(str(a) for a in arities)
            self.fail(node, f"{name}() takes {expected} argument(s), got {len(node.args)}")
        if name == "tr":
            return Trace(self.convert(node.args[0]))
        if name == "inv":
            return Inverse(self.convert(node.args[0]))
        if name == "I":
            return Identity(self.dimension(node.args[0], allow_one=False))
        if name == "zeros":
            return Zeros(self.dimension(node.args[0]), self.dimension(node.args[1]))
        if name == "E":
            return Expectation(self.convert(node.args[0]))
        if name == "grad":
            target = node.args[1]
            if not isinstance(target, ast.Name) or target.id in RESERVED:
                self.fail(target, "the second argument of grad() must be a symbol")
            return Gradient(self.convert(node.args[0]), target.id)
        index = node.args[0]
        if not isinstance(index, ast.Name) or index.id in RESERVED:
            self.fail(index, "the first argument of sum() must be an index name")
        count = "N"
        if len(node.args) == 3:
            count_node = node.args[2]
            if not isinstance(count_node, ast.Name) or count_node.id in RESERVED - {"N"}:
                self.fail(count_node, "the third argument of sum() must be a declared count such as M")
            count = count_node.id
        return Sum(index.id, self.convert(node.args[1]), count)

    def substitution(self, node: ast.Call) -> Expr:
        """``at(f, X=v, ...)``: one positional argument, then keyword arguments naming symbols."""
        if len(node.args) != 1 or not node.keywords:
            self.fail(node, "at() takes an expression and NAME=value pairs, e.g. at(f, U11=c * inv(Gamma))")
        values = []
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg in RESERVED:
                self.fail(node, "at() substitutes declared names: at(f, NAME=value)")
            values.append((keyword.arg, self.convert(keyword.value)))
        return Substitution(self.convert(node.args[0]), tuple(values))

    def dimension(self, node: ast.AST, allow_one: bool = True) -> str | int:
        if isinstance(node, ast.Name) and (node.id == "d" or node.id not in RESERVED):
            return node.id
        if allow_one and isinstance(node, ast.Constant) and node.value == 1 and type(node.value) is int:
            return 1
        self.fail(node, "expected a dimension name" + (" or 1" if allow_one else ""))

    def power(self, node: ast.AST) -> Fraction:
        """Exponents are literal: an integer, a negative integer, or (p/q), at most MAX_POWER in size."""
        value = self._literal(node)
        if value is None:
            self.fail(node, "exponent must be an integer literal or a fraction (p/q)")
        if abs(value) > MAX_POWER or value.denominator > MAX_POWER:
            self.fail(node, f"exponent larger than {MAX_POWER} in size")
        return value

    def _literal(self, node: ast.AST) -> Fraction | None:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            if len(str(abs(node.value))) > MAX_DIGITS:
                return None
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self._literal(node.operand)
            return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            num, den = self._literal(node.left), self._literal(node.right)
            if num is None or den is None or den == 0 or num.denominator != 1 or den.denominator != 1:
                return None
            return num / den
        return None
