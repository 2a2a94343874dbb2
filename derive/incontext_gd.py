"""Linear-attention layers as gradient-descent steps on in-context least squares (von Oswald et al., Akyürek et al.).

One prompt is fixed: the context is the n×d matrix ``X`` (row i is x_iᵀ), the
labels the n-vector ``y``, the query the d-vector ``q``.  ``n`` is the context
length N written as a *dimension* (it sizes ``X`` and ``y``; LaTeX prints it
as N): the language's count ``N`` indexes i.i.d. draws inside ``E(...)``,
while here the context is one deterministic matrix.  The in-context loss is

    L(w) = (X w − y)ᵀ(X w − y) / (2n) = (1/2N) Σᵢ (wᵀxᵢ − yᵢ)².

``incontext.one_layer_gd``
    With the embedding E = [[Xᵀ, q], [yᵀ, 0]] and the LSA layer of
    ``lsa.prediction`` (Z = EEᵀ/n), the block algebra gives, on u12 = u21 = 0,
    ŷ = u yᵀ X U11 q / n; at U11 = ηPᵀ, u = 1 this is qᵀw₁ with
    w₁ = 0 − ηP∇L(0), one step of (preconditioned) GD from w₀ = 0.
``incontext.zfb_preconditioned_gd``
    The ZFB global minimum has u U11 = Γ⁻¹ (the value ``global_minimizer_product``
    of ``lsa.minimizer``, imported, not retyped); substituted into the same
    prediction it is qᵀ(0 − Γ⁻¹∇L(0)): one step of GD with preconditioner Γ⁻¹
    and unit step.
``incontext.depth_t_gd``
    A masked layer (keys: the n context tokens only) acting on the label row
    (rᵀ, s) with U11 = ηPᵀ, u = −1 maps (y − Xw, −qᵀw) to (y − Xw₊, −qᵀw₊)
    with w₊ = w − ηP∇L(w): t layers run t steps, the prediction is −s_t = qᵀw_t.
    With S = XᵀX/n and w_LS the least-squares solution (∇L(w) = S(w − w_LS)),
    w_t = (I − (I − ηPS)^t) w_LS, proved for every t by one induction step
    that the engine checks with T = (I − ηPS)^t as a letter, and unrolled for t ≤ 4.

Run: ``python -m derive show incontext.depth_t_gd``; numeric mirror ``numeric/incontext_gd.py``.
"""

from __future__ import annotations

import functools

from derive.engine import grammar as g
from derive.engine.blocks import block_matmul, block_transpose
from derive.engine.calculus import gradient
from derive.engine.pipeline import declare, define
from derive.engine.polynomial import Polynomial
from derive.engine.statements import evaluate
from derive.references import AKYUREK2023, VONOSWALD2023, ZFB2024
from derive.registry import Derivation, Equation, Result, Source, Step, get

P = g.parse
LATEX_NAMES = {"n": "N", "u": "{u_{-1}}", "q": "{x_{q}}", "eta": "\\eta", "wls": "{w_{\\mathrm{LS}}}",
               "WPV11": "{W^{PV}_{11}}", "wpv12": "{w^{PV}_{12}}", "wkq12": "{w^{KQ}_{12}}", "wkq22": "{w^{KQ}_{22}}",
               "yhat": "\\hat{y}", "res": "r", "r_next": "{r_{+}}", "s_next": "{s_{+}}",
               "s_open": "{s^{\\mathrm{open}}_{+}}"}
# One prompt: X (n×d), labels y, query q; weights of one layer in ZFB's blocks.
DECL = declare(dims=["n"], matrices={"X": "n,d"}, vectors={"y": "n", "q": "d", "w": "d", "wls": "d", "res": "n",
                                                            "u12": "d", "u21": "d", "wpv12": "d", "wkq12": "d"},
               scalars=["eta", "u", "s", "wkq22"], spd=["Lambda"], latex_names=LATEX_NAMES)
