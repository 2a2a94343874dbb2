"""The trained LSA on test prompts: the error at test length M (Theorem 4.2) and covariate shift.

Model (the conventions of ``derive/lsa_optimum.py``)
---------------------------------------------------
The LSA is trained on prompts of length N with tokens N(0, Λ): any global
minimizer of the population loss has ``u12 = u21 = 0`` and ``u * U11 =
inv(Gamma)`` (`lsa.minimizer`), i.e. ``U11 = c * inv(Gamma)``, ``u = 1/c``.
At test time it reads a prompt of length M (the normalization of
f_LSA is 1/M, ρ = M): context tokens ``x[i]`` ~ N(0, S), the query ``q`` ~
N(0, Sq), the task ``w`` ~ N(0, Psi), labels ``y[i] = w.T @ x[i] + eps[i]``
and target ``y_q = w.T @ q + eps`` with label noise ``eps`` ~ N(0, σ²).

The prediction is the block formula of `lsa.prediction` (Lemma 5.1) with
the blocks of Z = EEᵀ/M written out for the test prompt and the minimizer
substituted — the forward pass, not a typed formula.  Everything else is
the engine: Wick pairing over the M context tokens (coincidences split
exactly), the query, the task and the noise.

Results
-------
* `lsa.test_error`: E(ŷ − y_q)² for general d, N, M, S, Sq, Psi, σ; the
  special cases S = Sq = Λ, Psi = I, σ = 0; M = N (twice the minimum of the
  population loss); M → ∞; N, M → ∞.  Theorem 4.2 in the slides' generality
  (any D with x-marginal N(0, Λ), a = Λ⁻¹E[xy], Σ = Cov(xy), ε*) is derived
  in the steps as general second-moment algebra.
* `lsa.covariate_shift`: the conditional mean E[ŷ | q, w] = qᵀΓ⁻¹Sw for every
  M; the N, M → ∞ limit of the error under query, task and context shifts;
  test covariates scaled by c (covariance c²Λ).

Run::

    python -m derive show lsa.test_error
    python -m derive eval lsa.covariate_shift --at '{"Lambda": [[1, 0], [0, 2]], "c": 2}'
"""

from __future__ import annotations

import functools

import sympy

from derive.engine import grammar as g
from derive.engine.pipeline import declare, define, expectation
from derive.engine.polynomial import Polynomial
from derive.engine.statements import resolve
from derive.references import GARG2022, WU2025, ZFB2024
from derive.registry import Derivation, Equation, Result, Source, Step

LATEX_NAMES = {"q": "x_{q}", "Sq": "S_{q}", "Psi": "\\Psi", "epsstar": "\\varepsilon^{*}", "mh": "\\hat{m}",
               "err": "\\mathcal{E}", "err_inf": "\\mathcal{E}_{\\infty}", "K_inf": "K_{\\infty}",
               "yhat": "\\hat{y}", "r": "r_{q}"}
P = g.parse

# the test prompt: M context tokens x[i] ~ N(0, S), query q ~ N(0, Sq), task w ~ N(0, Psi), noise eps ~ N(0, σ²)
TEST = declare(gaussians={"x": "S", "q": "Sq", "w": "Psi", "eps": "sigma**2"}, matrices={"Lambda": "spd"},
               scalars=["sigma", "c"], counts=["M"], latex_names=LATEX_NAMES)
# the conditional mean: q and w fixed vectors, only the context (and its noise) random
CONDITIONAL = declare(gaussians={"x": "S", "eps": "sigma**2"}, vectors=["q", "w"], matrices={"Lambda": "spd"},
                      scalars=["sigma", "c"], counts=["M"], latex_names=LATEX_NAMES)
# Theorem 4.2 in general: stand-ins with the right first and second moments (see general_theorem)
GENERAL = declare(gaussians={"q": "Lambda", "r": "epsstar", "mh": ("Sigma/M", "Lambda @ a")}, vectors=["a"],
                  matrices={"Sigma": "spd"}, scalars=["epsstar"], counts=["M"], latex_names=LATEX_NAMES)
