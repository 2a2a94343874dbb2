"""In-context learning by linear attention: finite-d errors and their d → ∞ limit (Lu et al., PNAS 2025).

Conventions (the paper's)
-------------------------
Tokens x₁, …, x_ℓ, and the query x_{ℓ+1} (``x[i]``, ``q``) i.i.d. N(0, I_d/d);
task w ~ N(0, I_d); label noise εᵢ, ε_{ℓ+1} ~ N(0, ρ) (``eps[i]``, ``eps``);
yᵢ = ⟨xᵢ, w⟩ + εᵢ.  Features

    H_Z = x_{ℓ+1} [ (d/ℓ) Σ_{i≤ℓ} yᵢ xᵢᵀ ,  (1/ℓ) Σ_{i≤ℓ} yᵢ² ]  ∈ R^{d×(d+1)},

prediction ŷ = ⟨Γ, H_Z⟩ = x_{ℓ+1}ᵀ G h + (x_{ℓ+1}ᵀ g) s with Γ = [G | g],
h = (d/ℓ) Σ yᵢxᵢ, s = (1/ℓ) Σ yᵢ².  Pretraining: k tasks w₁..w_k drawn once; n
sequences, each with a task drawn uniformly from that pool;
Γ* = argmin Σ_μ (y^μ − ⟨Γ, H^μ⟩)² + (n/d) λ ‖Γ‖²_F (λ = 0: minimum norm).
Scalings α = ℓ/d, κ = k/d, τ = n/d².  Errors include the query's label noise:
e_ICL(Γ) = E[(y_{ℓ+1} − ŷ)²] over a fresh task, e(Γ; w) the same at a fixed task,
e_IDG = the average of e(Γ; w) over the pool, g_task = e_ICL − e_IDG.

Results
-------
1. ``lu.finite_d_error``: e_ICL(Γ) and e(Γ; w) at finite d, ℓ, ρ, computed by the
   engine's Wick pairing from the definition of ŷ (scalar noise family ``eps``).
2. ``lu.asymptotic_error``: e_ICL, e_IDG, g_task as d → ∞ at fixed α, κ, τ, ρ, λ
   (see :func:`asymptotic` for which steps are derived and which are cited).
3. ``lu.double_descent``: the interpolation peak τ = 1 of the ridgeless curves.

Run: ``python -m derive show lu.finite_d_error``; ``python -m numeric.lu_asymptotics``.
"""

from __future__ import annotations

import functools

from derive.engine.pipeline import declare
from derive.engine.statements import evaluate
from derive.references import KEMPNER2025, LU2025
from derive.registry import Derivation, Equation, Result, Source, Step

LATEX_NAMES = {"q": "x_{\\ell+1}", "ell": "\\ell", "eps": "\\varepsilon", "yhat": "\\hat{y}", "yq": "y_{\\ell+1}",
               "e_task": "e(\\Gamma; w)", "yhat_seed": "\\hat{y}_{\\mathrm{seed}}"}
# The prompt distribution with a fresh task (e_ICL) and with a fixed task `w` (e(Γ; w)).
FRESH = declare(gaussians={"x": "I/d", "q": "I/d", "w": "I", "eps": "rho"}, vectors=["g"],
                scalars={"rho": "positive"}, counts=["ell"], latex_names=LATEX_NAMES)
FIXED = declare(gaussians={"x": "I/d", "q": "I/d", "eps": "rho"}, vectors=["g", "w"],
                scalars={"rho": "positive"}, counts=["ell"], latex_names=LATEX_NAMES)
LABEL = "x[i].T @ w + eps[i]"
# ŷ = ⟨Γ, H_Z⟩ with H_Z = q [(d/ℓ) Σ yᵢ xᵢᵀ, (1/ℓ) Σ yᵢ²] and Γ = [G | g], written out.
PREDICTION = ("yhat", f"d/ell * q.T @ G @ sum(i, x[i] * ({LABEL}), ell) + (q.T @ g) * sum(i, ({LABEL})**2, ell)/ell")
# The seeds' H_Z drops the factor d/ℓ (a wrong variant, kept to be rejected numerically).
PREDICTION_SEED = ("yhat_seed", f"1/ell * q.T @ G @ sum(i, x[i] * ({LABEL}), ell) + "
                                f"(q.T @ g) * sum(i, ({LABEL})**2, ell)/ell")