LOSS = ("L", "(X @ w - y).T @ (X @ w - y) / (2 * n)")
SUBSPACE = "u12=zeros(d, 1), u21=zeros(d, 1)"
# the terms of the general prediction that are not linear in the labels (or do not see them)
NOT_GD = "u * (q.T @ u21) * (y.T @ y) + (q.T @ U11 @ q) * (q.T @ u12) + q.T @ U11.T @ X.T @ X @ u12"
SOURCES = (Source(VONOSWALD2023, "Proposition 1"), Source(AKYUREK2023, "Section 4"))

W_PV = [[P("WPV11"), P("wpv12")], [P("u12.T"), P("u")]]
W_KQ = [[P("U11"), P("wkq12")], [P("u21.T"), P("wkq22")]]
LAST_ROW = [[None, P("1")]]  # e_{d+1}ᵀ


def _divided(blocks: list, by: str) -> list:
    return [[None if b is None else g.Div(b, g.Name(by)) for b in row] for row in blocks]


# ---------------------------------------------------------------- one layer

@functools.lru_cache(maxsize=None)
def one_layer_prediction() -> Polynomial:
    """ŷ = e_{d+1}ᵀ W^PV (EEᵀ/n) W^KQ E e_q with E = [[Xᵀ, q], [yᵀ, 0]] (ZFB's layer, query column in Z).

    >>> print(one_layer_prediction().substitute({"u12": "zeros(d, 1)", "u21": "zeros(d, 1)"}))
    u * (q.T @ U11.T @ X.T @ y)/n
    """
    E = [[P("X.T"), P("q")], [P("y.T"), None]]
    Z = _divided(block_matmul(E, block_transpose(E)), "n")
    query_column = [[P("q")], [None]]
    (entry,), = block_matmul(block_matmul(block_matmul(LAST_ROW, W_PV), Z), block_matmul(W_KQ, query_column))
    return Polynomial.of(entry, DECL)


def derive_one_layer_gd() -> Derivation:
    yhat = one_layer_prediction()
    definitions = {"yhat": yhat, LOSS[0]: LOSS[1]}
    on_subspace = evaluate(f"at(yhat, {SUBSPACE})", DECL, definitions)
    grad0 = evaluate("at(grad(L, w), w=zeros(d, 1))", DECL, definitions)
    layer_gd = evaluate(f"at(yhat, {SUBSPACE}, U11=eta * I, u=1)", DECL, definitions)
    gd = evaluate("q.T @ at(w - eta * grad(L, w), w=zeros(d, 1))", DECL, definitions)
    layer_pgd = evaluate(f"at(yhat, {SUBSPACE}, U11=eta * P.T, u=1)", DECL, definitions)
    pgd = evaluate("q.T @ at(w - eta * P @ grad(L, w), w=zeros(d, 1))", DECL, definitions)
    return Derivation(
        steps=(
            Step("yhat", yhat, "block algebra: the last row of `WPV`, `Z = Emb @ Emb.T/n` with `Emb` the blocks "
                               "(`X.T`, `q`; `y.T`, 0), and the last column of `WKQ @ Emb`; the query's label "
                               "slot is 0"),
            Step(f"at(yhat, {SUBSPACE})", on_subspace, "on the subspace where ZFB's minimizers lie: only `Z`'s "
                                                      "block `y.T @ X/n` survives"),
            Step("grad(L, w)", gradient(Polynomial.of(LOSS[1], DECL), "w"), "the engine's gradient of the "
                                                                             "in-context loss"),
            Step("at(grad(L, w), w=zeros(d, 1))", grad0, "at `w = 0`"),
            Step(f"at(yhat, {SUBSPACE}, U11=eta * I, u=1)", layer_gd, "the layer with `U11 = eta * I`, `u = 1`"),
            Step("q.T @ at(w - eta * grad(L, w), w=zeros(d, 1))", gd, "one GD step from 0, read at the query: "
                                                                      "the same"),
            Step(f"at(yhat, {SUBSPACE}, U11=eta * P.T, u=1)", layer_pgd, "`U11 = eta * P.T`"),
            Step("q.T @ at(w - eta * P @ grad(L, w), w=zeros(d, 1))", pgd, "one step preconditioned by `P`: "
                                                                            "the same"),
        ),
        values={"prediction": yhat, "on_subspace": on_subspace, "gd_prediction": gd, "pgd_prediction": pgd,
                "gradient_at_zero": grad0},
        context=DECL, definitions={"yhat": yhat})