# the linear task given w: Σ = Cov(x y | w) with x ~ N(0, Λ)
LINEAR = declare(gaussians={"x": "Lambda", "eps": "sigma**2"}, vectors=["w"], scalars=["sigma"],
                 latex_names=LATEX_NAMES)


def test_blocks(noise: bool = True) -> dict:
    """The blocks of Z = EEᵀ/M for a test prompt of length M (columns (x[i], y[i]) and (q, 0))."""
    label = "(w.T @ x[i] + eps[i])" if noise else "(w.T @ x[i])"
    return {"Z11": P("(sum(i, x[i] @ x[i].T, M) + q @ q.T) / M"), "z12": P(f"sum(i, x[i] * {label}, M) / M"),
            "z22": P(f"sum(i, {label}**2, M) / M")}


MINIMIZER = {"U11": P("c * inv(Gamma)"), "u": P("1/c"), "u12": P("zeros(d, 1)"), "u21": P("zeros(d, 1)")}


def test_prediction(noise: bool = True, minimizer: dict | None = None) -> g.Expr:
    """ŷ of `lsa.prediction` with the test prompt's Z and a global minimizer (``U11 = c Γ⁻¹``, ``u = 1/c``)."""
    from derive.lsa_optimum import prediction

    return resolve(prediction().expr(), {**test_blocks(noise), **(minimizer or MINIMIZER)})


def with_gamma(context):
    """``context`` with Γ defined as it was read off the training loss (`lsa.reduced_loss`)."""
    from derive.lsa_optimum import reduction

    return define(context, "Gamma", reduction()["Gamma"].in_context(context))


def gamma_written(context) -> Polynomial:
    from derive.lsa_optimum import reduction

    return reduction()["Gamma"].in_context(context)


def _scalar(value, context) -> Polynomial:
    return Polynomial((1, 1), {(): sympy.sympify(value)}, context)


def limit_in(poly: Polynomial, name: str) -> Polynomial:
    """The limit of every coefficient as the count ``name`` → ∞ (coefficients are rational in it)."""
    symbol = poly.context.symbol(name)
    return Polynomial(poly.shape, {k: sympy.expand(sympy.limit(v, symbol, sympy.oo)) for k, v in poly.terms.items()},
                      poly.context)


def set_count(poly: Polynomial, name: str, value: str) -> Polynomial:
    """The coefficients with the count ``name`` replaced by the count ``value`` (M = N)."""
    ctx = poly.context
    return Polynomial(poly.shape, {k: sympy.expand(v.subs(ctx.symbol(name), ctx.symbol(value)))
                                   for k, v in poly.terms.items()}, ctx)


# ---------------------------------------------------------------- lsa.test_error

TEST_ERROR = ("sigma**2 + tr(Psi @ Sq) - 2 * tr(Psi @ S @ inv(Gamma) @ Sq) "
              "+ (1 + 1/M) * tr(Psi @ S @ inv(Gamma) @ Sq @ inv(Gamma) @ S) "
              "+ (tr(Psi @ S) + sigma**2) * tr(S @ inv(Gamma) @ Sq @ inv(Gamma)) / M")
UNSHIFTED = "at(err, S=Lambda, Sq=Lambda, Psi=I, sigma=0)"
UNSHIFTED_FORM = ("tr(Lambda) - 2 * tr(Lambda**2 @ inv(Gamma)) + (1 + 1/M) * tr(Lambda**3 @ inv(Gamma)**2) "
                  "+ tr(Lambda) * tr(Lambda**2 @ inv(Gamma)**2) / M")
AT_M_EQUALS_N = "tr(Lambda) - tr(Lambda**2 @ inv(Gamma))"
LIMIT_M = "tr(Lambda) - 2 * tr(Lambda**2 @ inv(Gamma)) + tr(Lambda**3 @ inv(Gamma)**2)"
GENERAL_FORM = ("epsstar + a.T @ (Gamma - Lambda) @ inv(Gamma) @ Lambda @ inv(Gamma) @ (Gamma - Lambda) @ a "
                "+ tr(Sigma @ inv(Gamma) @ Lambda @ inv(Gamma)) / M")


