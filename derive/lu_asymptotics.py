"""In-context learning by linear attention: finite-d errors and their limit as d grows (Lu et al., PNAS 2025).

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

import sympy

from derive.engine.calculus import gradient, solve_linear
from derive.engine.pipeline import declare, define
from derive.engine.polynomial import Polynomial
from derive.engine.statements import evaluate
from derive.references import BACH2024, HASTIE2022, HULU2023, KEMPNER2025, LU2025, MP1967
from derive.registry import Derivation, Equation, Result, Source, Step

LATEX_NAMES = {"q": "x_{\\ell+1}", "ell": "\\ell", "eps": "\\varepsilon", "yhat": "\\hat{y}", "yq": "y_{\\ell+1}",
               "e_task": "e(\\Gamma; w)", "yhat_unscaled": "\\hat{y}_{\\mathrm{unscaled}}"}
# The prompt distribution with a fresh task (e_ICL) and with a fixed task `w` (e(Γ; w)).
FRESH = declare(gaussians={"x": "I/d", "q": "I/d", "w": "I", "eps": "rho"}, vectors=["g"],
                scalars={"rho": "positive"}, counts=["ell"], latex_names=LATEX_NAMES)
FIXED = declare(gaussians={"x": "I/d", "q": "I/d", "eps": "rho"}, vectors=["g", "w"],
                scalars={"rho": "positive"}, counts=["ell"], latex_names=LATEX_NAMES)
LABEL = "x[i].T @ w + eps[i]"
# ŷ = ⟨Γ, H_Z⟩ with H_Z = q [(d/ℓ) Σ yᵢ xᵢᵀ, (1/ℓ) Σ yᵢ²] and Γ = [G | g], written out.
PREDICTION = ("yhat", f"d/ell * q.T @ G @ sum(i, x[i] * ({LABEL}), ell) + (q.T @ g) * sum(i, ({LABEL})**2, ell)/ell")
# The seeds' H_Z drops the factor d/ℓ (a wrong variant, kept to be rejected numerically).
PREDICTION_SEED = ("yhat_unscaled", f"1/ell * q.T @ G @ sum(i, x[i] * ({LABEL}), ell) + "
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
    seed = evaluate("E((yq - yhat_unscaled)**2)", FRESH, definitions)
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
            Step("E((yq - yhat_unscaled)**2)", f["seed_e_icl"], "the source notes' features without the factor `d/ell` "
                                                            "(a wrong variant; the Monte Carlo check rejects it)"),
        ),
        values={"e_icl": f["e_icl"], "e_task": f["e_task"]}, context=FRESH)



# ============================================================== 2. the `d` to infinity limit
#
# Scalars of the asymptotic statements.  `kt` is the effective ridge, `m_c`, `m_c2`, `m_k`, `m_k2` the
# Marchenko-Pastur integrals ∫ dμ(r)/(r + z)^j at z = c and z = c + kt (j = 1, 2), c = (1 + ρ)/α.
ASYMPTOTIC_SCALARS = ("alpha", "kappa", "tau", "rho", "lam", "kt", "m_c", "m_c2", "m_k", "m_k2")
ASYMPTOTIC = declare(scalars={name: "positive" for name in ASYMPTOTIC_SCALARS},
                     latex_names={"kt": "\\tilde{\\kappa}", "lam": "\\lambda", "m_c": "m_{c}", "m_c2": "m_{c,2}",
                                  "m_k": "m_{\\tilde\\kappa}", "m_k2": "m_{\\tilde\\kappa,2}", "e_icl": "e_{ICL}",
                                  "e_idg": "e_{IDG}", "g_task": "g_{task}"})
# The pool problem: R = (1/k) Σ_j w_j w_jᵀ, the covariance of the context term at a pool task, and the ridge.
POOL = declare(matrices={"R": "spd"}, scalars={"c": "positive", "lam": "positive", "rho": "positive"})
CONTEXT_MOMENTS = {"h": "d/ell * sum(i, x[i] * (x[i].T @ w + eps[i]), ell)", "s": f"sum(i, ({LABEL})**2, ell)/ell"}
_S = {name: sympy.Symbol(name, positive=True) for name in ASYMPTOTIC_SCALARS}
_r, _z, _M = sympy.Symbol("r", nonnegative=True), sympy.Symbol("z", positive=True), sympy.Symbol("M")
_C = (1 + _S["rho"]) / _S["alpha"]  # c = (1 + ρ)/α, the isotropic part of the context covariance


def _scalar(expr) -> Polynomial:
    return Polynomial((1, 1), {(): sympy.sympify(expr)}, ASYMPTOTIC)


@functools.lru_cache(maxsize=None)
def moments() -> dict:
    """The context term's moments at a fixed task (engine), and their d → ∞ form (ℓ = αd, ‖w‖²/d → 1).

    E[h] = w, E[h hᵀ] = (1 + 1/ℓ) w wᵀ + (ρ d/ℓ + ‖w‖²/ℓ) I → w wᵀ + c I with c = (1 + ρ)/α.
    """
    mean = evaluate("E(h)", FIXED, CONTEXT_MOMENTS)
    second = evaluate("E(h @ h.T)", FIXED, CONTEXT_MOMENTS)
    d, ell, w2 = sympy.Symbol("d", positive=True), sympy.Symbol("ell", positive=True), sympy.Symbol("w2")
    # the coefficient of I in E[h hᵀ] with ‖w‖² = w2·d, ℓ = αd, as d → ∞
    isotropic = sympy.limit((_S["rho"] * d / ell + w2 * d / ell).subs({ell: _S["alpha"] * d}).subs(w2, 1), d,
                            sympy.oo)
    return {"mean": mean, "second": second, "c": isotropic}


@functools.lru_cache(maxsize=None)
def limit_error_of_readout() -> dict:
    """The d → ∞ form of e_ICL(G) (g = 0): 1 + ρ − 2 t₁ + (1 + c) t₂, t₁ = tr(G)/d, t₂ = tr(G Gᵀ)/d.

    Read off the derived finite-d e_icl: every trace is d times a normalised trace, ℓ = αd, d → ∞.
    """
    e = finite_d()["e_icl"].substitute({"g": "zeros(d, 1)"}).to_sympy()
    d = sympy.Symbol("d", positive=True, integer=True)
    ell = sympy.Symbol("ell", positive=True, integer=True)
    t1, t2 = sympy.symbols("t1 t2")
    traces = {}
    for atom in e.atoms(sympy.Trace):  # tr(G Gᵀ) = d t₂, tr(Gᵀ) = tr(G) = d t₁
        factors = [f for f in sympy.Mul.make_args(atom.arg) if isinstance(f, sympy.MatrixExpr)] \
            if not isinstance(atom.arg, sympy.MatMul) else [f for f in atom.arg.args if isinstance(f, sympy.MatrixExpr)]
        traces[atom] = d * (t2 if len(factors) == 2 else t1)
    e = e.xreplace(traces)
    limit = sympy.limit(e.subs(ell, _S["alpha"] * d), d, sympy.oo)
    return {"e_icl_of_G": sympy.expand(limit), "t1": t1, "t2": t2}


@functools.lru_cache(maxsize=None)
def pool_optimum() -> dict:
    """The population ridge optimum on the pool (engine): minimise (tr(G B Gᵀ) − 2 tr(G R) + tr R)/d,
    B = R + (c + λ) I (the pool loss at τ = ∞ plus the ridge λ‖G‖²/d)."""
    ctx = define(POOL, "B", Polynomial.of("R + (c + lam) * I", POOL))
    loss = Polynomial.of("(tr(G @ B @ G.T) - 2 * tr(G @ R) + tr(R))/d", ctx)
    grad = gradient(loss, "G")
    optimum = solve_linear(grad, "G")
    return {"loss": loss, "gradient": grad, "optimum": optimum}


def _spectral(matrix_expr, eigenvalue):
    """The eigenvalue map of a function of R (sympy matrix expression) at the eigenvalue ``eigenvalue``."""
    M = sympy.matrices.expressions
    if isinstance(matrix_expr, M.MatrixSymbol):
        return eigenvalue
    if isinstance(matrix_expr, M.Identity):
        return sympy.Integer(1)
    if isinstance(matrix_expr, M.Inverse):
        return 1 / _spectral(matrix_expr.arg, eigenvalue)
    if isinstance(matrix_expr, M.MatPow):
        return _spectral(matrix_expr.base, eigenvalue) ** matrix_expr.exp
    if isinstance(matrix_expr, (M.MatMul, sympy.Mul)):
        return sympy.Mul(*[_spectral(a, eigenvalue) if getattr(a, "is_Matrix", False) else a for a in matrix_expr.args])
    if isinstance(matrix_expr, (M.MatAdd, sympy.Add)):
        return sympy.Add(*[_spectral(a, eigenvalue) if getattr(a, "is_Matrix", False) else a for a in matrix_expr.args])
    raise ValueError(f"not a function of R: {matrix_expr}")


@functools.lru_cache(maxsize=None)
def marchenko_pastur() -> dict:
    """M(z) = ∫ dμ(r)/(r + z) of the spectrum of R = (1/k) Σ_j w_j w_jᵀ, k = κd (ratio d/k = 1/κ).

    Cited (Marchenko & Pastur 1967): its Stieltjes transform solves
    M = 1/(1 − 1/κ + z + z M/κ).  Sympy solves the quadratic and keeps the root with M ~ 1/z as z → ∞;
    the series there gives the moments ∫ r dμ = 1 and ∫ r² dμ = 1 + 1/κ.
    """
    kappa = _S["kappa"]
    equation = sympy.Eq(_M, 1 / (1 - 1 / kappa + _z + _z * _M / kappa))
    u = sympy.Symbol("u", positive=True)
    roots = sympy.solve(equation, _M)
    (root,) = [s for s in roots if sympy.limit(s.subs(_z, 1 / u) / u, u, 0) == 1]
    series = sympy.expand(sympy.series(root.subs(_z, 1 / u), u, 0, 4).removeO())
    mom = {0: series.coeff(u, 1), 1: -series.coeff(u, 2), 2: series.coeff(u, 3)}  # M = Σ (−1)^j m_j / z^{j+1}
    return {"equation": equation, "root": sympy.simplify(root), "derivative": sympy.diff(root, _z),
            "moments": {j: sympy.simplify(v) for j, v in mom.items()}}


def _integral(f) -> sympy.Expr:
    """∫ f(r) dμ(r) for a rational f with poles at r = −c and r = −(c + kt) only: partial fractions in r,
    the polynomial part through the moments, 1/(r + z)^j through m_c, m_c2, m_k, m_k2."""
    moments_ = marchenko_pastur()["moments"]
    names = {(_C, 1): _S["m_c"], (_C, 2): _S["m_c2"], (_C + _S["kt"], 1): _S["m_k"], (_C + _S["kt"], 2): _S["m_k2"]}
    total = sympy.Integer(0)
    for term in sympy.Add.make_args(sympy.apart(sympy.cancel(sympy.together(f)), _r)):
        _, denominator = sympy.fraction(sympy.factor(term))
        poles = [b for b in sympy.Mul.make_args(denominator) if b.has(_r)]
        if not poles:
            polynomial = sympy.Poly(sympy.expand(term), _r)
            total += sum(coef * moments_[m[0]] for m, coef in zip(polynomial.monoms(), polynomial.coeffs()))
            continue
        (pole,) = poles
        base, power = (pole.base, int(pole.exp)) if pole.is_Pow else (pole, 1)
        linear = sympy.Poly(base, _r)
        lead = linear.coeff_monomial(_r)
        shift = sympy.simplify(linear.coeff_monomial(1) / lead)
        coefficient = sympy.simplify(term * base ** power / lead ** power)
        (name,) = [v for (z0, j), v in names.items() if j == power and sympy.simplify(shift - z0) == 0]
        total += coefficient * name
    return sympy.simplify(total)


@functools.lru_cache(maxsize=None)
def asymptotic() -> dict:
    """e_ICL, e_IDG, g_task as d → ∞ (the derived and the cited steps are listed in the result).

    Gaussian equivalent: the pretraining rows vec(x hᵀ) have covariance Σ = (1/d) I ⊗ (R + c I) on the
    pool and (1/d)(1 + c) I at a fresh task; the target's best linear predictor on the pool is G₀ = R(R +
    cI)⁻¹ (`pool_optimum` at λ = 0) with residual variance σ² = ρ + c ∫ g₀ (ICL residual: e_ICL(G₀)).
    Deterministic equivalents of ridge regression (cited) with effective ridge kt:
    λ = kt (1 − df₁/τ), df₁ = ∫ a/(a + kt);  df₂ = (1/τ) ∫ a²/(a + kt)², a = r + c;
    e_IDG = (B + σ²)/(1 − df₂), B = kt² ∫ g₀² a/(a + kt)²;
    e_ICL = e_ICL(G₀) + X + (B + σ²) V/(1 − df₂),
    X = 2kt ∫ (1 − (1+c) g₀) g₀/(a + kt) + kt²(1 + c) ∫ g₀²/(a + kt)²,
    V = (1 + c)(1/τ) ∫ a/(a + kt)².
    """
    r, kt, tau, rho = _r, _S["kt"], _S["tau"], _S["rho"]
    c = moments()["c"]
    a = r + c
    g0 = _spectral(pool_optimum()["optimum"].to_sympy(), r).subs({sympy.Symbol("c", positive=True): c,
                                                                   sympy.Symbol("lam", positive=True): 0})
    limit = limit_error_of_readout()
    e_of = lambda t1, t2: limit["e_icl_of_G"].subs({limit["t1"]: t1, limit["t2"]: t2})  # noqa: E731
    parts = {
        "df1": _integral(a / (a + kt)),
        "df2": _integral(a ** 2 / (a + kt) ** 2) / tau,
        "bias": _integral(kt ** 2 * g0 ** 2 * a / (a + kt) ** 2),
        "sigma2": rho + _integral(c * g0),
        "e0": _integral(e_of(g0, g0 ** 2)),  # the fresh-task error of G₀ (the integrand is per eigenvalue)
        "cross": _integral(2 * kt * (1 - (1 + c) * g0) * g0 / (a + kt) + kt ** 2 * (1 + c) * g0 ** 2 / (a + kt) ** 2),
        "shift": _integral((1 + c) * a / (a + kt) ** 2) / tau,
    }
    ridge_equation = sympy.Eq(_S["lam"], kt * (1 - parts["df1"] / tau))
    e_idg = sympy.simplify((parts["bias"] + parts["sigma2"]) / (1 - parts["df2"]))
    e_icl = sympy.simplify(parts["e0"] + parts["cross"] + (parts["bias"] + parts["sigma2"]) * parts["shift"] /
                           (1 - parts["df2"]))
    return {"parts": parts, "g0": g0, "ridge_equation": ridge_equation, "e_icl": e_icl, "e_idg": e_idg,
            "g_task": sympy.simplify(e_icl - e_idg)}


@functools.lru_cache(maxsize=None)
def _numeric_functions() -> dict:
    mp = marchenko_pastur()
    args = (_S["kappa"], _z)
    functions = {"M": sympy.lambdify(args, mp["root"], "math"),
                 "M2": sympy.lambdify(args, -mp["derivative"], "math")}  # ∫ dμ/(r+z)² = −M'(z)
    a = asymptotic()
    names = [_S[n] for n in ASYMPTOTIC_SCALARS]
    for key in ("e_icl", "e_idg", "g_task"):
        functions[key] = sympy.lambdify(names, a[key], "math")
    functions["df1"] = sympy.lambdify(names, a["parts"]["df1"], "math")
    return functions


def effective_ridge(alpha: float, kappa: float, tau: float, rho: float, lam: float) -> float:
    """kt solving λ = kt (1 − (1 − kt M(c + kt))/τ) (the derived ``ridge_equation``); kt = 0 when λ = 0 ≤ τ − 1.

    >>> round(effective_ridge(1.0, 0.5, 0.5, 0.1, 0.0), 6) > 0, effective_ridge(1.0, 0.5, 2.0, 0.1, 0.0)
    (True, 0.0)
    """
    import math

    from scipy.optimize import brentq

    f = _numeric_functions()
    c = (1 + rho) / alpha

    def residual(kt):
        return kt * (1 - (1 - kt * f["M"](kappa, c + kt)) / tau) - lam

    if lam == 0:
        if tau >= 1:
            return 0.0
        upper = 1.0  # kt M(c + kt) rises from 0 to 1: bracket the root of kt M(c + kt) = 1 − τ
        while upper * f["M"](kappa, c + upper) < 1 - tau:
            upper *= 2
        return brentq(lambda kt: kt * f["M"](kappa, c + kt) - (1 - tau), 0.0, upper, xtol=1e-15, rtol=1e-14)
    upper = max(lam, 1.0)
    while residual(upper) < 0 and math.isfinite(upper):
        upper *= 2
    return brentq(residual, 0.0, upper, xtol=1e-15, rtol=1e-14)


def auxiliary(alpha: float, kappa: float, tau: float, rho: float, lam: float) -> dict:
    """kt and the Marchenko-Pastur integrals m_c, m_c2, m_k, m_k2 at given α, κ, τ, ρ, λ."""
    f = _numeric_functions()
    kt = effective_ridge(alpha, kappa, tau, rho, lam)
    c = (1 + rho) / alpha
    return {"kt": kt, "m_c": f["M"](kappa, c), "m_c2": f["M2"](kappa, c), "m_k": f["M"](kappa, c + kt),
            "m_k2": f["M2"](kappa, c + kt)}


def asymptotic_errors(alpha: float, kappa: float, tau: float, rho: float, lam: float) -> dict:
    """The derived e_ICL, e_IDG, g_task (d → ∞) at numbers; infinite at the ridgeless peak τ = 1."""
    f = _numeric_functions()
    aux = auxiliary(alpha, kappa, tau, rho, lam)
    args = (alpha, kappa, tau, rho, lam, aux["kt"], aux["m_c"], aux["m_c2"], aux["m_k"], aux["m_k2"])
    try:
        values = {key: f[key](*args) for key in ("e_icl", "e_idg", "g_task")}
    except ZeroDivisionError:
        values = {key: float("inf") for key in ("e_icl", "e_idg")} | {"g_task": float("nan")}
    return {**values, **aux}


# -------------------------------------------------------------- limits

@functools.lru_cache(maxsize=None)
def limits() -> dict:
    """τ → ∞ of the formulas, the same limit derived separately, and τ, α → ∞ (ridgeless) either side of κ = 1.

    At τ → ∞ the effective-ridge equation λ = kt (1 − df₁/τ) gives kt → λ and df₂, V → 0.  Separately:
    the population ridge optimum G_λ = R(R + (c + λ)I)⁻¹ (`pool_optimum`) has the fresh-task error
    ∫ e_ICL(g_λ, g_λ²) and the pool error ρ + ∫ (g_λ² a − 2 g_λ r + r), g_λ = r/(r + c + λ); written with
    kt for λ (the pole at −(c + kt)) both must equal the formulas at τ = ∞.
    """
    a_ = asymptotic()
    kt, tau, lam, r = _S["kt"], _S["tau"], _S["lam"], _r
    ridge = sympy.solve(sympy.limit(a_["ridge_equation"].rhs / kt, tau, sympy.oo) * kt - lam, kt)
    formula = {key: sympy.simplify(sympy.limit(a_[key], tau, sympy.oo)) for key in ("e_icl", "e_idg")}
    c = moments()["c"]
    optimum = _spectral(pool_optimum()["optimum"].to_sympy(), r).subs({sympy.Symbol("c", positive=True): c,
                                                                       sympy.Symbol("lam", positive=True): kt})
    limit = limit_error_of_readout()
    e_of = limit["e_icl_of_G"].subs({limit["t1"]: optimum, limit["t2"]: optimum ** 2})
    population = {"e_icl": _integral(e_of),
                  "e_idg": _S["rho"] + _integral(optimum ** 2 * (r + c) - 2 * optimum * r + r)}
    gaps = {key: sympy.simplify(formula[key] - population[key]) for key in formula}
    # τ, α → ∞, λ = 0: kt = 0 and m_c, m_c2 written out (the Marchenko-Pastur root at z = c), c → 0.
    mp = marchenko_pastur()
    u = sympy.Symbol("u", positive=True)
    closed = {_S["m_c"]: mp["root"].subs(_z, c), _S["m_c2"]: -mp["derivative"].subs(_z, c)}
    closed.update({_S["m_k"]: closed[_S["m_c"]], _S["m_k2"]: closed[_S["m_c2"]], kt: 0})
    double = {}
    for side, kappa_of_u, back in (("below", 1 / (1 + u), 1 / _S["kappa"] - 1), ("above", 1 + u, _S["kappa"] - 1)):
        values = {}
        for key in ("e_icl", "e_idg"):
            expr = formula[key].subs(closed).subs(_S["kappa"], kappa_of_u)
            values[key] = sympy.simplify(sympy.limit(expr, _S["alpha"], sympy.oo).subs(u, back))
        values["g_task"] = sympy.simplify(values["e_icl"] - values["e_idg"])
        double[side] = values
    return {"kt": ridge, "formula": formula, "population": population, "gaps": gaps, "double": double}


# -------------------------------------------------------------- 3. double descent

@functools.lru_cache(maxsize=None)
def peak() -> dict:
    """Ridgeless: 1 − df₂ at kt = 0 is 1 − 1/τ, so the errors diverge at τ = 1; the residues of the pole.

    For τ > 1 the ridgeless kt is 0 (λ = kt(1 − df₁/τ) with df₁ ≤ 1 < τ); the errors are then rational in
    τ with the factor 1/(1 − 1/τ); (τ − 1) e → τ σ² (IDG) and τ σ² V... at τ = 1.
    """
    a_ = asymptotic()
    kt, tau = _S["kt"], _S["tau"]
    at_zero = {kt: 0, _S["m_k"]: _S["m_c"], _S["m_k2"]: _S["m_c2"]}
    df2 = a_["parts"]["df2"].subs(at_zero)
    (tau_peak,) = sympy.solve(1 - df2, tau)
    residues = {key: sympy.simplify(sympy.limit((tau - 1) * a_[key].subs(at_zero), tau, 1, "+"))
                for key in ("e_icl", "e_idg")}
    return {"df2_ridgeless": sympy.simplify(df2), "tau_peak": tau_peak, "residues": residues}


def tau_peak(alpha: float, kappa: float, rho: float, lam: float) -> float:
    """Where e_ICL peaks in τ: 1 (derived) when λ = 0; for λ > 0 the interior maximum of the derived curve,
    found numerically on log τ ∈ [−4, 4] (NaN when the curve has no interior maximum: λ large)."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    if lam == 0:
        return float(peak()["tau_peak"])
    grid = np.linspace(-4.0, 4.0, 161)
    values = np.array([asymptotic_errors(alpha, kappa, float(np.exp(t)), rho, lam)["e_icl"] for t in grid])
    best = int(np.argmax(values))
    if best in (0, len(grid) - 1) or not (values[best] > values[best - 1] and values[best] > values[best + 1]):
        return float("nan")
    found = minimize_scalar(lambda t: -asymptotic_errors(alpha, kappa, float(np.exp(t)), rho, lam)["e_icl"],
                            bounds=(grid[best - 1], grid[best + 1]), method="bounded", options={"xatol": 1e-10})
    return float(np.exp(found.x))


