"""The optimum of one-layer linear self-attention, derived from the model (Zhang, Frei & Bartlett 2024).

Model and conventions
---------------------
Tokens x₁, …, x_N, x_q ~ N(0, Λ) i.i.d. (``x[i]`` and ``q`` below), task
w ~ N(0, I_d), labels yᵢ = wᵀxᵢ (no noise).  Embedding

    E = [[x₁ … x_N  x_q],
         [y₁ … y_N   0 ]]  ∈ R^{(d+1)×(N+1)},

f_LSA(E) = E + W^PV E (Eᵀ W^KQ E)/N, prediction ŷ = f_LSA(E)_{d+1,N+1},
population loss L = ½ E[(ŷ − wᵀx_q)²].  Blocks: U11 = W^KQ₁₁ (d×d), u21 the
first d entries of W^KQ's last row, u12 the first d entries of W^PV's last
row, u = u_{-1} = W^PV₂₂.

The chain (each step a registered result, each computed by the engine)
---------------------------------------------------------------------
1. ``lsa.prediction``: block algebra on E gives ŷ = (u12ᵀ, u)·Z·(U11 x_q; u21ᵀx_q)
   with Z = EEᵀ/N; it involves no other block of W^PV, W^KQ, and equals
   ½ vec(U)ᵀ (X ⊗ Z) vec(U) = ½ tr(Uᵀ Z U Xᵀ) (Lemma 5.1).
2. ``lsa.population_loss``: L(U11, u12, u21, u) for general d, N, by Wick
   pairing of moments up to sixth order (query column included).
3. ``lsa.invariant_subspace``: ∂L/∂u12 = ∂L/∂u21 = 0 on u12 = u21 = 0.
4. ``lsa.reduced_loss``: there, L = ℓ̃(U11, u) + ½tr(Λ), ℓ̃ = tr[½u²ΓΛU11ΛU11ᵀ − uΛ²U11ᵀ];
   Γ is read off the loss and checked against E[S²]Λ⁻¹ from the moment lemma.
5. ``lsa.minimizer``: stationarity gives U11 = cΓ⁻¹, u = 1/c; the minimum is
   −½tr(Λ²Γ⁻¹); the excess loss is ½‖Γ^{1/2}(uΛ^{1/2}U11Λ^{1/2} − ΛΓ⁻¹)‖²_F.
6. ``lsa.balanced_invariant``: along the gradient flow d/dt(u² − tr(U11U11ᵀ)) = 0
   (the scaling symmetry (U11, u) → (cU11, u/c)); with a balanced start the
   limit is u = ‖Γ⁻¹‖_F^{1/2}, U11 = ‖Γ⁻¹‖_F^{−1/2}Γ⁻¹.

Γ commutes with Λ because it is a polynomial in Λ: the engine's compound
letters (``derive.engine.pipeline.define``) know that functions of Λ commute with Λ.

Run::

    python -m derive.lsa_optimum [--format text|latex|json] [--Lambda '[[2,0.5],[0.5,1]]' --N 4]
"""

from __future__ import annotations

import functools
import json
import sys

import numpy as np
import sympy

from derive.cli import OneLineParser, UsageError, run
from derive.engine import grammar as g
from derive.engine.blocks import block_matmul, block_trace, block_transpose
from derive.engine.calculus import gradient, solve_linear, trace_coefficient
from derive.engine.pipeline import declare, define, expectation
from derive.engine.polynomial import Polynomial
from derive.registry import Derivation, Result, Step, get

SOURCE = "Zhang, Frei & Bartlett, Trained Transformers Learn Linear Models In-Context (JMLR 2024), seed 004"
LATEX_NAMES = {"u": "u_{-1}", "q": "x_{q}", "U11": "U_{11}", "u12": "u_{12}", "u21": "u_{21}"}
# The prompt distribution: x[i], q i.i.d. N(0, Λ); w ~ N(0, I).
DECL = declare(gaussians={"x": "Lambda", "q": "Lambda", "w": "I"}, vectors=["u12", "u21"],
               scalars=["u", "c", "sigma"], latex_names=LATEX_NAMES)