# ---------------------------------------------------------------- the ZFB minimum

@functools.lru_cache(maxsize=None)
def zfb_context():
    """DECL with ``Gamma`` defined as ``lsa.reduced_loss`` reads it off the loss (imported, not retyped)."""
    gamma = get("lsa.reduced_loss").derivation.values["Gamma"]
    return define(DECL, "Gamma", Polynomial.of(gamma.expr(), DECL))


@functools.lru_cache(maxsize=None)
def zfb_step() -> dict:
    """ŷ at u12 = u21 = 0 and u U11 = Γ⁻¹ (``lsa.minimizer``'s ``global_minimizer_product``)."""
    ctx = zfb_context()
    product = get("lsa.minimizer").derivation.values["global_minimizer_product"]  # u * U11 at the global minimum
    product = Polynomial.of(product.expr(), ctx)
    U11 = product / Polynomial.of("u", ctx)
    definitions = {"yhat": one_layer_prediction().in_context(ctx), LOSS[0]: LOSS[1]}
    at_minimum = evaluate(f"at(yhat, {SUBSPACE}, U11=U_min)", ctx, {**definitions, "U_min": U11})
    pgd = evaluate("q.T @ at(w - inv(Gamma) @ grad(L, w), w=zeros(d, 1))", ctx, definitions)
    return {"product": product, "U11": U11, "at_minimum": at_minimum, "pgd": pgd, "context": ctx,
            "residual": at_minimum - pgd}


def derive_zfb_preconditioned_gd() -> Derivation:
    z = zfb_step()
    return Derivation(
        steps=(
            Step("u * U11", z["product"], "every global minimizer of the ZFB loss (result lsa.minimizer, its "
                                          "value global_minimizer_product), with `u12 = u21 = 0`"),
            Step(f"at(yhat, {SUBSPACE}, U11=inv(Gamma)/u)", z["at_minimum"], "the layer's prediction there: "
                                                                              "the scale `u` cancels"),
            Step("q.T @ at(w - inv(Gamma) @ grad(L, w), w=zeros(d, 1))", z["pgd"],
                 "one GD step from 0 with preconditioner `inv(Gamma)` and unit step, read at the query"),
            Step("at(yhat, u12=zeros(d, 1), u21=zeros(d, 1), U11=inv(Gamma)/u) - q.T @ at(w - inv(Gamma) @ "
                 "grad(L, w), w=zeros(d, 1))", z["residual"], "the difference, expanded by the engine"),
        ),
        values={"minimum_prediction": z["at_minimum"], "pgd_prediction": z["pgd"], "residual": z["residual"]},
        context=z["context"], definitions={"yhat": one_layer_prediction().in_context(z["context"])})


# ---------------------------------------------------------------- depth t

@functools.lru_cache(maxsize=None)
def layer_rows(masked: bool = True) -> dict:
    """The label row (rᵀ, s) after one layer: (rᵀ, s) + e_{d+1}ᵀ W^PV E_k E_kᵀ W^KQ E / n.

    The construction's weights: W^PV has the one nonzero entry ``u`` (the label slot), W^KQ the block ``U11``.
    ``masked``: the keys are the n context columns E_k = [[Xᵀ], [rᵀ]] (von Oswald et al.); unmasked, the
    query column is a key too (ZFB's layer).
    """
    E = [[P("X.T"), P("q")], [P("res.T"), P("s")]]
    keys = [[P("X.T")], [P("res.T")]] if masked else E
    W_pv = [[None, None], [None, P("u")]]
    W_kq = [[P("U11"), None], [None, None]]
    update = block_matmul(block_matmul(block_matmul(block_matmul(LAST_ROW, W_pv), keys), block_transpose(keys)),
                          block_matmul(W_kq, E))
    (r_upd, s_upd), = _divided(update, "n")
    return {"r_next": Polynomial.of(g.Add(P("res.T"), r_upd), DECL),
            "s_next": Polynomial.of(g.Add(P("s"), s_upd), DECL)}