@functools.lru_cache(maxsize=None)
def test_error() -> dict:
    ctx = with_gamma(TEST)
    yhat = test_prediction()
    err = expectation(g.Pow(g.Sub(yhat, P("w.T @ q + eps")), 2), ctx)
    unshifted = err.substitute({"S": "Lambda", "Sq": "Lambda", "Psi": "I", "sigma": "0"})
    at_n = set_count(unshifted, "M", "N")
    # Γ⁻² Λ² (Γ_written − Γ) is zero by the definition of Γ; adding it is what collapses the M = N case
    by_definition = Polynomial.of("tr(Lambda**2 @ inv(Gamma)**2 @ (G - Gamma))", ctx, {"G": gamma_written(ctx)})
    collapsed = at_n - by_definition
    from derive.lsa_optimum import optimum

    twice_minimum = (optimum()["minimum"].in_context(ctx) + Polynomial.of("tr(Lambda)/2", ctx)) * 2
    limit_m = limit_in(unshifted, "M")
    limit_nm = limit_m.substitute({"Gamma": "Lambda"})
    return {"context": ctx, "yhat": yhat, "err": err, "unshifted": unshifted, "at_M_equals_N_raw": at_n,
            "by_definition": by_definition, "at_M_equals_N": collapsed, "twice_minimum": twice_minimum,
            "limit_M": limit_m, "limit_NM": limit_nm,
            "c_free": not any(ctx.symbol("c") in v.free_symbols for v in err.terms.values())}


@functools.lru_cache(maxsize=None)
def test_error_any_product() -> Polynomial:
    """E(ŷ − y_q)² for any LSA on the subspace u12 = u21 = 0 with u·U11 = V (V general, not symmetric).

    The same forward pass and pairing as ``test_error``; used to compare a *trained* model with the theory
    (``numeric/lsa_shift.py``), whose u·U11 is only close to Γ⁻¹.
    """
    ctx = declare(gaussians={"x": "S", "q": "Sq", "w": "Psi", "eps": "sigma**2"}, scalars=["sigma"], counts=["M"],
                  latex_names=LATEX_NAMES)
    minimizer = {"U11": P("V"), "u": P("1"), "u12": P("zeros(d, 1)"), "u21": P("zeros(d, 1)")}
    return expectation(g.Pow(g.Sub(test_prediction(minimizer=minimizer), P("w.T @ q + eps")), 2), ctx)


@functools.lru_cache(maxsize=None)
def general_theorem() -> dict:
    """Theorem 4.2 for any D with x-marginal N(0, Λ): second-moment algebra on stand-ins.

    ŷ = qᵀΓ⁻¹m̂ with m̂ = (1/M)Σᵢ yᵢxᵢ (the forward pass at the minimizer, for any labels).  Write
    y_q = aᵀq + r with a = Λ⁻¹E[xy], so E[q r] = 0 and E r² = ε*.  (ŷ − y_q)² is a polynomial of degree 2
    in (q, r, m̂), with m̂ independent of (q, r): its mean needs only E[qqᵀ] = Λ, E[qr] = 0, E r² = ε*,
    E m̂ = Λa and Cov m̂ = Σ/M.  Gaussian stand-ins with these moments therefore give the exact mean.
    """
    ctx = with_gamma(GENERAL)
    err = expectation("(q.T @ inv(Gamma) @ mh - a.T @ q - r)**2", ctx)
    form = Polynomial.of(GENERAL_FORM, ctx)
    bias = Polynomial.of("a.T @ (Gamma - Lambda) @ inv(Gamma) @ Lambda @ inv(Gamma) @ (Gamma - Lambda) @ a", ctx)
    # Γ − Λ written out from the definition of Γ: the slides' bracket of 1/N² terms
    bias_written = Polynomial.of("a.T @ D @ inv(Gamma) @ Lambda @ inv(Gamma) @ D @ a", ctx,
                                 {"D": gamma_written(ctx) - Polynomial.of("Lambda", ctx)})
    # the linear task given w: a = w, ε* = σ², Σ = E[x y² xᵀ] − Λwwᵀ Λ
    lin = LINEAR
    second = expectation("x @ x.T * (w.T @ x + eps)**2", lin)
    sigma_linear = second - Polynomial.of("Lambda @ w @ w.T @ Lambda", lin)
    a_linear = expectation("inv(Lambda) @ x * (w.T @ x + eps)", lin)
    return {"context": ctx, "err": err, "residual": err - form, "bias": bias, "bias_written": bias_written,
            "Sigma_linear": sigma_linear, "a_linear": a_linear}