# Block algebra for step 1: Z = EEᵀ/N is symmetric, q is a fixed vector.
BLOCK_DECL = declare(vectors=["u12", "u21", "q", "z12", "wpv12", "wkq12"], scalars=["u", "z22", "wkq22"],
                     matrices={"Z11": "symmetric"}, latex_names=LATEX_NAMES)
ASSUMPTIONS = ("x₁, …, x_N, x_q i.i.d. N(0, Λ), Λ symmetric positive definite", "w ~ N(0, I_d), yᵢ = wᵀxᵢ",
               "N ≥ 1", "ρ = N (the normalization of f_LSA)")

P = g.parse  # short alias: block entries are written in the grammar


W_PV = [[P("WPV11"), P("wpv12")], [P("u12.T"), P("u")]]
W_KQ = [[P("U11"), P("wkq12")], [P("u21.T"), P("wkq22")]]
Z = [[P("Z11"), P("z12")], [P("z12.T"), P("z22")]]  # Z = EEᵀ/N, symmetric
E_LAST_ROW = [[None, P("1")]]  # e_{d+1}ᵀ
E_QUERY_COLUMN = [[P("q")], [None]]  # E e_{N+1} = (x_q; 0)


def z_blocks(query: bool = True) -> dict:
    """Blocks of Z = EEᵀ/N = (Σᵢ eᵢeᵢᵀ + e_q e_qᵀ)/N with eᵢ = (xᵢ; wᵀxᵢ), e_q = (x_q; 0).

    Computed by block outer products of the columns of E; ``query=False`` drops
    the query column (a negative control).
    """
    column = [[P("x[i]")], [P("w.T @ x[i]")]]
    outer = block_matmul(column, block_transpose(column))
    blocks = {"Z11": outer[0][0], "z12": outer[0][1], "z22": outer[1][1]}
    blocks = {k: g.Sum("i", v) / g.Name("N") for k, v in blocks.items()}
    if query:
        q_outer = block_matmul(E_QUERY_COLUMN, block_transpose(E_QUERY_COLUMN))
        blocks["Z11"] = g.Div(g.Add(blocks["Z11"].left, q_outer[0][0]), g.Name("N"))
    return blocks


# ---------------------------------------------------------------- step 1: the prediction

@functools.lru_cache(maxsize=None)
def prediction() -> Polynomial:
    """ŷ = e_{d+1}ᵀ (E + W^PV Z W^KQ E) e_{N+1}; the E part is E_{d+1,N+1} = 0."""
    (entry,), = block_matmul(block_matmul(block_matmul(E_LAST_ROW, W_PV), Z), block_matmul(W_KQ, E_QUERY_COLUMN))
    return Polynomial.of(entry, BLOCK_DECL)


def quadratic_form() -> Polynomial:
    """½ vec(U)ᵀ (X ⊗ Z) vec(U) = ½ tr(Uᵀ Z U Xᵀ), U = [[U11, u12], [u21ᵀ, u]], X = [[0, x_q], [x_qᵀ, 0]]."""
    U = [[P("U11"), P("u12")], [P("u21.T"), P("u")]]
    X = [[None, P("q")], [P("q.T"), None]]
    product = block_matmul(block_matmul(block_matmul(block_transpose(U), Z), U), block_transpose(X))
    return Polynomial.of(block_trace(product) / 2, BLOCK_DECL)