# -------------------------------------------------------------- values that solve for their unknowns

class SolvedPolynomial(Polynomial):
    """A scalar polynomial in the inputs and auxiliary unknowns (kt, m_c, …) that, when evaluated, first
    solves for the unknowns not given (``solve(inputs) -> {name: number}``).  Arithmetic on it gives plain
    polynomials; printing is the polynomial's own."""

    __slots__ = ("solve", "inputs")

    def __init__(self, poly: Polynomial, solve, inputs: tuple):
        super().__init__(poly.shape, poly.terms, poly.context)
        object.__setattr__(self, "solve", solve)
        object.__setattr__(self, "inputs", inputs)

    def complete(self, values: dict) -> dict:
        """``values`` with the unknowns solved from the inputs (for ``derive eval``); one line if inputs lack."""
        from derive.engine.evaluate import MissingValue

        needed = [name for name in self.inputs if name not in values]
        if needed:
            raise MissingValue(needed[0], f"needs values for: {', '.join(needed)} (give them in --at)")
        solved = self.solve(*(float(values[name]) for name in self.inputs))
        return {**values, **{k: v for k, v in solved.items() if k not in values}}

    def evaluate(self, values: dict, d=None, N=None, **sizes):
        from derive.engine.evaluate import MissingValue

        needed = [name for name in self.inputs if name not in values]
        unknown = self.symbols() - set(values) - set(self.inputs)
        if unknown and needed:
            raise MissingValue(needed[0], f"no value given for scalar {needed[0]!r}")
        if unknown:
            solved = self.solve(*(float(values[name]) for name in self.inputs))
            values = {**values, **{k: v for k, v in solved.items() if k not in values}}
        return super().evaluate(values, d, N, **sizes)