@functools.lru_cache(maxsize=None)
def linear_instance() -> dict:
    """The general form at a = w, Σ = Σ(w), ε* = σ², averaged over w ~ N(0, Psi): the S = Sq = Λ test error."""
    gt = general_theorem()
    ctx = with_gamma(declare(gaussians={"w": "Psi"}, matrices={"Lambda": "spd"}, scalars=["sigma"], counts=["M"],
                             latex_names=LATEX_NAMES))
    sigma_w = gt["Sigma_linear"].in_context(ctx)
    averaged = expectation(P(GENERAL_FORM), ctx, env={"a": P("w"), "epsstar": P("sigma**2"), "Sigma": sigma_w.expr()})
    direct = test_error()["err"].substitute({"S": "Lambda", "Sq": "Lambda"}).in_context(ctx)
    return {"averaged": averaged, "residual": averaged - direct}


def derive_test_error() -> Derivation:
    t, gt, li = test_error(), general_theorem(), linear_instance()
    return Derivation(
        steps=(
            Step("yhat", t["yhat"], "lsa.prediction (the forward pass) with `Z = Emb @ Emb.T/M` of the test prompt "
                                    "and a global minimizer `U11 = c * inv(Gamma)`, `u = 1/c`, `u12 = u21 = 0`"),
            Step("E((yhat - w.T @ q - eps)**2)", t["err"], "Wick pairing over the `M` context tokens (coincidences "
                                                           "split exactly), the query, the task and the noise; `c` "
                                                           "cancels: every global minimizer predicts alike"),
            Step(UNSHIFTED, t["unshifted"], "the training distribution at test time, no noise"),
            Step("err_MN", t["at_M_equals_N_raw"], "`err_unshifted` at test length `M = N`"),
            Step("tr(Lambda**2 @ inv(Gamma)**2 @ (Gamma_written - Gamma))", t["by_definition"],
                 "zero, `Gamma_written` being `Gamma` written out (lsa.reduced_loss)"),
            Step("err_MN - tr(Lambda**2 @ inv(Gamma)**2 @ (Gamma_written - Gamma))", t["at_M_equals_N"],
                 "so at `M = N` the error is ..."),
            Step("2 * (at(ltilde, U11=c * inv(Gamma), u=1/c) + tr(Lambda)/2)", t["twice_minimum"],
                 "... twice the minimum of the population loss (lsa.minimizer), as it must: the loss is half the "
                 "squared error at `M = N`"),
            Step("err_Minf", t["limit_M"], "`err_unshifted` as `M` goes to infinity (each coefficient's limit): the bias "
                                                              "`tr(Lambda @ (I - inv(Gamma) @ Lambda)**2)` is left"),
            Step("err_NMinf", t["limit_NM"], "`Gamma` tends to `Lambda` as `N` goes to infinity (`Gamma - Lambda = "
                                                                  "(Lambda + tr(Lambda) * I)/N`)"),
            Step("E((q.T @ inv(Gamma) @ mh - a.T @ q - r)**2)", gt["err"],
                 "Theorem 4.2 for any `D` with x-marginal N(0, `Lambda`): `yhat = q.T @ inv(Gamma) @ mh`, `mh` the "
                 "mean of `y[i] * x[i]`, the target `a.T @ q + r` with `E(q * r) = 0`, `E(r**2) = epsstar`; a degree-2 "
                 "polynomial, so only first and second moments enter (general moment algebra) and the engine "
                 "computes it with stand-ins `mh` (mean `Lambda @ a`, covariance `Sigma/M`), `q`, `r`"),
            Step("E((q.T @ inv(Gamma) @ mh - a.T @ q - r)**2) - thm42", gt["residual"],
                 f"with `thm42` the general form `{GENERAL_FORM}`: it holds, and the variance term carries `1/M`"),
            Step("a.T @ (Gamma - Lambda) @ inv(Gamma) @ Lambda @ inv(Gamma) @ (Gamma - Lambda) @ a", gt["bias_written"],
                 "the bias with `Gamma - Lambda` written out: the bracket of `1/N**2` terms"),
            Step("E(x @ x.T * (w.T @ x + eps)**2) - Lambda @ w @ w.T @ Lambda", gt["Sigma_linear"],
                 "`Sigma` for the linear task given `w` (`x` ~ N(0, `Lambda`)); `a = w`, `epsstar = sigma**2`"),
            Step("E(at(thm42, a=w, epsstar=sigma**2, Sigma=Sigma_w)) - at(err, S=Lambda, Sq=Lambda)", li["residual"],
                 "averaged over `w` ~ N(0, `Psi`), the general form is the linear-task error: the two derivations "
                 "agree"),
        ),
        values={"test_error": t["err"], "unshifted": t["unshifted"], "at_M_equals_N": t["at_M_equals_N"],
                "limit_M": t["limit_M"], "limit_NM": t["limit_NM"]},
        context=t["context"], definitions={"yhat": t["yhat"], "err": t["err"], "err_MN": t["at_M_equals_N"],
                                           "err_Minf": t["limit_M"], "err_NMinf": t["limit_NM"]})