def derive_prediction() -> Derivation:
    yhat = prediction()
    uses = sorted(yhat.symbols() & {"WPV11", "wpv12", "u12", "u", "U11", "wkq12", "u21", "wkq22"})
    form = quadratic_form()
    return Derivation(
        steps=(
            Step(r"\hat y", yhat, text_lhs="yhat", because="block product e_{d+1}^T W^PV Z W^KQ (x_q; 0), Z = EE^T/N; E_{d+1,N+1} = 0"),
            Step(r"\tfrac12 \operatorname{vec}(U)^{\top} (X \otimes Z) \operatorname{vec}(U)", form,
                 text_lhs="u^T H u = tr(U^T Z U X^T)/2", because="vec-Kronecker identity: (X ⊗ Z) vec(U) = vec(Z U X^T)"),
            Step(r"\hat y - u^{\top} H u", yhat - form, text_lhs="yhat - u^T H u", because="difference expanded by the engine"),
        ),
        values={"prediction": yhat, "parameters_used": uses, "quadratic_form": form},
    )


# ---------------------------------------------------------------- step 2: the population loss

def population_loss(query: bool = True) -> Polynomial:
    """L = ½ E[(ŷ − wᵀx_q)²] with Z's blocks replaced by their definitions."""
    loss = g.Div(g.Pow(g.Sub(prediction().expr(), P("w.T @ q")), 2), g.Number(2))
    return expectation(loss, DECL, env=z_blocks(query))


@functools.lru_cache(maxsize=None)
def full_loss() -> Polynomial:
    return population_loss()


def derive_population_loss() -> Derivation:
    loss = full_loss()
    return Derivation(
        steps=(Step(r"L(U_{11}, u_{12}, u_{21}, u_{-1})", loss, text_lhs="L(U11, u12, u21, u)",
                    because="Wick pairing of ½E[(ŷ − wᵀx_q)²]: moments up to sixth order in x_q, fourth in xᵢ and w; "
                    "index coincidences i = j split exactly"),),
        values={"population_loss": loss},
    )


# ---------------------------------------------------------------- step 3: the invariant subspace

ZERO_CROSS = {"u12": "0", "u21": "0"}


def derive_invariant_subspace() -> Derivation:
    loss = full_loss()
    grads = {name: gradient(loss, name) for name in ("u12", "u21")}
    at_zero = {name: grad.substitute(ZERO_CROSS) for name, grad in grads.items()}
    return Derivation(
        steps=tuple(
            Step(rf"\left.\partial L / \partial {LATEX_NAMES[n]}\right|_{{u_{{12}} = u_{{21}} = 0}}", at_zero[n],
                 text_lhs=f"dL/d{n} at u12 = u21 = 0", because="matrix gradient of the loss, then u12 = u21 = 0: every term has an odd power of u12, u21")
            for n in at_zero),
        values={"gradients": grads, "at_zero": at_zero},
    )


# ---------------------------------------------------------------- step 4: the reduced loss and Γ

PATTERN = "Lambda @ U11 @ Lambda @ U11.T"


@functools.lru_cache(maxsize=None)
def reduction() -> dict:
    """Split L on u12 = u21 = 0 as a u² + b u + c₀; read Γ off a = ½ tr(Γ ΛU11ΛU11ᵀ); check it against E[S²]Λ⁻¹."""
    restricted = full_loss().substitute(ZERO_CROSS)
    u = DECL.symbol("u")
    value = sympy.expand(restricted.scalar)
    a, b, c0 = (value.coeff(u, k) for k in (2, 1, 0))
    Gamma = trace_coefficient(_scalar(2 * a), PATTERN)  # read off the loss: this is Γ's definition
    ctx = define(DECL, "Gamma", Gamma)  # from here on Γ is one letter; as a polynomial in Λ it commutes with Λ
    second_moment = get("gaussian.sample_second_moment").derivation.values["expectation"]
    Gamma_moment = Polynomial.of("S2 @ inv(Lambda)", DECL, {"S2": second_moment.substitute({"A": "I"})})
    reduced = Polynomial.of(f"u**2 / 2 * tr(Gamma @ {PATTERN})", ctx) + _scalar(b, ctx) * _scalar(u, ctx)
    residual = reduced.substitute({"Gamma": Gamma}) + _scalar(c0) - restricted
    return {"restricted": restricted, "a": _scalar(a), "b": _scalar(b), "constant": _scalar(c0), "Gamma": Gamma,
            "Gamma_moment": Gamma_moment, "moment_residual": Gamma - Gamma_moment, "reduced": reduced,
            "reduction_residual": residual, "context": ctx}


