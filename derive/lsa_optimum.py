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
from derive.engine.statements import evaluate
from derive.references import WU2025, ZFB2024
from derive.registry import Derivation, Equation, Result, Source, Step, get

LATEX_NAMES = {"u": "u_{-1}", "q": "x_{q}", "Emb": "E", "WPV": "W^{PV}", "WKQ": "W^{KQ}", "ltilde": "\\tilde{\\ell}", "uHu": "u^{\\top} H u", "c_inf": "c_{\\infty}",
               "WPV11": "W^{PV}_{11}", "wpv12": "w^{PV}_{12}", "wkq12": "w^{KQ}_{12}", "wkq22": "w^{KQ}_{22}",
               "z12": "z_{12}", "z22": "z_{22}", "Z11": "Z_{11}"}
# The prompt distribution: x[i], q i.i.d. N(0, Λ); w ~ N(0, I).
DECL = declare(gaussians={"x": "Lambda", "q": "Lambda", "w": "I"}, vectors=["u12", "u21"],
               scalars=["u", "c", "sigma"], latex_names=LATEX_NAMES)
# Block algebra for step 1: Z = EEᵀ/N is symmetric, q is a fixed vector.
BLOCK_DECL = declare(vectors=["u12", "u21", "q", "z12", "wpv12", "wkq12"], scalars=["u", "z22", "wkq22"],
                     matrices={"Z11": "symmetric"}, latex_names=LATEX_NAMES)
MODEL = ("the tokens `x[i]` (`i <= N`) and the query `q` are i.i.d. draws of `x`, the task is `w`, the labels are "
         "`y[i] = w.T @ x[i]` (no noise)",
         "the model is one linear self-attention layer: the embedding `Emb`, whose columns are (`x[i]`, `y[i]`) and "
         "(`q`, 0), plus `WPV @ Emb @ (Emb.T @ WKQ @ Emb)/N`; the prediction `yhat` is its entry (`d + 1`, `N + 1`)")
BLOCKS = ("`U11` is the upper-left `d`×`d` block of `WKQ`, `u21.T` the rest of its last row, `u12.T` the first `d` "
          "entries of the last row of `WPV` and `u` its last entry",)
SOURCES = (Source(ZFB2024), Source(WU2025))

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
    yhat, form = prediction(), quadratic_form()
    return Derivation(
        steps=(
            Step("yhat", yhat, "the block product of the last row of `WPV`, `Z = Emb @ Emb.T/N` and the last column of "
                               "`WKQ @ Emb`, whose query column is (`q`, `0`); the entry of `Emb` itself is 0"),
            Step("uHu", form, "`tr(U.T @ Z @ U @ X.T)/2` with `U` the blocks (`U11`, `u12`; `u21.T`, `u`) and `X` "
                              "the blocks (0, `q`; `q.T`, 0), which is the vec-Kronecker form of the quadratic "
                              "form in Lemma 5.1"),
            Step("yhat - uHu", yhat - form, "the difference, expanded by the engine"),
        ),
        values={"prediction": yhat, "quadratic_form": form}, context=BLOCK_DECL,
        definitions={"yhat": yhat, "uHu": form})


# ---------------------------------------------------------------- step 2: the population loss

def population_loss(query: bool = True) -> Polynomial:
    """L = ½ E[(ŷ − wᵀx_q)²] with Z's blocks replaced by their definitions."""
    loss = g.Div(g.Pow(g.Sub(prediction().expr(), P("w.T @ q")), 2), g.Number(2))
    return expectation(loss, DECL, env=z_blocks(query))


@functools.lru_cache(maxsize=None)
def full_loss() -> Polynomial:
    return population_loss()


def model_definitions() -> dict:
    """``yhat`` (from the block algebra) and the blocks of ``Z`` as functions of the prompt."""
    return {"yhat": prediction(), **z_blocks()}


def derive_population_loss() -> Derivation:
    loss = full_loss()
    return Derivation(
        steps=(Step("L", loss, "Wick pairing of `E((yhat - w.T @ q)**2)/2` with the blocks of `Z` written out: "
                               "moments up to the sixth order in `q`, the fourth in `x[i]` and `w`; index "
                               "coincidences `i = j` are split exactly"),),
        values={"population_loss": loss}, context=DECL, definitions=model_definitions())


# ---------------------------------------------------------------- step 3: the invariant subspace

ZERO_CROSS = {"u12": "zeros(d, 1)", "u21": "zeros(d, 1)"}
AT_ZERO = "u12=zeros(d, 1), u21=zeros(d, 1)"