# ---------------------------------------------------------------- lsa.covariate_shift

LIMIT_FORM = ("sigma**2 + tr(Psi @ Sq) - 2 * tr(Psi @ S @ inv(Lambda) @ Sq) "
              "+ tr(Psi @ S @ inv(Lambda) @ Sq @ inv(Lambda) @ S)")


@functools.lru_cache(maxsize=None)
def covariate_shift() -> dict:
    t = test_error()
    ctx = t["context"]
    cond_ctx = with_gamma(CONDITIONAL)
    conditional_mean = expectation(test_prediction(), cond_ctx)
    cm_residual = conditional_mean - Polynomial.of("q.T @ inv(Gamma) @ S @ w", cond_ctx)
    scaled_mean = conditional_mean.substitute({"S": "c**2 * Lambda"})
    scaled_mean_inf = scaled_mean.substitute({"Gamma": "Lambda"})
    err_inf = limit_in(t["err"], "M").substitute({"Gamma": "Lambda"})
    # N → ∞ at finite M, covariates scaled by c: the error has a variance term that M → ∞ removes
    scaled_err_n = t["err"].substitute({"S": "c**2 * Lambda", "Sq": "c**2 * Lambda", "Psi": "I", "sigma": "0",
                                        "Gamma": "Lambda"})
    k_inf = Polynomial.of("inv(Lambda) @ S", ctx)
    return {"context": ctx, "conditional_mean": conditional_mean, "cm_residual": cm_residual,
            "scaled_mean": scaled_mean, "scaled_mean_inf": scaled_mean_inf, "err_inf": err_inf,
            "limit_residual": err_inf - Polynomial.of(LIMIT_FORM, ctx), "scaled_err_n": scaled_err_n,
            "K_inf": k_inf,
            "limit_error": err_inf.substitute({"S": "c**2 * Lambda", "Sq": "c**2 * Lambda", "Psi": "I", "sigma": "0"}),
            "query_task_shift": err_inf.substitute({"S": "Lambda", "sigma": "0"}),
            "context_shift": err_inf.substitute({"S": "c**2 * Lambda", "Sq": "Lambda", "Psi": "I", "sigma": "0"})}