def context():
    """The chain's context from step 4 on: DECL with Γ defined (as read off the loss)."""
    return reduction()["context"]


def _scalar(value, ctx=None) -> Polynomial:
    return Polynomial((1, 1), {(): sympy.sympify(value)}, ctx or DECL)


def derive_reduced_loss() -> Derivation:
    r = reduction()
    return Derivation(
        steps=(
            Step(r"L|_{u_{12}=u_{21}=0}", r["restricted"], text_lhs="L at u12 = u21 = 0", because="set u12 = u21 = 0 in the population loss"),
            Step(r"[u_{-1}^2]\,L", r["a"], text_lhs="[u^2] L", because="coefficient of u² (a quadratic form in U11)"),
            Step(r"\Gamma \text{ with } [u_{-1}^2]L = \tfrac12\operatorname{tr}(\Gamma \Lambda U_{11} \Lambda U_{11}^{\top})",
                 r["Gamma"], text_lhs="Gamma with [u^2] L = tr(Gamma Lambda U11 Lambda U11^T)/2",
                 because="read off term by term (engine: trace_coefficient)"),
            Step(r"\Gamma - \mathbb{E}[S^2]\Lambda^{-1}", r["moment_residual"], text_lhs="Gamma - E[S^2] inv(Lambda)",
                 because="E[S²] from the lemma E[S A S] at A = I: Γ is the second-moment factor"),
            Step(r"[u_{-1}^0]\,L", r["constant"], text_lhs="[u^0] L", because="the loss of the zero predictor"),
            Step(r"\tilde\ell(U_{11}, u_{-1})", r["reduced"], text_lhs="l~(U11, u)",
                 because="the u² and u terms, written with Γ"),
            Step(r"\tilde\ell + \tfrac12\operatorname{tr}(\Lambda) - L|_{u_{12}=u_{21}=0}", r["reduction_residual"],
                 text_lhs="l~ + tr(Lambda)/2 - L at u12 = u21 = 0", because="Γ written out again; so L = ℓ̃ + ½tr(Λ)"),
        ),
        values={"reduced_loss": r["reduced"], "Gamma": r["Gamma"], "Gamma_from_loss": r["Gamma"],
                "Gamma_moment": r["Gamma_moment"], "moment_residual": r["moment_residual"],
                "reduction_residual": r["reduction_residual"], "constant": r["constant"],
                "restricted_loss": r["restricted"]},
    )


# ---------------------------------------------------------------- step 5: the minimizer family

@functools.lru_cache(maxsize=None)
def optimum() -> dict:
    """Stationary points of ℓ̃ with u ≠ 0, the minimum, and the excess-loss identity."""
    reduced = reduction()["reduced"]
    grad_U, grad_u = gradient(reduced, "U11"), gradient(reduced, "u")
    U_stationary = solve_linear(grad_U, "U11")  # = Γ⁻¹/u
    grad_u_on = grad_u.substitute({"U11": U_stationary})  # vanishes identically: a one-parameter family
    ctx = context()
    family = {"U11": U_stationary.substitute({"u": "1/c"}), "u": _scalar(1 / ctx.symbol("c"), ctx)}
    minimum = reduced.substitute(family)
    excess = Polynomial.of("tr(M @ M.T) / 2", ctx,
                           {"M": "Gamma**(1/2) @ (u * Lambda**(1/2) @ U11 @ Lambda**(1/2) - Lambda @ inv(Gamma))"})
    residual = reduced - minimum - excess
    global_minimizer = solve_linear(Polynomial.of("u * Lambda**(1/2) @ U11 @ Lambda**(1/2) - Lambda @ inv(Gamma)",
                                                  ctx), "U11")
    return {"grad_U": grad_U, "grad_u": grad_u, "U_stationary": U_stationary, "grad_u_on": grad_u_on,
            "family": family, "minimum": minimum, "excess": excess, "residual": residual,
            "global_minimizer": global_minimizer}