INPUTS = ("alpha", "kappa", "tau", "rho", "lam")


def _solved(expr, solve=auxiliary, inputs=INPUTS) -> SolvedPolynomial:
    return SolvedPolynomial(_scalar(expr), solve, inputs)


def derive_asymptotic_error() -> Derivation:
    m, mp, a_, L = moments(), marchenko_pastur(), asymptotic(), limits()
    o, lim = pool_optimum(), limit_error_of_readout()
    parts = a_["parts"]
    steps = (
        Step("E(h)", m["mean"], "the engine, at a fixed task: the context term is unbiased for `w`"),
        Step("E(h @ h.T)", m["second"], "the engine; with `ell = alpha * d` and `(w.T @ w)/d` tends to 1 the "
                                        "isotropic part tends to `c = (1 + rho)/alpha`"),
        Step("c", _scalar(m["c"]), "sympy, the limit `d` to infinity"),
        Step("e_icl_of_G", _scalar(lim["e_icl_of_G"]), "lu.finite_d_error at `g = 0` with `t1 = tr(G)/d`, "
                                                        "`t2 = tr(G @ G.T)/d` held fixed, `ell = alpha * d`, `d` to "
                                                        "infinity"),
        Step("grad(L_pool, G)", o["gradient"], "the engine: the pool loss `(tr(G @ B @ G.T) - 2 * tr(G @ R) + "
                                               "tr(R))/d` with `B = R + (c + lam) * I` (`lam = 0`: no ridge)"),
        Step("G_star", o["optimum"], "solved by the engine: `G0 = R @ inv(R + c * I)` at `lam = 0`"),
        Step("M", _scalar(mp["root"].subs(_z, sympy.Symbol("z", positive=True))),
             "cited (Marchenko & Pastur 1967): the transform M(z) of the spectrum of `R` "
             "solves `M = 1/(1 - 1/kappa + z + z * M/kappa)`; sympy solves it and keeps the root `M` ~ `1/z`"),
        Step("m_2", _scalar(mp["moments"][2]), "sympy: the series of `M` at `z` at infinity gives the moments 1, 1 and "
                                               "this second moment of `R`'s spectrum"),
        Step("lam", _scalar(a_["ridge_equation"].rhs), "cited (deterministic equivalent of ridge regression, "
                                                        "e.g. Hastie et al. 2022, Bach 2024): the effective ridge "
                                                        "`kt` solves this; the trace over the Kronecker product of "
                                                        "`I` and `R + c * I` is "
                                                        "reduced by sympy's partial fractions to `m_k`"),
        Step("df2", _scalar(parts["df2"]), "sympy: partial fractions in the eigenvalue `r`"),
        Step("sigma2", _scalar(parts["sigma2"]), "the pool error of `G0` (the label noise of the Gaussian "
                                                 "equivalent, cited: Gaussian equivalence, Hu & Lu 2023)"),
        Step("bias", _scalar(parts["bias"]), "the bias of ridge at effective ridge `kt`, weighted by `A = R + c * I`"),
        Step("e0", _scalar(parts["e0"]), "the fresh-task error of `G0` (`e_icl_of_G` integrated over `R`'s "
                                         "spectrum)"),
        Step("cross", _scalar(parts["cross"]), "the shift of the test covariance (fresh task: `(1 + c) * I`) "
                                               "against the bias"),
        Step("shift", _scalar(parts["shift"]), "the variance factor under the fresh-task covariance"),
        Step("e_idg", _scalar(a_["e_idg"]), "cited deterministic equivalent: `(bias + sigma2)/(1 - df2)`"),
        Step("e_icl", _scalar(a_["e_icl"]), "cited deterministic equivalent under the fresh-task covariance: "
                                            "`e0 + cross + (bias + sigma2) * shift/(1 - df2)`"),
        Step("kt_tau_inf", _scalar(L["kt"][0]), "sympy: the effective-ridge equation as `tau` to infinity"),
        Step("e_icl_tau_inf", _scalar(L["formula"]["e_icl"]), "sympy: the formula as `tau` to infinity (`kt` = `lam`)"),
        Step("e_icl_pop", _scalar(L["population"]["e_icl"]), "the population ridge optimum `R @ inv(R + (c + lam) * I)`: "
                                                            "its fresh-task error integrated over `R`'s spectrum "
                                                            "(`kt` standing for `lam`)"),
        Step("e_icl_tau_inf - e_icl_pop", _scalar(L["gaps"]["e_icl"]),
             "the formula at `tau` to infinity against the population ridge optimum's fresh-task error, derived "
             "separately"),
        Step("e_idg_tau_inf - e_idg_pop", _scalar(L["gaps"]["e_idg"]), "the same for the pool error"),
        Step("g_task_limit_below", _scalar(L["double"]["below"]["g_task"]),
             "`tau` to infinity, then `alpha` to infinity, `lam = 0`, `kappa < 1` (sympy limits of the closed form)"),
        Step("g_task_limit_above", _scalar(L["double"]["above"]["g_task"]), "the same for `kappa > 1`"),
    )
    # The statements compose the derived parts; the engine's coefficients are expanded, not cancelled, so the
    # composed values are built by the engine from the same text (sympy's simplified forms are checked equal
    # to them in tests/test_lu_asymptotic.py).
    definitions = {key: _scalar(parts[key]) for key in ("bias", "sigma2", "df2", "e0", "cross", "shift")}
    for key, text in (("e_idg", "(bias + sigma2)/(1 - df2)"), ("e_icl", "e0 + cross + (bias + sigma2) * shift/(1 - df2)"),
                      ("g_task", "e_icl - e_idg")):
        definitions[key] = evaluate(text, ASYMPTOTIC, definitions)
    solved = {key: SolvedPolynomial(definitions[key], auxiliary, INPUTS) for key in ("e_icl", "e_idg", "g_task")}
    values = {**solved,
              "tau_infinity": {key: SolvedPolynomial(_scalar(L["formula"][key].subs(_S["kt"], _S["lam"])),
                                                     _tau_infinity_solve, ("alpha", "kappa", "rho", "lam"))
                               for key in ("e_icl", "e_idg")},
              "alpha_tau_infinity": {side: {k: _scalar(v) for k, v in L["double"][side].items()}
                                     for side in ("below", "above")}}
    return Derivation(steps=steps, values=values, context=ASYMPTOTIC, definitions=definitions)


