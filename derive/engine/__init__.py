"""The symbolic engine: one expression language and the passes over it.

Layers, lowest first (a module imports only from modules above it in this list)::

    errors, grammar            the language: text → expression tree (ast allow-list, no eval)
    words, context             matrix words and their canonical forms; the per-derivation context
    strands, canonical         terms as networks of strands; canonical forms and collection
    expand, wick               passes: tree → raw terms; Isserlis pairing with index coincidences
    printing, evaluate,        passes that only read: trees/polynomials → text, LaTeX, numbers,
    sympy_form                 sympy matrix expressions
    polynomial                 the result type
    calculus, blocks           gradients, linear solves, trace coefficients; block-matrix algebra
    pipeline                   declare(), expectation(), expect(), define()

Nothing in the engine keeps global state: what a name means lives in the
:class:`~derive.engine.context.Context` passed to each pass.
"""

from derive.engine.context import Context
from derive.engine.errors import ExpressionError, GrammarError
from derive.engine.grammar import parse
from derive.engine.pipeline import declare, define, expect, expectation, polynomial
from derive.engine.polynomial import Collected, Polynomial

__all__ = ["Context", "Collected", "ExpressionError", "GrammarError", "Polynomial", "declare", "define", "expect",
           "expectation", "parse", "polynomial"]