def derive_minimizer() -> Derivation:
    o = optimum()
    return Derivation(
        steps=(
            Step(r"\partial\tilde\ell/\partial U_{11}", o["grad_U"], text_lhs="dl~/dU11", because="matrix gradient of ℓ̃"),
            Step(r"U_{11}^{\star}", o["U_stationary"], text_lhs="U11*", because="solve ∂ℓ̃/∂U11 = 0 for u ≠ 0 (Γ, Λ invertible; Γ commutes with Λ)"),
            Step(r"\left.\partial\tilde\ell/\partial u_{-1}\right|_{U_{11}^{\star}}", o["grad_u_on"], text_lhs="dl~/du at U11*",
                 because="vanishes for every u: a one-parameter family, write u = 1/c"),
            Step(r"U_{11}", o["family"]["U11"], "the minimizer family: U11* with u = 1/c, c ≠ 0", text_lhs="U11"),
            Step(r"u_{-1}", o["family"]["u"], "the minimizer family", text_lhs="u"),
            Step(r"\min\tilde\ell", o["minimum"], text_lhs="min l~", because="ℓ̃ on the family; independent of c"),
            Step(r"\tfrac12\|\Gamma^{1/2}(u_{-1}\Lambda^{1/2}U_{11}\Lambda^{1/2} - \Lambda\Gamma^{-1})\|_F^2", o["excess"],
                 text_lhs="|Gamma^(1/2) (u Lambda^(1/2) U11 Lambda^(1/2) - Lambda inv(Gamma))|_F^2 / 2", because="completing the square, expanded by the engine"),
            Step(r"\tilde\ell - \min\tilde\ell - \text{(excess)}", o["residual"], text_lhs="l~ - min l~ - excess", because="so the excess-loss identity holds"),
            Step(r"u_{-1} U_{11} \text{ at a global minimum}", o["global_minimizer"] * _scalar(DECL.symbol("u")),
                 text_lhs="u U11 at a global minimum", because="excess = 0 iff u Λ^{1/2} U11 Λ^{1/2} = ΛΓ⁻¹; solved by the engine"),
        ),
        values={"minimizer": o["family"], "minimum": o["minimum"], "excess_residual": o["residual"],
                "U_stationary": o["U_stationary"], "global_minimizer_product":
                    o["global_minimizer"] * _scalar(DECL.symbol("u"))},
    )


# ---------------------------------------------------------------- step 6: gradient flow and the balanced invariant

INVARIANT = "u**2 - tr(U11 @ U11.T)"


@functools.lru_cache(maxsize=None)
def flow() -> dict:
    reduced = reduction()["reduced"]
    o = optimum()
    dU, du = -o["grad_U"], -o["grad_u"]  # Lemma 5.2: dθ/dt = −∇ℓ̃
    ctx = context()
    invariant = Polynomial.of(INVARIANT, ctx)
    u, U = Polynomial.of("u", ctx), Polynomial.of("U11", ctx)
    d_invariant = u * du * 2 - (U.T @ dU).trace() * 2  # chain rule along the flow
    scaled = reduced.substitute({"U11": "c * U11", "u": "u / c"})
    euler = (U.T @ o["grad_U"]).trace() - u * o["grad_u"]  # d/dc ℓ̃(cU11, u/c) at c = 1
    balanced_start = Polynomial.of(INVARIANT, ctx, {"u": "sigma", "U11": "sigma * Theta @ Theta.T"})
    on_family = invariant.substitute(o["family"])
    c, c_pos = ctx.symbol("c"), sympy.Symbol("c", positive=True)
    atoms = {a: sympy.Symbol(f"t{k}", positive=True) for k, a in enumerate(on_family.scalar.free_symbols - {c})}
    roots = sympy.solve(on_family.scalar.xreplace({c: c_pos, **atoms}), c_pos)
    (root,) = roots  # u > 0 along the flow (Lemma A.4), so c > 0
    c_limit = root.xreplace({v: k for k, v in atoms.items()})
    limit = {"U11": o["family"]["U11"].xreplace({c: c_limit}), "u": o["family"]["u"].xreplace({c: c_limit})}
    return {"dU": dU, "du": du, "invariant": invariant, "d_invariant": d_invariant, "scaling": scaled - reduced,
            "euler": euler, "balanced_start": balanced_start, "on_family": on_family, "c_limit": c_limit,
            "limit": limit}