def derive_invariant_subspace() -> Derivation:
    loss = full_loss()
    grads = {name: gradient(loss, name) for name in ("u12", "u21")}
    at_zero = {name: grad.substitute(ZERO_CROSS) for name, grad in grads.items()}
    return Derivation(
        steps=tuple(Step(f"at(grad(L, {n}), {AT_ZERO})", at_zero[n],
                         f"the engine's gradient of `L` with respect to `{n}`, then `u12` and `u21` set to 0: every "
                         "term of the gradient holds `u12` or `u21`") for n in at_zero),
        values={"gradients": grads, "at_zero": at_zero}, context=DECL, definitions={"L": loss})


# ---------------------------------------------------------------- step 4: the reduced loss and Γ

PATTERN = "Lambda @ U11 @ Lambda @ U11.T"
LTILDE = "u**2/2 * tr(Gamma @ Lambda @ U11 @ Lambda @ U11.T) - u * tr(Lambda**2 @ U11.T)"
SAMPLE_MOMENT = ("S", "sum(i, x[i] @ x[i].T) / N")


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
            Step(f"at(L, {AT_ZERO})", r["restricted"], "`u12` and `u21` set to 0 in the population loss"),
            Step("a", r["a"], "the coefficient of `u**2` in `at(L, u12=zeros(d, 1), u21=zeros(d, 1))`: a quadratic "
                              "form in `U11`"),
            Step("Gamma", r["Gamma"], "the matrix with `a = tr(Gamma @ Lambda @ U11 @ Lambda @ U11.T)/2`, read off "
                                      "term by term (engine: trace_coefficient)"),
            Step("Gamma - E(S @ S) @ inv(Lambda)", r["moment_residual"],
                 "`E(S @ S)` from the lemma `E(S @ A @ S)` at `A = I`: `Gamma` is the second-moment factor"),
            Step("c0", r["constant"], "the coefficient of `u**0`: the loss of the zero predictor"),
            Step("ltilde", r["reduced"], "the terms in `u**2` and `u`, written with `Gamma`"),
            Step(f"ltilde + tr(Lambda)/2 - at(L, {AT_ZERO})", r["reduction_residual"],
                 "`Gamma` written out again: so the loss there is `ltilde + tr(Lambda)/2`"),
        ),
        values={"reduced_loss": r["reduced"], "Gamma": r["Gamma"], "Gamma_moment": r["Gamma_moment"],
                "moment_residual": r["moment_residual"], "reduction_residual": r["reduction_residual"],
                "constant": r["constant"], "restricted_loss": r["restricted"]},
        context=r["context"], definitions={"L": full_loss()})


# ---------------------------------------------------------------- step 5: the minimizer family

FAMILY = "U11=c * inv(Gamma), u=1/c"
EXCESS_ZERO = "u * Lambda**(1/2) @ U11 @ Lambda**(1/2) - Lambda @ inv(Gamma)"  # M = Γ^{1/2} times this
EXCESS = ("M", f"Gamma**(1/2) @ ({EXCESS_ZERO})")


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
    excess = Polynomial.of("tr(M @ M.T) / 2", ctx, {EXCESS[0]: EXCESS[1]})
    residual = reduced - minimum - excess
    global_minimizer = solve_linear(Polynomial.of(EXCESS_ZERO, ctx), "U11")
    return {"grad_U": grad_U, "grad_u": grad_u, "U_stationary": U_stationary, "grad_u_on": grad_u_on,
            "family": family, "minimum": minimum, "excess": excess, "residual": residual,
            "global_minimizer": global_minimizer}


def derive_minimizer() -> Derivation:
    o = optimum()
    u = _scalar(DECL.symbol("u"))
    return Derivation(
        steps=(
            Step("grad(ltilde, U11)", o["grad_U"], "the engine's matrix gradient of `ltilde`"),
            Step("U11_star", o["U_stationary"], "`grad(ltilde, U11) = 0` solved for `U11` when `u != 0` (`Gamma` "
                                               "and `Lambda` are invertible and commute)"),
            Step("at(grad(ltilde, u), U11=U11_star)", o["grad_u_on"], "zero for every `u`: a one-parameter family "
                                                                      "of stationary points, `u = 1/c`"),
            Step("U11", o["family"]["U11"], "the family: `U11_star` at `u = 1/c`, `c != 0`"),
            Step("u", o["family"]["u"], "the family"),
            Step(f"at(ltilde, {FAMILY})", o["minimum"], "`ltilde` on the family: the same for every `c`"),
            Step("tr(M @ M.T)/2", o["excess"], "the square completed, expanded by the engine"),
            Step("ltilde - at(ltilde, U11=c * inv(Gamma), u=1/c) - tr(M @ M.T)/2", o["residual"],
                 "so the excess-loss identity holds"),
            Step("u * U11", o["global_minimizer"] * u, "`M = 0` exactly when `u * Lambda**(1/2) @ U11 @ "
                                                       "Lambda**(1/2) = Lambda @ inv(Gamma)`, solved by the engine"),
        ),
        values={"minimizer": o["family"], "minimum": o["minimum"], "excess_residual": o["residual"],
                "U_stationary": o["U_stationary"], "global_minimizer_product": o["global_minimizer"] * u},
        context=context(), definitions={"U11_star": o["U_stationary"]})