def _tau_infinity_solve(alpha, kappa, rho, lam):
    """The Marchenko-Pastur integrals at τ = ∞, where the effective ridge is λ itself."""
    f, c = _numeric_functions(), (1 + rho) / alpha
    return {"m_c": f["M"](kappa, c), "m_c2": f["M2"](kappa, c), "m_k": f["M"](kappa, c + lam),
            "m_k2": f["M2"](kappa, c + lam)}


def _peak_solve(alpha, kappa, rho, lam):
    f, c = _numeric_functions(), (1 + rho) / alpha
    return {"tau_peak": tau_peak(alpha, kappa, rho, lam), "m_c": f["M"](kappa, c), "m_c2": f["M2"](kappa, c)}


def derive_double_descent() -> Derivation:
    p, a_ = peak(), asymptotic()
    tp = sympy.Symbol("tau_peak", positive=True)
    steps = (
        Step("at(df2, kt=0, m_k=m_c, m_k2=m_c2)", _scalar(p["df2_ridgeless"]),
             "ridgeless and `tau > 1`: `kt = 0` solves the effective-ridge equation (`df1` at most 1, below `tau`)"),
        Step("tau_peak", _scalar(p["tau_peak"]), "sympy: `1 - df2 = 0`, where `e_icl` and `e_idg` diverge; "
                                                 "from `tau < 1`, `kt` tends to 0 as `tau` to 1 and the same pole "
                                                 "appears"),
        Step("(tau - 1) * e_idg", _scalar(p["residues"]["e_idg"]), "sympy: the residue of the pole of e_IDG at "
                                                                   "`tau` to 1 from above: the pool noise `sigma2`"),
        Step("(tau - 1) * e_icl", _scalar(p["residues"]["e_icl"]), "the residue of e_ICL"),
    )
    ctx = declare(scalars={name: "positive" for name in ASYMPTOTIC_SCALARS + ("tau_peak",)})
    value = SolvedPolynomial(Polynomial((1, 1), {(): tp}, ctx), _peak_solve, ("alpha", "kappa", "rho", "lam"))
    values = {"tau_peak": value,
              "residue": {key: SolvedPolynomial(_scalar(v), _peak_solve, ("alpha", "kappa", "rho", "lam"))
                          for key, v in p["residues"].items()}}
    return Derivation(steps=steps, values=values, context=ASYMPTOTIC,
                      definitions={"df2": _scalar(a_["parts"]["df2"]), "sigma2": _scalar(a_["parts"]["sigma2"]),
                                   "e_idg": _scalar(a_["e_idg"])})


