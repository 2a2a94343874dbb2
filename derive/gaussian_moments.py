"""Gaussian moments of matrix expressions: the lemmas every later result stands on.

For x ~ N(0, Λ) and constant A, B, each moment is computed by the Wick engine
from the expression alone and stated as an equation whose right-hand side is
the closed form of the source (Zhang, Frei & Bartlett, Lemma D.2; the Matrix
Cookbook §8.2), which the registry checks against the derivation:

    E[x xᵀ A x xᵀ]        = Λ(A + Aᵀ)Λ + tr(AΛ) Λ
    E[(xᵀAx)(xᵀBx)]        = tr(AΛ(B + Bᵀ)Λ) + tr(AΛ) tr(BΛ)
    E[S A S],  S = (1/N) Σᵢ xᵢxᵢᵀ  = ΛAΛ + (ΛAᵀΛ + tr(AΛ) Λ)/N     (so E[S²] = ΓΛ)
    E[x xᵀ A x xᵀ B x xᵀ]  (15 pairings)

Run: ``python -m derive show gaussian.isserlis_4``; ``python -m derive.expect
EXPR --gaussian x:Lambda`` computes any other moment.
"""

from __future__ import annotations

from derive.engine.pipeline import declare
from derive.engine.statements import evaluate
from derive.references import COOKBOOK2012, ISSERLIS1918, ZFB2024
from derive.registry import Derivation, Equation, Result, Source, Step

CONTEXT = declare(gaussians={"x": "Lambda"})
SAMPLE_MOMENT = (("S", "sum(i, x[i] @ x[i].T) / N"),)
CONSTANTS = ("`A` and `B` are constant matrices, not assumed symmetric",)
WICK = ("Isserlis: the sum over the perfect matchings of the Gaussian factors, each pair contributing `Lambda`; "
        "like terms collected in canonical form")
COINCIDENCES = ("; the sums are split by index coincidence, a partition of the indices into `b` blocks weighing "
                "`N * (N - 1) * (N - 2)`… (`b` factors)")


def moment_derivation(expression: str, where: tuple = ()) -> Derivation:
    """One step: ``E(expression)`` computed by the engine (definitions in ``where`` substituted first)."""
    definitions = dict(where)
    result = evaluate(f"E({expression})", CONTEXT, definitions)
    because = WICK + (COINCIDENCES if where else "")
    return Derivation(steps=(Step(f"E({expression})", result, because),), values={"expectation": result},
                      context=CONTEXT)


READING_ORDER = 10  # where this module's results stand in the document and the lists (lower first)

RESULTS = [
    Result(
        id="gaussian.isserlis_4",
        title="The fourth moment `E(x @ x.T @ A @ x @ x.T)`",
        equations=(Equation("E(x @ x.T @ A @ x @ x.T)", "Lambda @ (A + A.T) @ Lambda + tr(A @ Lambda) * Lambda",
                            value="expectation"),),
        derive=lambda: moment_derivation("x @ x.T @ A @ x @ x.T"),
        sources=(Source(ZFB2024, "Lemma D.2"), Source(COOKBOOK2012, "§8.2.4")),
        assumptions=CONSTANTS,
    ),
    Result(
        id="gaussian.quadratic_forms",
        title="The product of two quadratic forms `E((x.T @ A @ x) * (x.T @ B @ x))`",
        equations=(Equation("E((x.T @ A @ x) * (x.T @ B @ x))",
                            "tr(A @ Lambda @ (B + B.T) @ Lambda) + tr(A @ Lambda) * tr(B @ Lambda)",
                            value="expectation"),),
        derive=lambda: moment_derivation("(x.T @ A @ x) * (x.T @ B @ x)"),
        sources=(Source(COOKBOOK2012, "§8.2.3"),),
        assumptions=CONSTANTS,
    ),
    Result(
        id="gaussian.sample_second_moment",
        title="`E(S @ A @ S)` for the sample second moment `S`",
        equations=(Equation("E(S @ A @ S)", "Lambda @ A @ Lambda + (Lambda @ A.T @ Lambda + tr(A @ Lambda) * Lambda)/N",
                            value="expectation"),
                   Equation("E(S @ S)", "((1 + 1/N) * Lambda + tr(Lambda)/N * I) @ Lambda")),
        derive=lambda: moment_derivation("S @ A @ S", SAMPLE_MOMENT),
        where=SAMPLE_MOMENT,
        sources=(Source(ZFB2024, "proof of Lemma 5.2"),),
        assumptions=("`A` is a constant matrix, not assumed symmetric", "`N >= 1`"),
        remarks=("At `A = I` the factor of `Lambda` on the right of `E(S @ S)` is the matrix `Gamma` of the LSA "
                 "results, which the LSA chain reads off its own loss and checks against this lemma.",),
    ),
    Result(
        id="gaussian.isserlis_6",
        title="The sixth moment `E(x @ x.T @ A @ x @ x.T @ B @ x @ x.T)`",
        equations=(Equation("E(x @ x.T @ A @ x @ x.T @ B @ x @ x.T)", value="expectation"),),
        derive=lambda: moment_derivation("x @ x.T @ A @ x @ x.T @ B @ x @ x.T"),
        sources=(Source(ISSERLIS1918),),
        assumptions=CONSTANTS,
        remarks=("The 15 Wick pairings of the six factors, collected into matrix form; no source states it.",),
    ),
]


if __name__ == "__main__":
    from derive.topic import run_topic

    run_topic(__spec__.name)