# ---------------------------------------------------------------- step 6: gradient flow and the balanced invariant

INVARIANT = "u**2 - tr(U11 @ U11.T)"
C_LIMIT = ("c_inf", "tr(inv(Gamma)**2)**(-1/4)")


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
    c_limit = _scalar(root.xreplace({v: k for k, v in atoms.items()}), ctx)
    limit = {"U11": o["family"]["U11"].substitute({"c": c_limit}), "u": o["family"]["u"].substitute({"c": c_limit})}
    return {"dU": dU, "du": du, "invariant": invariant, "d_invariant": d_invariant, "scaling": scaled - reduced,
            "euler": euler, "balanced_start": balanced_start, "on_family": on_family, "c_limit": c_limit,
            "limit": limit}


def derive_balanced_invariant() -> Derivation:
    f = flow()
    return Derivation(
        steps=(
            Step("-grad(ltilde, U11)", f["dU"], "the gradient flow: the time derivative of `U11` is `-grad(ltilde, U11)` (Lemma 5.2)"),
            Step("-grad(ltilde, u)", f["du"], "and that of `u` is `-grad(ltilde, u)`"),
            Step("-2 * u * grad(ltilde, u) + 2 * tr(U11.T @ grad(ltilde, U11))", f["d_invariant"],
                 "the chain rule: the time derivative of `u**2 - tr(U11 @ U11.T)` along the flow"),
            Step("at(ltilde, U11=c * U11, u=u/c) - ltilde", f["scaling"], "the scaling symmetry behind the invariant"),
            Step("tr(U11.T @ grad(ltilde, U11)) - u * grad(ltilde, u)", f["euler"],
                 "its infinitesimal form (the derivative in `c` at `c = 1`) is half the rate of the invariant"),
            Step(f"at({INVARIANT}, u=sigma, U11=sigma * Theta @ Theta.T)", f["balanced_start"],
                 "the balanced start; zero because `tr(Theta @ Theta.T @ Theta @ Theta.T) = 1`"),
            Step(f"at({INVARIANT}, {FAMILY})", f["on_family"],
                 "the invariant stays 0, so the limit of the flow, a global minimizer (Theorem 4.1), has it 0"),
            Step("c_inf", f["c_limit"], "the positive root (`u > 0` along the flow, Lemma A.4)"),
            Step("U11_inf", f["limit"]["U11"], "the limit of `U11`: `c * inv(Gamma)` at `c = c_inf`"),
            Step("u_inf", f["limit"]["u"], "the limit of `u`: `1/c` at `c = c_inf`"),
        ),
        values={"balanced_invariant": f["invariant"], "d_invariant": f["d_invariant"], "scaling": f["scaling"],
                "euler": f["euler"], "flow_limit": f["limit"], "flow": {"U11": f["dU"], "u": f["du"]},
                "c_limit": f["c_limit"]},
        context=context())


# ---------------------------------------------------------------- the registry

ASSUMPTIONS = MODEL + ("`N >= 1`",)
READING_ORDER = 20  # where this module's results stand in the document and the lists (lower first)