READING_ORDER = 70  # where this module's results stand in the document and the lists (lower first)

RESULTS = [
    Result(id="lu.finite_d_error", title="The ICL error of a linear-attention readout `Gamma` at finite `d`",
           equations=(Equation(ERROR, value="e_icl"),),
           derive=derive_finite_d_error, where=(PREDICTION, QUERY_LABEL),
           sources=(Source(LU2025, "the reduced model `yhat` = <`Gamma`, `H_Z`>"), Source(KEMPNER2025)),
           assumptions=MODEL,
           remarks=("The error includes the query's label noise `rho`. The `g` column only enters through "
                    "`g.T @ g` and, at a fixed task, `g.T @ w`, `g.T @ G @ w`: at a fresh task `G` and `g` do not "
                    "interact (odd moments of `w`).",
                    "The source notes (Kempner Institute 2025) write `H_Z` without the factor `d/ell`; with it the "
                    "context term `h` = "
                    "`d/ell * sum(i, y[i] * x[i], ell)` has mean `w`, so `G = I` makes `yhat` unbiased. Without "
                    "it the same `G` predicts `(1/d) * q.T @ w`. Numbers (numeric.confirm at its first instance, `d "
                    "= 3`, "
                    "`ell = 5`, 2,000,000 prompts): simulated e_ICL 2.3494 with standard error 0.0023, derived "
                    "2.3511, the notes' features 1.6748 (z = 294): the factor `d/ell` belongs in `H_Z`.")),
    Result(id="lu.asymptotic_error", title="ICL and IDG errors of the pretrained readout as `d` to infinity",
           equations=(Equation("e_idg", "(bias + sigma2)/(1 - df2)", value="e_idg"),
                      Equation("e_icl", "e0 + cross + (bias + sigma2) * shift/(1 - df2)", value="e_icl"),
                      Equation("g_task", "e_icl - e_idg", value="g_task")),
           derive=derive_asymptotic_error,
           sources=(Source(LU2025, "Results 1 and 2"), Source(MP1967), Source(HASTIE2022),
                    Source(BACH2024), Source(HULU2023)),
           assumptions=("`d` to infinity with `alpha = ell/d`, `kappa = k/d`, `tau = n/d**2`, `rho`, `lam` fixed",
                        "cited, not derived: the pretraining regression behaves as ridge regression on Gaussian "
                        "features with the same covariance the Kronecker product of `I` and `R + c * I`, over `d` "
                        "and an independent label noise of "
                        "variance `sigma2` (Gaussian equivalence); its errors follow the deterministic "
                        "equivalents of ridge regression with effective ridge `kt`",
                        "the `g` column of `Gamma` is dropped: `d` parameters out of `d * (d + 1)`, its effect is "
                        "of order 1/`d`"),
           remarks=("`kt` is the effective ridge (`lam = kt * (1 - (1 - kt * m_k)/tau)`; `kt` = 0 when `lam` = 0 "
                    "and `tau` > 1), `m_c`, `m_c2` are the integrals of `1/(r + c)`, `1/(r + c)**2` over the "
                    "Marchenko-Pastur law of ratio `1/kappa`, `m_k`, `m_k2` the same at `c + kt`, and "
                    "`c = (1 + rho)/alpha`. derive eval solves for them from `alpha`, `kappa`, `tau`, `rho`, "
                    "`lam`.",
                    "Limits: as `tau` to infinity, `kt` tends to `lam` and the formulas equal the errors of the "
                    "population "
                    "ridge optimum `R @ inv(R + (c + lam) * I)` (derived separately; the difference simplifies to "
                    "0). Then "
                    "`alpha` to infinity at `lam = 0`: `e_idg` tends to `rho`, `e_icl` tends to `rho + 1 - kappa` "
                    "for `kappa < 1` and "
                    "`rho` for `kappa > 1`, so `g_task` tends to `1 - kappa` below `kappa = 1` and 0 above.",
                    "Discrepancy: the blog summary (Kempner Institute 2025) states `g_task` tends to `(1 + rho/(1 + "
                    "rho)) * (1 - kappa)` in this "
                    "limit. The derivation gives `1 - kappa`: at `kappa = 1/2`, `rho = 1` the formula gives "
                    "0.5000 at `tau = 10**9`, `alpha = 10**5` (the blog: 0.75), and the other order of limits "
                    "(`alpha` first) diverges like `alpha/tau`, so no order gives the blog's factor. The formula "
                    "itself is confirmed by simulation at finite `alpha`, `tau` (docs/lu_asymptotics.md; e.g. "
                    "`d = 40`, `alpha = tau = 8`: simulated 0.897 with standard error 0.031, formula 0.813, "
                    "limit 0.5, the blog's limit 0.75). The ridgeless e_ICL also agrees to 1e-12 with the "
                    "closed form of Lu et al.'s Result 1 (tests/test_lu_asymptotic.py).")),
    Result(id="lu.double_descent", title="The double-descent peak of the ICL error in `tau`",
           equations=(Equation("at(1 - df2, kt=0, m_k=m_c, m_k2=m_c2, tau=1)", "0"),),
           derive=derive_double_descent,
           sources=(Source(LU2025, "the double descent of Fig. 1"), Source(HASTIE2022)),
           assumptions=("the setting and cited steps of lu.asymptotic_error",),
           remarks=("Ridgeless (`lam = 0`): `1 - df2 = 1 - 1/tau` vanishes at tau_peak = 1 (n = `d**2`, the "
                    "number of parameters); both errors diverge like one over the distance of `tau` from 1 with the "
                    "residues above "
                    "(equal from both sides). At finite `d` the interpolation threshold is n = `d * (d + 1)`.",
                    "For `lam > 0` the pole is gone (`kt > 0`); tau_peak is then the interior maximum of the "
                    "derived `e_icl` in `tau`, found numerically by derive eval (NaN when there is none).")),
]


if __name__ == "__main__":
    from derive.topic import run_topic

    run_topic(__spec__.name)
