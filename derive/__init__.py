"""icl-derive: in-context-learning theory derived by machine (sympy; never imports torch).

The Python API of the engine::

    >>> import derive
    >>> p = derive.expect("x @ x.T @ A @ x @ x.T", gaussians={"x": "Lambda"})
    >>> print(p)
    Lambda @ A @ Lambda + Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda
    >>> print(p.latex())
    \\Lambda A \\Lambda + \\Lambda A^{\\top} \\Lambda + \\operatorname{tr}\\left(A \\Lambda\\right) \\Lambda

``derive.expect`` takes the declarations of ``python -m derive.expect`` as
keywords (``gaussians``, ``vectors``, ``matrices``, ``scalars``, ``dims``,
``counts``) or a ready ``context=derive.declare(...)``; the result is a
:class:`Polynomial` with ``.text()``, ``.latex()``, ``.to_sympy()``,
``.evaluate(values)`` and ``.collect(*scalars)``.  The registered results
live in the topic modules (``derive.lsa_optimum``, ...); ``python -m derive``
lists them.
"""

from derive.engine import (Collected, Context, ExpressionError, GrammarError, Polynomial, declare, define, expect,
                           expectation, parse, polynomial)

__all__ = ["Collected", "Context", "ExpressionError", "GrammarError", "Polynomial", "declare", "define", "expect",
           "expectation", "parse", "polynomial"]