RESULTS = [
    Result(id="lsa.prediction", title="The LSA prediction is a quadratic form in four blocks",
           equations=(Equation("yhat", "uHu", value="prediction"),
                      Equation("grad(yhat, WPV11)", "zeros(d, d)"), Equation("grad(yhat, wpv12)", "zeros(d, 1)"),
                      Equation("grad(yhat, wkq12)", "zeros(d, 1)"), Equation("grad(yhat, wkq22)", "0")),
           derive=derive_prediction, sources=(Source(ZFB2024, "Lemma 5.1"), Source(WU2025)),
           assumptions=MODEL[1:] + BLOCKS,
           remarks=("`uHu` is the quadratic form `tr(U.T @ Z @ U @ X.T)/2` of Lemma 5.1 in the blocks `U` = (`U11`, "
                    "`u12`; `u21.T`, `u`), `Z = Emb @ Emb.T/N` and `X` = (0, `q`; `q.T`, 0); the derivation writes "
                    "both sides out.",
                    "`yhat` does not depend on `WPV11`, `wpv12`, `wkq12` or `wkq22`: only the four blocks `U11`, "
                    "`u12`, `u21`, `u` enter the prediction.")),
    Result(id="lsa.population_loss", title="The population loss of LSA in general dimension and context length",
           equations=(Equation("E((yhat - w.T @ q)**2)/2", value="population_loss"),),
           derive=derive_population_loss, sources=SOURCES, assumptions=ASSUMPTIONS + BLOCKS,
           remarks=("No source states the loss off the subspace `u12 = 0`, `u21 = 0`; this is the derived form.",)),
    Result(id="lsa.invariant_subspace", title="The subspace `u12 = 0`, `u21 = 0` is invariant under gradient flow",
           equations=(Equation(f"at(grad(L, u12), {AT_ZERO})", "zeros(d, 1)"),
                      Equation(f"at(grad(L, u21), {AT_ZERO})", "zeros(d, 1)")),
           derive=derive_invariant_subspace, sources=(Source(ZFB2024, "Lemma 5.2"),), assumptions=ASSUMPTIONS),
    Result(id="lsa.reduced_loss", title="The reduced loss `ltilde` and the matrix `Gamma`",
           equations=(Equation(f"at(L, {AT_ZERO})", "ltilde + tr(Lambda)/2", value="restricted_loss"),
                      Equation("Gamma", "(1 + 1/N) * Lambda + tr(Lambda)/N * I", value="Gamma"),
                      Equation("Gamma @ Lambda", "E(S @ S)")),
           derive=derive_reduced_loss, where=(("ltilde", LTILDE), SAMPLE_MOMENT),
           sources=(Source(ZFB2024, "Lemma 5.2"), Source(WU2025)), assumptions=ASSUMPTIONS,
           remarks=("`Gamma` is not typed in: the derivation reads it off the loss and checks it against the "
                    "moment lemma.",)),
    Result(id="lsa.minimizer", title="The minimizers, the minimum and the excess loss of the reduced loss",
           equations=(Equation(f"at(grad(ltilde, U11), {FAMILY})", "zeros(d, d)"),
                      Equation(f"at(grad(ltilde, u), {FAMILY})", "0"),
                      Equation(f"at(ltilde, {FAMILY})", "-tr(Lambda**2 @ inv(Gamma))/2", value="minimum"),
                      Equation("ltilde + tr(Lambda**2 @ inv(Gamma))/2", "tr(M @ M.T)/2"),
                      Equation("at(M, U11=inv(Gamma)/u)", "zeros(d, d)")),
           derive=derive_minimizer, where=(("ltilde", LTILDE), EXCESS),
           sources=(Source(ZFB2024, "Corollary A.2"),), assumptions=ASSUMPTIONS + ("`c != 0`",),
           remarks=("The excess `tr(M @ M.T)/2` vanishes exactly when `u * U11 = inv(Gamma)`: every global "
                    "minimizer has `u * U11 = inv(Gamma)`.",)),
    Result(id="lsa.balanced_invariant", title="The balanced invariant of gradient flow and the limit of the flow",
           equations=(Equation("-2 * u * grad(ltilde, u) + 2 * tr(U11.T @ grad(ltilde, U11))", "0"),
                      Equation(f"at({INVARIANT}, u=sigma, U11=sigma * Theta @ Theta.T)",
                               "sigma**2 - sigma**2 * tr(Theta @ Theta.T @ Theta @ Theta.T)"),
                      Equation(f"at({INVARIANT}, U11=c_inf * inv(Gamma), u=1/c_inf)", "0")),
           derive=derive_balanced_invariant, where=(("ltilde", LTILDE), C_LIMIT),
           sources=(Source(ZFB2024, "Lemma A.3 and Theorem 4.1"), Source(WU2025)),
           assumptions=ASSUMPTIONS + ("the flow starts balanced: `u = sigma`, `U11 = sigma * Theta @ Theta.T` with "
                                      "`tr(Theta @ Theta.T @ Theta @ Theta.T) = 1`",
                                      "the flow converges to a global minimizer with `u > 0` (Theorem 4.1, "
                                      "Lemma A.4)"),
           remarks=("So the limit is `U11 = c_inf * inv(Gamma)`, `u = 1/c_inf`: "
                    "`u = tr(inv(Gamma)**2)**(1/4)`.",)),
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