def derive_covariate_shift() -> Derivation:
    s = covariate_shift()
    return Derivation(
        steps=(
            Step("E(yhat)", s["conditional_mean"], "the conditional mean given the query `q` and the task `w` (both "
                                                   "held fixed; the context tokens ~ N(0, `S`) and their noise "
                                                   "averaged), exact for every `M`"),
            Step("E(yhat) - q.T @ inv(Gamma) @ S @ w", s["cm_residual"], "so `E(yhat) = q.T @ K @ w` with "
                                                                        "`K = inv(Gamma) @ S`, for every `M`"),
            Step("at(E(yhat), S=c**2 * Lambda)", s["scaled_mean"], "test covariates scaled by `c`: exact at every "
                                                                   "`M` and `N`"),
            Step("at(E(yhat), S=c**2 * Lambda, Gamma=Lambda)", s["scaled_mean_inf"],
                 "`Gamma` replaced by its limit `Lambda`: the conditional mean is `c**2` times the target, for every `M`"),
            Step("err_inf", s["err_inf"], "the `N` and `M` to infinity limit of lsa.test_error (each coefficient's limit in "
                                          "`M`, then `Gamma` replaced by its limit `Lambda`)"),
            Step("err_inf - err_form", s["limit_residual"], f"with `err_form` = `{LIMIT_FORM}`: its form, in "
                                                             "which `S @ inv(Lambda) - I` is what survives"),
            Step("at(err_inf, S=Lambda, sigma=0)", s["query_task_shift"],
                 "context tokens from the training law: any query shift `Sq` and any task shift `Psi` are "
                 "tolerated"),
            Step("err_ctx", s["context_shift"], "`err_inf` at `S = c**2 * Lambda`, `Sq = Lambda`, `Psi = I`, "
                                                "`sigma = 0`: a context shift alone is not tolerated"),
            Step("err_c", s["limit_error"], "`err_inf` with all test covariates scaled by `c`: `S = Sq = c**2 * "
                                            "Lambda`, `Psi = I`, `sigma = 0`"),
            Step("err_scaled", s["scaled_err_n"],
                 "`err` at `S = Sq = c**2 * Lambda`, `Psi = I`, `sigma = 0` and `Gamma` replaced by its limit "
                 "`Lambda`: at finite `M` the error is larger by a variance term of order `1/M`"),
        ),
        values={"limit_error": s["limit_error"], "context_shift": s["context_shift"],
                "query_task_shift": s["query_task_shift"]},
        context=s["context"], definitions={"err_inf": s["err_inf"], "K_inf": s["K_inf"], "err_ctx": s["context_shift"],
                                           "err_c": s["limit_error"]})


# ---------------------------------------------------------------- the registry

MODEL = ("training: prompts of length `N`, tokens ~ N(0, `Lambda`), tasks ~ N(0, I), no noise; the LSA is at a "
         "global minimizer of the population loss (`u12 = u21 = 0`, `u * U11 = inv(Gamma)`, lsa.minimizer)",
         "test: a prompt of length `M` read with the normalization `1/M`; context tokens `x[i]` ~ N(0, `S`), the "
         "query `q` ~ N(0, `Sq`), the task `w` ~ N(0, `Psi`), labels `w.T @ x[i] + eps[i]` and target "
         "`w.T @ q + eps` with `eps` ~ N(0, `sigma**2`), all independent")
READING_ORDER = 30  # where this module's results stand in the document and the lists (lower first)