TSTEP = DECL  # S = X.T @ X / n and T = (I - eta * P @ S)**t enter as d×d letters
DEPTHS = (1, 2, 3, 4)


def closed_form(t: int) -> Polynomial:
    """w_t = (I − (I − ηPS)^t) w_LS; ``t = 0`` gives 0.

    >>> print(closed_form(1))
    eta * P @ S @ wls
    """
    return Polynomial.of(f"(I - (I - eta * P @ S)**{t}) @ wls" if t else "zeros(d, 1)", TSTEP)


@functools.lru_cache(maxsize=None)
def depth_t() -> dict:
    rows, open_rows = layer_rows(True), layer_rows(False)
    definitions = {LOSS[0]: LOSS[1], **rows}
    state = "res=y - X @ w, s=-q.T @ w, U11=eta * P.T, u=-1"
    r_after = evaluate(f"at(r_next, {state})", DECL, definitions)
    s_after = evaluate(f"at(s_next, {state})", DECL, definitions)
    r_gd = evaluate("(y - X @ (w - eta * P @ grad(L, w))).T", DECL, definitions)
    s_gd = evaluate("-q.T @ (w - eta * P @ grad(L, w))", DECL, definitions)
    open_extra = open_rows["s_next"] - rows["s_next"]
    normal = evaluate("grad(L, w) - X.T @ X @ (w - wls) / n", DECL, definitions)
    step = lambda w: Polynomial.of("w - eta * P @ S @ (w - wls)", TSTEP, {"w": w})  # noqa: E731
    induction = Polynomial.of("w - eta * P @ S @ (w - wls)", TSTEP, {"w": "(I - T) @ wls"})
    unrolled, w = {}, Polynomial.of("zeros(d, 1)", TSTEP)
    for t in range(1, max(DEPTHS) + 1):
        w = step(w)
        unrolled[t] = w - closed_form(t)
    return {"r_after": r_after, "s_after": s_after, "r_gd": r_gd, "s_gd": s_gd, "open_extra": open_extra,
            "normal": normal, "induction": induction, "unrolled": unrolled, "rows": rows}


def derive_depth_t_gd() -> Derivation:
    f = depth_t()
    steps = [
        Step("r_next", f["rows"]["r_next"], "block algebra: the label row of the context after a layer whose keys "
                                            "are the `n` context columns (`X.T`; `res.T`)"),
        Step("s_next", f["rows"]["s_next"], "the query's label slot after the layer"),
        Step("at(r_next, res=y - X @ w, s=-q.T @ w, U11=eta * P.T, u=-1)", f["r_after"],
             "the slots hold the residuals of `w` and `-q.T @ w`; weights `U11 = eta * P.T`, `u = -1`"),
        Step("(y - X @ (w - eta * P @ grad(L, w))).T", f["r_gd"], "the residuals after one preconditioned GD step: "
                                                                  "the same"),
        Step("at(s_next, res=y - X @ w, s=-q.T @ w, U11=eta * P.T, u=-1)", f["s_after"], "the query slot"),
        Step("-q.T @ (w - eta * P @ grad(L, w))", f["s_gd"], "minus the prediction of the stepped `w`: the same, "
                                                            "so by induction `-s` after `t` layers is `q.T @ w_t`"),
        Step("s_open - s_next", f["open_extra"], "without the mask (the query column among the keys, as in ZFB's "
                                                "layer) the query slot gets this extra term, nonzero from the "
                                                "second layer on, where `s != 0`"),
        Step("grad(L, w) - X.T @ X @ (w - wls) / n", f["normal"], "zero by the normal equations `X.T @ X @ wls = "
                                                                  "X.T @ y`: so `grad(L, w) = S @ (w - wls)`, "
                                                                  "`S = X.T @ X/n`"),
        Step("at(w - eta * P @ S @ (w - wls), w=(I - T) @ wls)", f["induction"],
             "the induction step: if the weights after t steps are `(I - T) @ wls` with `T` the t-th power of "
             "`I - eta * P @ S`, one more step gives `(I - (I - eta * P @ S) @ T) @ wls`, the same form with t + 1; "
             "the start `w = 0` is t = 0"),
    ]
    for t, residual in f["unrolled"].items():
        steps.append(Step(f"w_{t} - (I - (I - eta * P @ S)**{t}) @ wls", residual,
                          f"{t} steps from 0 composed by the engine, minus the closed form"))
    return Derivation(steps=tuple(steps),
                      values={"r_after": f["r_after"], "s_after": f["s_after"], "open_extra": f["open_extra"],
                              "induction": f["induction"],
                              "unrolled": {str(t): r for t, r in f["unrolled"].items()},
                              "closed_form": {str(t): closed_form(t) for t in DEPTHS}},
                      context=DECL, definitions={**f["rows"], "s_open": layer_rows(False)["s_next"]})


