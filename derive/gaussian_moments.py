"""Gaussian moments of matrix expressions: the lemmas every later result stands on.

For x ~ N(0, Λ) and constant A, B (Zhang, Frei & Bartlett, Lemma D.2; Matrix
Cookbook §8.2), all derived by the Wick engine from the expression alone:

    E[x xᵀ A x xᵀ]        = Λ(A + Aᵀ)Λ + tr(AΛ) Λ
    E[(xᵀAx)(xᵀBx)]        = tr(AΛ(B + Bᵀ)Λ) + tr(AΛ) tr(BΛ)
    E[S A S],  S = (1/N) Σᵢ xᵢxᵢᵀ  = ΛAΛ + (ΛAᵀΛ + tr(AΛ) Λ)/N     (so E[S²] = ΓΛ)
    E[x xᵀ A x xᵀ B x xᵀ]  (15 pairings)

Run: ``python -m derive`` lists these with every other registered result;
``python -m derive.expect EXPR --gaussian x:Lambda`` computes any other moment.
"""

from __future__ import annotations

from derive.engine import grammar as g
from derive.engine.context import Context
from derive.engine.pipeline import declare, expectation
from derive.engine.polynomial import Polynomial
from derive.engine.printing import expr_latex
from derive.registry import Derivation, Result, Step

SOURCE = "Zhang, Frei & Bartlett (2024), Lemma D.2 (seed 004); Matrix Cookbook §8.2"
DECL = declare(gaussians={"x": "Lambda"})
ASSUMPTIONS = ("x ~ N(0, Λ) with Λ symmetric positive definite", "A, B constant d×d matrices (not symmetric)")


def moment_derivation(text: str, decl: Context = DECL) -> Derivation:
    """Steps of a Gaussian moment: the definition, then the engine's Wick expansion."""
    expr = g.parse(text)
    result = expectation(expr, decl)
    lhs = f"\\mathbb{{E}}\\left[{expr_latex(expr)}\\right]"
    uses_sums = "sum(" in text
    because = ("Isserlis: sum over perfect matchings of the Gaussian factors, each pair giving Λ"
               + ("; sums split by index coincidence, a partition into b blocks weighing N(N-1)...(N-b+1)"
                  if uses_sums else "")
               + "; like terms collected in canonical form")
    return Derivation(steps=(Step(lhs, result, because, text_lhs=f"E[{text}]"),), values={"expectation": result, "expression": text})


def _paper(text: str):
    return lambda: Polynomial.of(text, DECL)


RESULTS = [
    Result(
        id="gaussian.isserlis_4",
        title="Fourth moment E[x xᵀ A x xᵀ]",
        statement="For x ~ N(0, Λ): E[x xᵀ A x xᵀ] = Λ(A + Aᵀ)Λ + tr(AΛ)Λ.",
        derive=lambda: moment_derivation("x @ x.T @ A @ x @ x.T"),
        paper=_paper("Lambda @ (A + A.T) @ Lambda + tr(A @ Lambda) * Lambda"),
        source=SOURCE,
        assumptions=ASSUMPTIONS,
    ),
    Result(
        id="gaussian.quadratic_forms",
        title="Product of two quadratic forms E[(xᵀAx)(xᵀBx)]",
        statement="For x ~ N(0, Λ): E[(xᵀAx)(xᵀBx)] = tr(AΛ(B + Bᵀ)Λ) + tr(AΛ)tr(BΛ).",
        derive=lambda: moment_derivation("(x.T @ A @ x) * (x.T @ B @ x)"),
        paper=_paper("tr(A @ Lambda @ (B + B.T) @ Lambda) + tr(A @ Lambda) * tr(B @ Lambda)"),
        source="Matrix Cookbook §8.2.3",
        assumptions=ASSUMPTIONS,
    ),
    Result(
        id="gaussian.sample_second_moment",
        title="E[S A S] for the sample second moment S = (1/N) Σᵢ xᵢxᵢᵀ",
        statement="For xᵢ i.i.d. N(0, Λ): E[S A S] = ΛAΛ + (ΛAᵀΛ + tr(AΛ)Λ)/N; at A = I, E[S²] = ΓΛ with "
                  "Γ = (1 + 1/N)Λ + tr(Λ)/N·I.",
        derive=lambda: moment_derivation("sum(i, x[i] @ x[i].T) @ A @ sum(j, x[j] @ x[j].T) / N**2"),
        paper=_paper("Lambda @ A @ Lambda + (Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda) / N"),
        source="Zhang, Frei & Bartlett (2024), proof of Lemma 5.2 (seed 004)",
        assumptions=("x₁, …, x_N i.i.d. N(0, Λ), Λ symmetric positive definite", "N ≥ 1", "A constant"),
    ),
    Result(
        id="gaussian.isserlis_6",
        title="Sixth moment E[x xᵀ A x xᵀ B x xᵀ]",
        statement="For x ~ N(0, Λ): E[x xᵀA x xᵀB x xᵀ] is the sum of the 15 Wick pairings, written in matrix form.",
        derive=lambda: moment_derivation("x @ x.T @ A @ x @ x.T @ B @ x @ x.T"),
        source="Isserlis' theorem (sixth order)",
        assumptions=ASSUMPTIONS,
    ),
]
