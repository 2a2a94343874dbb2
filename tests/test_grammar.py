"""The grammar: an allow-list over Python's ast; everything else is a one-line GrammarError."""

import pytest

from derive.engine import grammar as g
from derive.engine.grammar import GrammarError, parse


def test_parses_the_documented_constructs():
    e = parse("sum(i, x[i] @ x[i].T) @ inv(A) @ B.T / N**2 - 2 * tr(A) * I + d")
    assert isinstance(e, (g.Add, g.Sub))  # a sum is parsed term by term into a balanced tree
    assert parse("Lambda**(1/2)") == g.Pow(g.Name("Lambda"), g.Fraction(1, 2))
    assert parse("A**-1") == g.Pow(g.Name("A"), g.Fraction(-1))
    assert parse("A**(-1/2)") == g.Pow(g.Name("A"), g.Fraction(-1, 2))
    assert parse("0.25 * A") == g.Mul(g.Number(g.Fraction(1, 4)), g.Name("A"))


@pytest.mark.parametrize("text, piece", [
    ("foo(x)", "foo"),
    ("__import__('os').system('true')", "__import__"),
    ("x.shape", "x.shape"),
    ("A if B else C", "A if B else C"),
    ("lambda: 1", "lambda: 1"),
    ("'text'", "'text'"),
    ("A < B", "A < B"),
    ("tr(A, B)", "tr(A, B)"),
    ("sum(i)", "sum(i)"),
    ("sum(1, A)", "1"),
    ("tr(A=1)", "tr(A=1)"),
    ("A ** B", "B"),
    ("A[1]", "A[1]"),
    ("A % B", "A % B"),
    ("[A]", "[A]"),
    ("A.T.T.__class__", "A.T.T.__class__"),
    ("True * A", "True"),
])
def test_rejects_with_one_line_naming_the_piece(text, piece):
    with pytest.raises(GrammarError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert piece in message


def test_syntax_error_and_empty():
    for text in ("A @", "", "   ", "(A"):
        with pytest.raises(GrammarError):
            parse(text)


def test_never_evaluates(monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    parse("tr(A @ B) * x.T @ A @ x")