RESULTS = [
    Result(id="lsa.test_error", title="The prediction error of the trained LSA at test length `M` (Theorem 4.2)",
           equations=(Equation("E((yhat - w.T @ q - eps)**2)", TEST_ERROR, value="test_error"),
                      Equation(UNSHIFTED, UNSHIFTED_FORM, value="unshifted"),
                      Equation("err_MN", AT_M_EQUALS_N, value="at_M_equals_N"),
                      Equation("err_Minf", LIMIT_M, value="limit_M"),
                      Equation("err_NMinf", "0", value="limit_NM")),
           derive=derive_test_error,
           sources=(Source(ZFB2024, "Theorem 4.2"), Source(WU2025, "Theorem 4.2")),
           assumptions=MODEL,
           remarks=("The equations in order: the error for general shifts; the training distribution at test time "
                    "(no noise) `err_unshifted`; at `M = N` (`err_MN`) it is `tr(Lambda) - tr(Lambda**2 @ inv(Gamma))`, twice the minimum "
                    "`tr(Lambda)/2 - tr(Lambda**2 @ inv(Gamma))/2` of the population loss; as `M` goes to infinity the bias "
                    "`tr(Lambda @ (I - inv(Gamma) @ Lambda)**2)` is left; as `N` and `M` go to infinity nothing.",
                    "Theorem 4.2 in the slides' generality (any `D` with x-marginal N(0, `Lambda`), `a = "
                    "inv(Lambda) @ E(x * y)`, `Sigma` the covariance of `x * y`, the best linear error `epsstar`) is derived in "
                    "the steps: the error is `epsstar + a.T @ (Gamma - Lambda) @ inv(Gamma) @ Lambda @ inv(Gamma) "
                    "@ (Gamma - Lambda) @ a + tr(Sigma @ inv(Gamma) @ Lambda @ inv(Gamma))/M`. Only the first step "
                    "(the forward pass) and the Gaussian x-marginal of the query (`E(q @ q.T) = Lambda`) are "
                    "specific to the model; the rest is second-moment algebra, valid for any labels.",
                    "Discrepancy with the slides (Wu 2025): the slides' Theorem 4.2 writes the variance term as "
                    "`tr(Sigma @ inv(Gamma)**2 @ Lambda)`, without the factor `1/M`. The derivation has `1/M` (the "
                    "covariance of a mean of `M` i.i.d. terms), and the Monte Carlo check of the literal forward "
                    "pass (python -m numeric.confirm lsa.test_error; ten random instances with `d` = 3, `N` = 5, "
                    "`M` = 2 and `M` = 9, `S` and `Sq` shifted, `sigma` = 0.7) rejects the slides' form at z = "
                    "320 to 550 (`M` = 2) and 2,000 to 4,000 (`M` = 9), and the unshifted formula at z = 240 to "
                    "480, while the derived form passes with max z 2.3 (threshold 5). The bias bracket of `1/N**2` terms in the slides is right: it is the bias above "
                    "with `Gamma - Lambda = (Lambda + tr(Lambda) * I)/N` written out (a step).")),
    Result(id="lsa.covariate_shift", title="The trained LSA under covariate shift, and the `c**2` scaling",
           equations=(Equation("at(K_inf, S=c**2 * Lambda)", "c**2 * I"),
                      Equation("at(err_inf, S=Lambda, sigma=0)", "0", value="query_task_shift"),
                      Equation("err_ctx", "(c**2 - 1)**2 * tr(Lambda)", value="context_shift"),
                      Equation("err_c", "c**2 * (c**2 - 1)**2 * tr(Lambda)", value="limit_error")),
           derive=derive_covariate_shift,
           sources=(Source(ZFB2024, "Section 4.2"), Source(WU2025, "covariate shifts"), Source(GARG2022)),
           assumptions=MODEL,
           remarks=("`E(yhat) = q.T @ inv(Gamma) @ S @ w` given the query and the task, exactly for every `M`; "
                    "`K_inf = inv(Lambda) @ S` is its matrix as `N` goes to infinity. `err_inf` is the `N` and `M` to infinity limit of "
                    "the test error: `sigma**2 + tr(Psi @ (S @ inv(Lambda) - I) @ Sq @ (inv(Lambda) @ S - I))`; `err_ctx` is "
                    "its value for a context shift `S = c**2 * Lambda` alone, `err_c` for all test covariates "
                    "scaled by `c` (both without noise, `Psi = I`).",
                    "Discrepancy with the slides (Wu 2025) (the `c**2` claim): with test covariates `c * x` (covariance "
                    "`c**2 * Lambda`) the conditional mean is `c**2 * q.T @ inv(Gamma) @ Lambda @ w` exactly, for "
                    "every `M`, and `c**2 * q.T @ w` as `N` goes to infinity: the claim holds for the conditional mean. As a "
                    "statement about the prediction itself it holds only as `N` and `M` go to infinity: at finite `M` the error "
                    "exceeds `c**2 * (c**2 - 1)**2 * tr(Lambda)` by a variance term of order `1/M` (a step). The Monte Carlo "
                    "of the conditional mean (`N` = 4, `M` = 3, `c` in 1.5 to 2, ten random instances) confirms the "
                    "derived form (max z 2.3) and rejects `c**2 * q.T @ w` at finite `N` at z = 575 to 845.",
                    "The slides' GPT-2 comparison scales the covariance, not the covariates: test covariance "
                    "`c * Lambda` with `c` = 1, 4, 9 is covariates scaled by 1, 2, 3, so there the LSA's "
                    "conditional mean is `c` (not `c**2`) times the target.")),
]


if __name__ == "__main__":
    from derive.topic import run_topic

    run_topic(__spec__.name)