def derive_balanced_invariant() -> Derivation:
    f = flow()
    return Derivation(
        steps=(
            Step(r"\dot U_{11}", f["dU"], "gradient flow on ℓ̃ (Lemma 5.2)", text_lhs="dU11/dt"),
            Step(r"\dot u_{-1}", f["du"], "gradient flow on ℓ̃ (Lemma 5.2)", text_lhs="du/dt"),
            Step(r"\tfrac{d}{dt}\left(u_{-1}^2 - \operatorname{tr}(U_{11}U_{11}^{\top})\right)", f["d_invariant"],
                 "chain rule along the flow: 2u du/dt − 2tr(U11ᵀ dU11/dt)", text_lhs="d/dt (u² − tr(U11 U11ᵀ))"),
            Step(r"\tilde\ell(cU_{11}, u_{-1}/c) - \tilde\ell(U_{11}, u_{-1})", f["scaling"], text_lhs="l~(c U11, u/c) - l~(U11, u)",
                 because="the scaling symmetry behind the invariant"),
            Step(r"\operatorname{tr}(U_{11}^{\top}\partial_{U_{11}}\tilde\ell) - u_{-1}\partial_{u_{-1}}\tilde\ell",
                 f["euler"], text_lhs="tr(U11^T dl~/dU11) - u dl~/du", because="its infinitesimal form (d/dc at c = 1) is −½ d/dt of the invariant"),
            Step(r"\left(u_{-1}^2 - \operatorname{tr}(U_{11}U_{11}^{\top})\right)(0)", f["balanced_start"], text_lhs="(u^2 - tr(U11 U11^T)) at t = 0",
                 because="balanced start u = σ, U11 = σΘΘᵀ; zero because ‖ΘΘᵀ‖_F = 1 (Assumption 3.10)"),
            Step(r"u_{-1}^2 - \operatorname{tr}(U_{11}U_{11}^{\top}) \text{ on the minimizers}", f["on_family"], text_lhs="u^2 - tr(U11 U11^T) on the minimizers",
                 because="the invariant stays 0, so the limit (a global minimizer, Theorem 4.1) has it 0"),
            Step(r"c_{\infty}", f["c_limit"], text_lhs="c_inf", because="the positive root (u > 0 along the flow, Lemma A.4)"),
            Step(r"\lim U_{11}", f["limit"]["U11"], text_lhs="lim U11", because="U11 = cΓ⁻¹ at c∞"),
            Step(r"\lim u_{-1}", f["limit"]["u"], text_lhs="lim u", because="u = 1/c∞"),
        ),
        values={"balanced_invariant": f["invariant"], "d_invariant": f["d_invariant"], "scaling": f["scaling"],
                "euler": f["euler"], "flow_limit": f["limit"], "flow": {"U11": f["dU"], "u": f["du"]}},
    )


# ---------------------------------------------------------------- the registry

def _paper(text: str):
    """The paper's closed form, for tests only, read in the chain's context (Γ as derived in step 4)."""
    def parsed():
        return Polynomial.of(text, context())
    return parsed


