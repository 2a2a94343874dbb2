"""The engine's two error types; every message is one line, fit for ``error: ...`` on stderr."""

from __future__ import annotations


class GrammarError(ValueError):
    """Text outside the expression grammar (syntax, unknown function, limits of the parser)."""


class ExpressionError(ValueError):
    """A well-formed expression that is meaningless or too large here (shapes, names, limits)."""