QUERY_LABEL = ("yq", "q.T @ w + eps")
ERROR = "E((yq - yhat)**2)"
MODEL = ("tokens `x[i]` (`i <= ell`) and the query `q` are i.i.d. N(0, `I/d`); the task `w` is N(0, `I`) "
         "(`e_icl`) or a fixed vector (`e_task`); label noise `eps[i]`, `eps` is N(0, `rho`); the labels are "
         "`x[i].T @ w + eps[i]` and `yq = q.T @ w + eps`",
         "`Gamma` = [`G` | `g`] with `G` a constant `d`×`d` matrix and `g` a constant vector; `yhat` = <`Gamma`, "
         "`H_Z`>, `H_Z` = `q` [`d/ell * sum(i, y[i] * x[i].T, ell)`, `sum(i, y[i]**2, ell)/ell`]")
WICK = ("Isserlis: Wick pairing of `x`, `q`, `w` and the scalar family `eps`; the sums over the `ell` context "
        "tokens split by index coincidence")


@functools.lru_cache(maxsize=None)
def finite_d() -> dict:
    """e_ICL(Γ), e(Γ; w), the check that averaging e(Γ; w) over w gives e_ICL, and the seed's variant.

    >>> print(finite_d()["e_icl"].collect("rho"))  # doctest: +NORMALIZE_WHITESPACE
    rho**2 * (1/d + 2/(d * ell)) * (g.T @ g) + rho * ((2/d + 4/(d * ell)) * (g.T @ g) + tr(G @ G.T)/ell + 1) + (d + 2) * (ell + 2)/(d**2 * ell) * (g.T @ g) + (d + ell + 1)/(d * ell) * tr(G @ G.T) - 2/d * tr(G.T) + 1
    """
    definitions = dict((PREDICTION, PREDICTION_SEED, QUERY_LABEL))
    e_icl = evaluate(ERROR, FRESH, definitions)
    e_task = evaluate(ERROR, FIXED, definitions)
    # Averaging the fixed-task error over w ~ N(0, I): e_task read back as an expression in the fresh context.
    averaged = evaluate(f"E({e_task.text()})", FRESH)
    seed = evaluate("E((yq - yhat_seed)**2)", FRESH, definitions)
    return {"e_icl": e_icl, "e_task": e_task, "averaged": averaged, "average_gap": averaged - e_icl,
            "seed_e_icl": seed}


def derive_finite_d_error() -> Derivation:
    f = finite_d()
    return Derivation(
        steps=(
            Step(ERROR, f["e_icl"], WICK + "; the task `w` is averaged too: e_ICL"),
            Step("e_task", f["e_task"], WICK + "; `w` held fixed: the error on one task, e(Gamma; w)"),
            Step("E(e_task) - e_icl", f["average_gap"], "averaging e(Gamma; w) over `w` ~ N(0, `I`) gives "
                                                          "e_ICL back (the engine, on the printed e_task)"),
            Step("E((yq - yhat_seed)**2)", f["seed_e_icl"], "the seeds' features without the factor `d/ell` "
                                                            "(a wrong variant; the Monte Carlo check rejects it)"),
        ),
        values={"e_icl": f["e_icl"], "e_task": f["e_task"]}, context=FRESH)


RESULTS = [
    Result(id="lu.finite_d_error", title="The ICL error of a linear-attention readout `Gamma` at finite `d`",
           equations=(Equation(ERROR, value="e_icl"),),
           derive=derive_finite_d_error, where=(PREDICTION, QUERY_LABEL),
           sources=(Source(LU2025, "Eqs. (3)-(8), the reduced model ŷ = <Γ, H_Z>"), Source(KEMPNER2025)),
           assumptions=MODEL,
           remarks=("The error includes the query's label noise `rho`. The `g` column only enters through "
                    "`g.T @ g` and, at a fixed task, `g.T @ w`, `g.T @ G @ w`: at a fresh task `G` and `g` do not "
                    "interact (odd moments of `w`).",
                    "The seeds write `H_Z` without the factor `d/ell`; with it the context term `h` = "
                    "`d/ell * sum(i, y[i] * x[i], ell)` has mean `w`, so `G = I` makes `yhat` unbiased. Without "
                    "it the same `G` predicts `(1/d) * q.T @ w`; the Monte Carlo check of numeric.lu_asymptotics "
                    "rejects the seed's version.")),
]