RESULTS = [
    Result(id="lsa.prediction", title="The LSA prediction is a quadratic form in four blocks (Lemma 5.1)",
           statement="ŷ depends on W^PV, W^KQ only through U11, u12, u21, u_{-1}, and ŷ = uᵀHu with "
                     "H = ½ X ⊗ (EEᵀ/N), X = [[0, x_q], [x_qᵀ, 0]].",
           derive=derive_prediction, source=SOURCE, assumptions=ASSUMPTIONS[3:]),
    Result(id="lsa.population_loss", title="Population loss of LSA in general d and N",
           statement="L(U11, u12, u21, u_{-1}) = ½E[(ŷ − wᵀx_q)²] in coordinate-free form (not given in the sources).",
           derive=derive_population_loss, source=SOURCE, assumptions=ASSUMPTIONS),
    Result(id="lsa.invariant_subspace", title="u12 = u21 = 0 is invariant under gradient flow",
           statement="∂L/∂u12 and ∂L/∂u21 vanish on u12 = u21 = 0.",
           derive=derive_invariant_subspace, source=SOURCE, assumptions=ASSUMPTIONS),
    Result(id="lsa.reduced_loss", title="Reduced loss ℓ̃(U11, u_{-1}) and Γ",
           statement="On u12 = u21 = 0, L = ℓ̃ + ½tr(Λ) with ℓ̃ = tr[½u²ΓΛU11ΛU11ᵀ − uΛ²U11ᵀ], "
                     "Γ = (1 + 1/N)Λ + tr(Λ)/N·I = E[S²]Λ⁻¹.",
           derive=derive_reduced_loss, source=SOURCE, assumptions=ASSUMPTIONS,
           paper=lambda: {"reduced_loss": _paper("tr(u**2/2 * Gamma @ Lambda @ U11 @ Lambda @ U11.T "
                                                 "- u * Lambda**2 @ U11.T)")(),
                          "Gamma": _paper("(1 + 1/N) * Lambda + tr(Lambda)/N * I")()}),
    Result(id="lsa.minimizer", title="Minimizers, minimum and excess loss of ℓ̃ (Corollary A.2)",
           statement="The minimizers are U11 = cΓ⁻¹, u_{-1} = 1/c (c ≠ 0); min ℓ̃ = −½tr(Λ²Γ⁻¹); "
                     "ℓ̃ − min = ½‖Γ^{1/2}(uΛ^{1/2}U11Λ^{1/2} − ΛΓ⁻¹)‖²_F, so every global minimizer has u·U11 = Γ⁻¹.",
           derive=derive_minimizer, source=SOURCE, assumptions=ASSUMPTIONS + ("u_{-1} ≠ 0 at a stationary point",),
           paper=lambda: {"U11": _paper("c * inv(Gamma)")(), "minimum": _paper("-tr(Lambda**2 @ inv(Gamma)) / 2")()}),
    Result(id="lsa.balanced_invariant", title="Balanced invariant of gradient flow and the flow's limit (Lemma A.3, Theorem 4.1)",
           statement="Along gradient flow on ℓ̃, u² − tr(U11U11ᵀ) is constant; from a balanced start it is 0, so the "
                     "limit is u = ‖Γ⁻¹‖_F^{1/2}, U11 = ‖Γ⁻¹‖_F^{−1/2}Γ⁻¹.",
           derive=derive_balanced_invariant, source=SOURCE,
           assumptions=ASSUMPTIONS + ("balanced start u(0) = σ, U11(0) = σΘΘᵀ with ‖ΘΘᵀ‖_F = 1",
                                      "convergence to a global minimizer with u > 0 (Theorem 4.1, Lemma A.4)"),
           paper=lambda: {"U11": _paper("tr(inv(Gamma)**2)**(-1/4) * inv(Gamma)")(),
                          "u": _paper("tr(inv(Gamma)**2)**(1/4)")()}),
]


# ---------------------------------------------------------------- command line

