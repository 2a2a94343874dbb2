"""The one expression language of the project, parsed without eval.

Grammar (a subset of Python syntax, checked node by node against an allow-list)::

    expr  := expr (+ | - | * | / | @) expr | - expr | expr ** power
           | expr.T | tr(expr) | inv(expr) | sum(i, expr)
           | NAME | NAME[i] | NUMBER | ( expr )
    power := INTEGER | -INTEGER | (p/q)          # rational only for SPD matrix symbols

Reserved names: ``I`` (identity), ``d`` (dimension), ``N`` (number of samples),
``tr``, ``inv``, ``sum``.  ``@`` is the matrix product, ``*`` multiplies by a
scalar, ``sum(i, E)`` is the sum of ``E`` over ``i = 1..N``, and ``x[i]`` is the
``i``-th draw of the Gaussian family ``x``.

The text is parsed with :func:`ast.parse` and every node is checked; anything
else (attribute access other than ``.T``, keyword arguments, strings, other
functions, comparisons, lambdas, ...) raises :class:`GrammarError` with one line
naming the offending piece.  Nothing is ever passed to ``eval``, ``exec``,
``sympify`` or ``parse_expr``.

>>> parse("x @ x.T @ A @ x @ x.T")
MatMul(left=MatMul(left=MatMul(left=MatMul(left=Name(name='x'), right=Transpose(operand=Name(name='x'))), right=Name(name='A')), right=Name(name='x')), right=Transpose(operand=Name(name='x')))
>>> parse("sum(i, x[i] @ x[i].T) / N")
Div(left=Sum(index='i', body=MatMul(left=Indexed(name='x', index='i'), right=Transpose(operand=Indexed(name='x', index='i')))), right=Name(name='N'))
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from fractions import Fraction

RESERVED = {"I", "d", "N", "tr", "inv", "sum"}
FUNCTIONS = {"tr": 1, "inv": 1, "sum": 2}


class GrammarError(ValueError):
    """Input outside the expression grammar; the message is one line."""


class Expr:
    """Base of the expression tree.  Nodes are immutable and hashable."""

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


def _lift(value) -> Expr:
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


_BINARY = {ast.Add: Add, ast.Sub: Sub, ast.Mult: Mul, ast.Div: Div, ast.MatMult: MatMul}


def parse(text: str) -> Expr:
    """Parse ``text`` into an :class:`Expr`, or raise :class:`GrammarError`."""
    if not isinstance(text, str) or not text.strip():
        raise GrammarError("empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise GrammarError(f"syntax error in {text.strip()!r}: {error.msg}") from None
    return _Converter(text.strip()).convert(tree.body)


class _Converter:
    def __init__(self, source: str):
        self.source = source

    def piece(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ast.unparse(node)

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
            if node.id in FUNCTIONS:
                self.fail(node, "function used as a value")
            return Name(node.id)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(node, "only numbers are allowed as constants")
            if value != value or value in (float("inf"), float("-inf")):
                self.fail(node, "not a finite number")
            return Number(Fraction(self.piece(node)) if isinstance(value, float) else Fraction(value))
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

    def call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            self.fail(node.func, "unknown function (allowed: tr, inv, sum)")
        name = node.func.id
        if node.keywords:
            self.fail(node, "keyword arguments are not allowed")
        if len(node.args) != FUNCTIONS[name]:
            self.fail(node, f"{name}() takes {FUNCTIONS[name]} argument(s), got {len(node.args)}")
        if name == "tr":
            return Trace(self.convert(node.args[0]))
        if name == "inv":
            return Inverse(self.convert(node.args[0]))
        index = node.args[0]
        if not isinstance(index, ast.Name) or index.id in RESERVED:
            self.fail(index, "the first argument of sum() must be an index name")
        return Sum(index.id, self.convert(node.args[1]))

    def power(self, node: ast.AST) -> Fraction:
        """Exponents are literal: an integer, a negative integer, or (p/q)."""
        value = self._literal(node)
        if value is None:
            self.fail(node, "exponent must be an integer literal or a fraction (p/q)")
        return value

    def _literal(self, node: ast.AST) -> Fraction | None:
        if isinstance(node, ast.Constant) and type(node.value) is int:
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