# ---------------------------------------------------------------- the registry

PROMPT = ("one prompt: the context `X` (`n`×`d`, row `i` is `x[i].T`; `n` is the context length N), the labels "
          "`y` and the query `q`",)
READING_ORDER = 80  # where this module's results stand in the document and the lists (lower first)

RESULTS = [
    Result(id="incontext.one_layer_gd", title="One LSA layer predicts like one step of (preconditioned) GD from 0",
           equations=(Equation(f"at(yhat, {SUBSPACE})", "u * y.T @ X @ U11 @ q / n", value="on_subspace"),
                      Equation("at(grad(L, w), w=zeros(d, 1))", "-X.T @ y / n", value="gradient_at_zero"),
                      Equation(f"at(yhat, {SUBSPACE}, U11=eta * I, u=1)",
                               "q.T @ at(w - eta * grad(L, w), w=zeros(d, 1))"),
                      Equation(f"at(yhat, {SUBSPACE}, U11=eta * P.T, u=1)",
                               "q.T @ at(w - eta * P @ grad(L, w), w=zeros(d, 1))", value="pgd_prediction"),
                      Equation(f"yhat - ({NOT_GD}) / n", "q.T @ (u * U11.T + u21 @ u12.T) @ X.T @ y / n")),
           derive=derive_one_layer_gd, where=(LOSS,), sources=SOURCES + (Source(ZFB2024, "Lemma 5.1"),),
           assumptions=PROMPT + ("the layer is ZFB's: `Emb + WPV @ Emb @ (Emb.T @ WKQ @ Emb)/n`, `Emb` with the "
                                 "columns (`x[i]`, `y[i]`) and (`q`, 0); `yhat` is its entry (`d + 1`, `n + 1`)",),
           remarks=("Only the product `u * U11` matters: a layer with `u * U11 = eta * P.T` is one GD step with "
                    "step `eta` and preconditioner `P`; `P = I` is plain GD.",
                    "Off the subspace the blocks `u12`, `u21` add a rank-one step: the part of `yhat` linear in "
                    "`y` is one step with `eta * P = u * U11.T + u21 @ u12.T`, and the rest (quadratic in `y`, or "
                    "free of it) is not gradient descent; trained layers can use the rank-one route (the numeric "
                    "experiment reads both off).",
                    "The factor `1/n` of the loss is the `1/N` of the layer: a loss without it (a sum) needs "
                    "`U11 = eta * P.T / n`; the numeric mirror rejects the identity with `1/n` dropped.")),
    Result(id="incontext.zfb_preconditioned_gd",
           title="At ZFB's global minimum the LSA prediction is one GD step preconditioned by `inv(Gamma)`",
           equations=(Equation(f"at(yhat, {SUBSPACE}, U11=inv(Gamma)/u)",
                               "q.T @ at(w - inv(Gamma) @ grad(L, w), w=zeros(d, 1))", value="minimum_prediction"),
                      Equation(f"at(yhat, {SUBSPACE}, U11=inv(Gamma)/u)", "y.T @ X @ inv(Gamma) @ q / n")),
           derive=derive_zfb_preconditioned_gd, where=(LOSS,),
           sources=(Source(ZFB2024, "Theorem 4.1"), Source(VONOSWALD2023), Source(AKYUREK2023)),
           assumptions=PROMPT + ("the weights are a global minimizer of ZFB's population loss: `u12 = u21 = 0` "
                                 "and `u * U11 = inv(Gamma)`, `Gamma = (1 + 1/N) * Lambda + tr(Lambda)/N * I` "
                                 "(result lsa.minimizer), trained with `n = N`",),
           remarks=("The step is `w1 = inv(Gamma) @ X.T @ y / n`: preconditioned by `inv(Gamma)`, not by the "
                    "prompt's `inv(X.T @ X / n)`, so one layer does not return the least-squares solution; as "
                    "`N` grows `Gamma` tends to `Lambda` and the step to the population Newton step.",
                    "The MetaRepICL post says one layer implements one step of gradient descent; at the "
                    "trained optimum "
                    "the step is preconditioned (by `inv(Gamma)`, unit step), which is plain GD only when "
                    "`Gamma` is a multiple of `I`, i.e. `Lambda` is.")),
    Result(id="incontext.depth_t_gd", title="t masked layers run t steps of preconditioned GD; closed form",
           equations=(Equation("at(r_next, res=y - X @ w, s=-q.T @ w, U11=eta * P.T, u=-1)",
                               "(y - X @ (w - eta * P @ grad(L, w))).T", value="r_after"),
                      Equation("at(s_next, res=y - X @ w, s=-q.T @ w, U11=eta * P.T, u=-1)",
                               "-q.T @ (w - eta * P @ grad(L, w))", value="s_after"),
                      Equation("s_open - s_next", "u * s * q.T @ U11 @ q / n", value="open_extra"),
                      Equation("grad(L, w) - X.T @ X @ (w - wls) / n", "X.T @ (X @ wls - y) / n"),
                      Equation("at(w - eta * P @ S @ (w - wls), w=(I - T) @ wls)",
                               "(I - (I - eta * P @ S) @ T) @ wls")),
           derive=derive_depth_t_gd, where=(LOSS,), sources=SOURCES + (Source(ZFB2024),),
           assumptions=PROMPT + ("each layer adds `e.T @ WPV @ Emb_k @ Emb_k.T @ WKQ @ Emb / n` to the label row "
                                 "(`e` the last basis vector), `Emb_k` the `n` context columns (the query is not a "
                                 "key); the label slots start at `res = y`, `s = 0` and the prediction is `-s`",
                                 "for the closed form: `S = X.T @ X / n` is invertible (`n >= d`, `X` of rank `d`) "
                                 "and `wls = inv(S) @ X.T @ y / n`"),
           remarks=("Closed form: with `T` the t-th power of `I - eta * P @ S`, the weights after t layers are "
                    "`(I - T) @ wls` and the prediction is `q.T @ wls - q.T @ T @ wls`: it converges to the "
                    "least-squares "
                    "prediction when the spectral radius of `I - eta * P @ S` is below 1. The limit is least "
                    "squares, not kernel ridge regression with `lam > 0` as the MetaRepICL post says: a ridge "
                    "term needs "
                    "`grad(L, w) + lam * w`, i.e. an extra `-eta * lam * P @ w` per layer that the masked layer "
                    "does not provide.",
                    "The masked layer is von Oswald et al.'s; with the query among the keys (ZFB's layer) the "
                    "first layer is the same (`s = 0`) but later ones add `u * s * q.T @ U11 @ q / n` to the "
                    "query slot, so stacked unmasked layers are not GD.",
                    "The depth-t statement is about a construction, not about training: stacks trained on "
                    "in-context regression (python -m numeric.incontext_training) match the one-step prediction at "
                    "depth 1 but for depth 2 to 4 neither their per-layer readouts nor their outputs are t steps "
                    "of preconditioned GD, and at depth 4 they beat the best such t steps; the MetaRepICL "
                    "post's 'a depth-t "
                    "transformer implements t steps of preconditioned GD' is an existence statement.")),
]


if __name__ == "__main__":
    from derive.topic import run_topic

    run_topic(__spec__.name)