def chain_json() -> dict:
    """The chain's results in the input grammar; Γ is written out in terms of Λ, N, d."""
    gamma = reduction()["Gamma"]
    # Γ written out: substituted where it is a factor, and printed in DECL, which has no name for it
    text = lambda p: p.substitute({"Gamma": gamma}).in_context(DECL).text()  # noqa: E731
    o, f = optimum(), flow()
    return {
        "population_loss": text(full_loss()),
        "reduced_loss": text(reduction()["reduced"]),
        "Gamma": text(gamma),
        "minimizer": {"U11": text(o["family"]["U11"]), "u": text(o["family"]["u"])},
        "minimum": text(o["minimum"]),
        "balanced_invariant": text(f["invariant"]),
        "flow_limit": {"U11": text(f["limit"]["U11"]), "u": text(f["limit"]["u"])},
    }


def parse_lambda(text: str) -> np.ndarray:
    """A JSON matrix; must be square, finite, symmetric and positive definite."""
    try:
        value = json.loads(text)
        matrix = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise UsageError(f"--Lambda must be a JSON matrix such as [[2,0.5],[0.5,1]], got {text!r}") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise UsageError(f"--Lambda must be a non-empty square matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise UsageError("--Lambda has NaN or infinite entries")
    if not np.allclose(matrix, matrix.T, rtol=1e-12, atol=1e-12):
        raise UsageError("--Lambda is not symmetric")
    if np.linalg.eigvalsh(matrix).min() <= 0:
        raise UsageError("--Lambda is not positive definite")
    return matrix


def numbers(Lambda: np.ndarray, N: int) -> dict:
    """Γ, the minimizer at c = 1, the minimum and the flow limit at a concrete Λ and N."""
    d = Lambda.shape[0]
    values = {"Lambda": Lambda, "c": 1.0}
    o, f = optimum(), flow()
    ev = lambda p: p.evaluate(values, d, N)  # noqa: E731
    return {"d": d, "N": N, "Gamma": ev(reduction()["Gamma"]).tolist(),
            "minimizer_c1": {"U11": ev(o["family"]["U11"]).tolist(), "u": ev(o["family"]["u"])},
            "minimum": ev(o["minimum"]),
            "flow_limit": {"U11": ev(f["limit"]["U11"]).tolist(), "u": ev(f["limit"]["u"])}}


def main(argv=None) -> int:
    # run as __main__, this file is a second copy of the module: work with the registered one
    from derive import lsa_optimum as lsa
    from derive.registry import all_results
    from derive.report import latex_document, result_text

    chain = [r for r in all_results() if r.module == "derive.lsa_optimum"]

    parser = OneLineParser(prog="python -m derive.lsa_optimum",
                           description="Derive the LSA optimum chain from the model's definition.")
    parser.add_argument("--format", choices=("text", "latex", "json"), default="text")
    parser.add_argument("--Lambda", help="covariance as a JSON matrix, e.g. '[[2,0.5],[0.5,1]]' (needs --N)")
    parser.add_argument("--N", type=int, help="number of in-context examples (N ≥ 1)")
    args = parser.parse_args(argv)
    if (args.Lambda is None) != (args.N is None):
        raise UsageError("--Lambda and --N go together")
    concrete = None
    if args.Lambda is not None:
        if args.N < 1:
            raise UsageError(f"--N must be at least 1, got {args.N}")
        concrete = lsa.numbers(lsa.parse_lambda(args.Lambda), args.N)
    if args.format == "json":
        payload = lsa.chain_json()
        if concrete:
            payload["numbers"] = concrete
        print(json.dumps(payload, indent=2))
    elif args.format == "latex":
        print(latex_document(chain, "The LSA optimum, derived from the model"), end="")
    else:
        print("One-layer linear self-attention: from the model to its optimum (Zhang, Frei & Bartlett)\n")
        for k, result in enumerate(chain, 1):
            print(result_text(result, k), end="\n\n")
        if concrete:
            print(f"At Lambda = {args.Lambda}, N = {args.N}:")
            for key, value in concrete.items():
                print(f"  {key}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
