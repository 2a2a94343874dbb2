"""Block-matrix algebra on expression trees.

A block matrix is a list of rows, each a list of entries that are grammar
trees or ``None`` (a zero block).  Products, transposes and traces are formed
block by block, with ordinary matrix rules inside each block, so a model
written with blocks (an embedding ``E = [[X], [y]]``, weights
``W = [[W11, w12], [w21ᵀ, w22]]``) expands to one tree per block; the shapes
of the blocks are checked later, when the tree is expanded in a context.

>>> from derive.engine.grammar import parse
>>> from derive.engine.printing import expr_text
>>> W = [[parse("A"), parse("b")], [parse("c.T"), parse("e")]]
>>> v = [[parse("x")], [None]]
>>> expr_text(block_matmul(W, v)[1][0])
'c.T @ x'
"""

from __future__ import annotations

from fractions import Fraction

from derive.engine import grammar as g

__all__ = ["block_matmul", "block_transpose", "block_trace"]


def block_matmul(a: list, b: list) -> list:
    """``a @ b`` for block matrices (lists of rows); ``None`` entries are zero blocks."""
    if any(len(row) != len(b) for row in a):
        raise ValueError("block_matmul: the block columns of the left factor do not match the block rows of the right")
    rows = []
    for row in a:
        out = []
        for k in range(len(b[0])):
            total = None
            for j, entry in enumerate(row):
                if entry is None or b[j][k] is None:
                    continue
                term = g.MatMul(entry, b[j][k])
                total = term if total is None else g.Add(total, term)
            out.append(total)
        rows.append(out)
    return rows


def block_transpose(a: list) -> list:
    """The block transpose: block (i, j) of the result is the transpose of block (j, i)."""
    return [[None if a[i][j] is None else g.Transpose(a[i][j]) for i in range(len(a))] for j in range(len(a[0]))]


def block_trace(a: list) -> g.Expr:
    """``tr`` of a square block matrix whose last diagonal block is 1×1: ``Σ tr(A_kk)`` over the others."""
    total: g.Expr = g.Number(Fraction(0))
    last = len(a) - 1
    for k in range(len(a)):
        entry = a[k][k]
        if entry is None:
            continue
        total = g.Add(total, entry if k == last else g.Trace(entry))
    return total
