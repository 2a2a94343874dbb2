"""Attention layers as conjugate-gradient steps for kernel ridge regression (MetaRepICL, aim 1).

The problem: (K + λI)α = y on n context tokens (``n`` is the context length N
as a dimension, printed N), with the kernel of a finite feature map
φ: R^d → R^m, ``K = Phi @ Phi.T`` (``Phi`` n×m, row j is φ(x_j)ᵀ).  Token j
carries (φ_j; y_j; α_j; r_j; p_j): the embedding ``E`` has the blocks ``Phi.T``,
``y.T``, ``alpha.T``, ``r.T``, ``p.T``.

``incontext.kernel_head``
    A head with W^KQ = diag(I_m, 0, …) reading the p-slot computes the row
    pᵀΦΦᵀ = (Kp)ᵀ, i.e. (Kp)_j = Σᵢ φ(x_j)ᵀφ(x_i) pᵢ, exactly; with Φ = QR (Q n×m
    with orthonormal columns) (I − QQᵀ)K = 0, so rank(K) ≤ m: a head of width m
    computes Kp exactly only for kernels of rank at most m.
``incontext.cg_layer``
    One layer of the construction as a map on (α, r, p): the kernel head and a
    λ-skip give v = (K + λI)p, two aggregator reductions give ρ = rᵀr and
    γ = pᵀv, a division gives a = ρ/γ, the MLP updates α₊ = α + a p,
    r₊ = r − a v, a second reduction and division give b = r₊ᵀr₊/ρ and
    p₊ = r₊ + b p: this is a CG (Hestenes–Stiefel) iteration.  The residual
    invariant r = y − (K + λI)α survives any gate a (so an approximate
    division keeps it), and a relative error δ in a shrinks the decrease of
    the A-norm error by exactly the factor 1 − δ².  The divisions come from
    outside linear attention: an MLP approximating 1/x by k linear pieces on
    a geometric grid of [x_min, x_max] has relative error (ϱ − 1)²/(4ϱ),
    ϱ = (x_max/x_min)^{1/k}, inside the interval and none guaranteed outside.
``incontext.cg_bound``
    K + λI = V(D + λI)Vᵀ: its eigenvalues are μᵢ + λ, κ(K + λI) =
    (μ_max + λ)/(μ_min + λ) decreases in λ and is finite for λ > 0 even when
    K is singular; the cited CG bound ‖α_t − α*‖_A ≤ 2((√κ − 1)/(√κ + 1))^t
    ‖α*‖_A holds with this κ.  With rank(K) ≤ m, K + λI equals λ on the
    complement of range(Φ), so it has at most m + 1 distinct eigenvalues and
    CG terminates after at most m + 1 layers (exact arithmetic).

Run: ``python -m derive show incontext.cg_layer``; numeric mirror ``numeric/incontext_cg.py``.
"""

from __future__ import annotations

import functools

import sympy

from derive.engine import grammar as g
from derive.engine.blocks import block_matmul, block_transpose
from derive.engine.pipeline import declare
from derive.engine.polynomial import Polynomial
from derive.engine.statements import evaluate
from derive.references import CAWLEY2025, HESTENES1952, SAAD2003
from derive.registry import Derivation, Equation, Result, Source, Step

P = g.parse
LATEX_NAMES = {"n": "N", "lam": "\\lambda", "Phi": "\\Phi", "alpha": "\\alpha", "astar": "{\\alpha^{*}}",
               "delta": "\\delta", "rat": "\\varrho", "mu_max": "{\\mu_{\\max}}", "mu_min": "{\\mu_{\\min}}",
               "kappa_A": "\\kappa", "acg": "a", "bcg": "b", "alpha_next": "{\\alpha_{+}}", "r_next": "{r_{+}}",
               "p_next": "{p_{+}}", "rho_agg": "\\rho", "gamma_agg": "\\gamma", "alpha_gate": "{\\alpha_{a}}",
               "r_gate": "{r_{a}}", "astep": "{a^{*}}"}
# one context for the layer, the division error and the chord of 1/x (a result's values share one context)
LAYER = declare(dims=["n", "m"], matrices={"Phi": "n,m", "Q": "n,m:orthonormal", "R": "m,m", "A": "n:symmetric"},
                vectors={"p": "n", "res": "n", "alpha": "n", "y": "n", "astar": "n"},
                scalars={"lam": "real", "a": "real", "delta": "real", "c": "positive", "rat": "positive",
                         "x": "positive"}, latex_names=LATEX_NAMES)
KERNEL = ("K", "Phi @ Phi.T")
SYSTEM = "(K + lam * I(n))"

# the token slots: φ (m rows), y, α, r, p (one row each)
SLOTS = ("phi", "y", "alpha", "res", "p")
E = [[P("Phi.T")], [P("y.T")], [P("alpha.T")], [P("res.T")], [P("p.T")]]


def select(slot: str) -> list:
    """The block row that reads one slot of a token (``e_slot.T``); φ's is I(m)."""
    return [[P("I(m)") if s == slot == "phi" else (P("1") if s == slot else None) for s in SLOTS]]


def _poly(blocks: list) -> Polynomial:
    (entry,), = blocks
    return Polynomial.of(entry, LAYER)


# ---------------------------------------------------------------- the kernel head

@functools.lru_cache(maxsize=None)
def kernel_head() -> dict:
    """The head's output row e_pᵀ E Eᵀ W^KQ E with W^KQ = diag(I_m, 0, 0, 0, 0): scores φ_iᵀφ_j, values p_i.

    >>> print(kernel_head()["head"])
    p.T @ Phi @ Phi.T
    """
    W_kq = [[P("I(m)") if i == j == 0 else None for j in range(len(SLOTS))] for i in range(len(SLOTS))]
    head = _poly(block_matmul(block_matmul(block_matmul(select("p"), E), block_transpose(E)), block_matmul(W_kq, E)))
    rank = evaluate("(I(n) - Q @ Q.T) @ at(K, Phi=Q @ R)", LAYER, dict([KERNEL]))
    return {"head": head, "rank_residual": rank, "factored": evaluate("at(K, Phi=Q @ R)", LAYER, dict([KERNEL]))}


def derive_kernel_head() -> Derivation:
    h = kernel_head()
    return Derivation(
        steps=(
            Step("head", h["head"], "block algebra: values read the `p` slot, keys and queries the `Phi` slot "
                                    "(`WKQ` has the one block `I(m)`), over the `n` context tokens"),
            Step("at(K, Phi=Q @ R)", h["factored"], "`Phi = Q @ R` with `Q.T @ Q = I(m)` (a thin QR factorization)"),
            Step("(I(n) - Q @ Q.T) @ at(K, Phi=Q @ R)", h["rank_residual"], "`K` maps into the `m`-dimensional "
                                                                             "column space of `Q`: rank at most `m`"),
        ),
        values=h, context=LAYER, definitions={"head": h["head"]})


# ---------------------------------------------------------------- one CG layer

A_CG = ("acg", f"(res.T @ res) / (p.T @ {SYSTEM} @ p)")
B_CG = ("bcg", f"((res - acg * {SYSTEM} @ p).T @ (res - acg * {SYSTEM} @ p)) / (res.T @ res)")


@functools.lru_cache(maxsize=None)
def cg_layer() -> dict:
    """The layer's sublayers by block algebra: head + λ-skip, aggregators, divisions, MLP updates."""
    head = kernel_head()["head"]
    v_row = head + Polynomial.of("lam * p.T", LAYER)  # the λ-skip: v = (K + λI)p
    read = lambda slot: _poly(block_matmul(select(slot), E))  # noqa: E731  (a 1×n row)
    rho = read("res") @ read("res").T  # aggregator token: query 1, keys and values the r slot
    gamma = read("p") @ v_row.T  # keys the p slot, values the v slot
    a = rho / gamma  # the division: not a linear-attention operation
    alpha_next = read("alpha").T + a * read("p").T
    r_next = read("res").T - a * v_row.T
    rho_next = r_next.T @ r_next  # the same aggregator on the new residual
    p_next = r_next + (rho_next / rho) * read("p").T
    gate = Polynomial.of("a", LAYER)
    alpha_gate, r_gate = read("alpha").T + gate * read("p").T, read("res").T - gate * v_row.T
    return {"v": v_row.T, "rho_agg": rho, "gamma_agg": gamma, "alpha_next": alpha_next, "r_next": r_next,
            "p_next": p_next, "alpha_gate": alpha_gate, "r_gate": r_gate}


DIVISION = LAYER
A_NORM = ("f", "(alpha - astar).T @ A @ (alpha - astar) / 2")
EXACT_STEP = ("astep", "(p.T @ A @ (astar - alpha)) / (p.T @ A @ p)")
RECIPROCAL = LAYER
INTERPOLANT = "1/c - (x - c)/(c**2 * rat)"  # the chord of 1/x between c and c·ϱ (what a ReLU piece computes)


@functools.lru_cache(maxsize=None)
def division_error() -> dict:
    """The A-norm decrease with a gate a*(1 + δ), and the chord error of 1/x."""
    definitions = dict([A_NORM, EXACT_STEP])
    decrease = evaluate("at(f, alpha=alpha + (1 + delta) * astep * p) - f", DIVISION, definitions)
    chord = Polynomial.of(INTERPOLANT, RECIPROCAL)
    assert chord.substitute({"x": "c"}) == Polynomial.of("1/c", RECIPROCAL)  # the chord meets 1/x at both ends
    assert chord.substitute({"x": "c * rat"}) == Polynomial.of("1/(c * rat)", RECIPROCAL)
    c, rat, x = (RECIPROCAL.symbol(s) for s in ("c", "rat", "x"))
    relative = sympy.expand(x * chord.scalar - 1)  # x·chord(x) − 1 ≥ 0 on [c, cϱ]: the relative error
    (x_star,) = sympy.solve(sympy.diff(relative, x), x)
    worst = sympy.factor(relative.subs(x, x_star))
    return {"decrease": decrease, "relative": relative, "x_star": x_star, "worst": worst,
            "worst_poly": Polynomial((1, 1), {(): sympy.expand(worst)}, RECIPROCAL)}


def derive_cg_layer() -> Derivation:
    s, e = cg_layer(), division_error()
    definitions = dict([KERNEL, A_CG, B_CG])
    invariant = evaluate(f"at(r_gate + {SYSTEM} @ alpha_gate, res=y - {SYSTEM} @ alpha)", LAYER,
                         {**definitions, "r_gate": s["r_gate"], "alpha_gate": s["alpha_gate"]})
    return Derivation(
        steps=(
            Step("v", s["v"], "the kernel head (result incontext.kernel_head) plus `lam` times the `p` slot"),
            Step("rho_agg", s["rho_agg"], "an aggregator token whose query is 1 and whose keys and values both "
                                          "read the `res` slot: one linear-attention head"),
            Step("gamma_agg", s["gamma_agg"], "keys read the `p` slot, values the `v` slot"),
            Step("alpha_next", s["alpha_next"], "the MLP's update with `a = rho_agg / gamma_agg` (the division)"),
            Step("r_next", s["r_next"], "the same gate on `v`"),
            Step("p_next", s["p_next"], "a second aggregator on `r_next` and the division `b = (r_next.T @ r_next) "
                                        "/ rho_agg`"),
            Step(f"at(r_gate + {SYSTEM} @ alpha_gate, res=y - {SYSTEM} @ alpha)", invariant,
                 "with any gate `a` (an approximate division too) the residual stays `y - (K + lam * I(n)) @ alpha`"),
            Step("at(f, alpha=alpha + (1 + delta) * astep * p) - f", e["decrease"],
                 "a gate off by the factor `1 + delta` from the exact line search `astep` along `p`, with "
                 "`f` half the squared `A`-norm error: the decrease shrinks by the factor `1 - delta**2`"),
            Step("x * chord - 1", e["relative"], "the relative error of the chord of `1/x` between `c` and "
                                                 "`c * rat` (one linear piece of a ReLU MLP)"),
            Step("x_max_error", e["x_star"], "where its derivative in `x` vanishes (sympy)"),
            Step("max_relative_error", e["worst"], "its value there, the worst relative error of the piece"),
        ),
        values={**s, "invariant": invariant, "decrease": e["decrease"], "reciprocal_error": e["worst_poly"]},
        context=LAYER, definitions={k: s[k] for k in ("alpha_next", "r_next", "p_next", "rho_agg", "gamma_agg",
                                                       "alpha_gate", "r_gate")})


# ---------------------------------------------------------------- the bound and termination

SPECTRUM = declare(dims=["n", "m"], matrices={"K": "n:symmetric", "V": "n:orthogonal", "D": "n:symmetric",
                                              "Q": "n,m:orthonormal", "C": "m:symmetric"},
                   scalars={"lam": "positive", "mu_max": "positive", "mu_min": "positive"},
                   latex_names=LATEX_NAMES)
KAPPA = ("kappa_A", "(mu_max + lam) / (mu_min + lam)")


@functools.lru_cache(maxsize=None)
def bound() -> dict:
    shifted = evaluate(f"at({SYSTEM}, K=V @ D @ V.T)", SPECTRUM, dict([KAPPA]))
    slope = evaluate("grad(kappa_A, lam)", SPECTRUM, dict([KAPPA]))
    slope = sympy.factor(sympy.together(slope.scalar))  # the engine expands; sympy puts it over one denominator
    low_rank = evaluate(f"at({SYSTEM} - lam * I(n), K=Q @ C @ Q.T) @ (I(n) - Q @ Q.T)", SPECTRUM)
    kappa, eps = sympy.symbols("kappa epsilon", positive=True)
    rate = (kappa ** sympy.Rational(1, 2) - 1) / (kappa ** sympy.Rational(1, 2) + 1)
    layers = sympy.log(2 / eps) / sympy.log(1 / rate)  # 2·rate^t ≤ ε
    large_kappa = sympy.limit(layers / (sympy.sqrt(kappa) * sympy.log(2 / eps)), kappa, sympy.oo)
    return {"shifted": shifted, "slope": slope, "low_rank": low_rank, "rate": rate, "layers": layers,
            "large_kappa": large_kappa}


def derive_cg_bound() -> Derivation:
    b = bound()
    return Derivation(
        steps=(
            Step(f"at({SYSTEM}, K=V @ D @ V.T)", b["shifted"], "`K = V @ D @ V.T` (`V` orthogonal, `D` "
                                                              "diagonal): the eigenvalues shift by `lam`"),
            Step("kappa_A", Polynomial.of(KAPPA[1], SPECTRUM), "so the condition number of the system matrix"),
            Step("grad(kappa_A, lam)", b["slope"], "negative when `mu_max > mu_min`: `lam` lowers it, and at "
                                                   "`mu_min = 0` (a singular `K`) it is still finite"),
            Step("rate", b["rate"], "the factor per layer of the CG bound (cited: Saad 2003, Section 6.11.3): "
                                    "after t layers the bound is 2 times `rate` to the power t, below epsilon "
                                    "after log(2/epsilon)/log(1/rate) layers, which for large `kappa` is "
                                    f"{b['large_kappa']} times `kappa**(1/2)` times log(2/epsilon) (sympy's limit)"),
            Step(f"at({SYSTEM} - lam * I(n), K=Q @ C @ Q.T) @ (I(n) - Q @ Q.T)", b["low_rank"],
                 "for a kernel of rank `m` (`K = Q @ C @ Q.T`, `Q.T @ Q = I(m)`), `K + lam * I(n)` is `lam` on "
                 "the complement of the column space of `Q`: at most `m + 1` distinct eigenvalues, so CG "
                 "terminates after at most `m + 1` layers (cited: the Krylov space has at most that dimension)"),
        ),
        values={"shifted": b["shifted"], "low_rank": b["low_rank"]}, context=SPECTRUM)


# ---------------------------------------------------------------- the registry

TOKENS = ("`n` context tokens (`n` is the context length N); token `j` carries `Phi.T @ e_j` (its features, "
          "`m` of them), `y[j]`, and its entries of the CG state: the iterate `alpha`, the residual `res` and "
          "the direction `p`",)
SOURCES = (Source(CAWLEY2025, "Aim 1"), Source(HESTENES1952))
READING_ORDER = 90  # where this module's results stand in the document and the lists (lower first)

RESULTS = [
    Result(id="incontext.kernel_head", title="A head with features of width `m` computes `K @ p` exactly, and only "
                                             "for kernels of rank at most `m`",
           equations=(Equation("head", "(K @ p).T", value="head"),
                      Equation("(I(n) - Q @ Q.T) @ at(K, Phi=Q @ R)", "zeros(n, n)", value="rank_residual")),
           derive=derive_kernel_head, where=(KERNEL,), sources=(Source(CAWLEY2025, "Aim 1"),),
           assumptions=TOKENS + ("the head has no softmax and no `1/n`: scores `Phi[i] @ Phi[j].T`, values `p[i]`",
                                 "`Phi = Q @ R` is a thin QR factorization (`Q.T @ Q = I(m)`)"),
           remarks=("Entrywise: the j-th entry of `K @ p` is the sum over i of the feature inner product of tokens "
                    "j and i times the i-th entry of `p`, for every kernel with a feature map of dimension `m`.",
                    "A kernel of rank above `m` (a Gaussian kernel on `n > m` distinct points has rank `n`) is out "
                    "of reach of one head of width `m`: by Eckart–Young any `Phi @ Phi.T` misses it by at least "
                    "its `(m+1)`-th eigenvalue in operator norm. The MetaRepICL post's 'width limits accuracy' is this "
                    "statement; its 'effective dimension' link is not derived here.")),
    Result(id="incontext.cg_layer", title="One layer of the construction is one CG iteration, given two divisions",
           equations=(Equation("rho_agg", "res.T @ res"),
                      Equation("gamma_agg", f"p.T @ {SYSTEM} @ p"),
                      Equation("alpha_next", "alpha + acg * p"),
                      Equation("r_next", f"res - acg * {SYSTEM} @ p"),
                      Equation("p_next", f"res - acg * {SYSTEM} @ p + bcg * p"),
                      Equation(f"at(r_gate + {SYSTEM} @ alpha_gate, res=y - {SYSTEM} @ alpha)", "y",
                               value="invariant")),
           derive=derive_cg_layer, where=(KERNEL, A_CG, B_CG), sources=SOURCES,
           assumptions=TOKENS + ("the sublayers: the kernel head and a skip adding `lam * p` (the `v` slot), "
                                 "aggregator heads for `res.T @ res` and `p.T @ v`, a division unit for `a` and `b`, "
                                 "and a token-wise MLP for the updates",),
           remarks=("`acg` and `bcg` are the Hestenes–Stiefel step sizes, so the layer is a CG iteration for "
                    "`(K + lam * I(n)) @ alpha = y` started from `alpha = 0`, `res = p = y`.",
                    "The divisions are not linear attention: heads and ReLU MLPs give products and sums, never "
                    "`1/x`. They need a normalization (softmax's row sums, a layer norm) or an MLP fitted to `1/x` "
                    "on an interval. An MLP with k linear pieces on a geometric grid of an interval [x_min, x_max] has "
                    "relative error `(rat - 1)**2/(4 * rat)` with `rat` = (x_max/x_min)^(1/k), inside the interval; "
                    "`res.T @ res` shrinks with every layer and leaves any fixed interval, so a fixed MLP serves "
                    "finitely many layers.",
                    "A gate with relative error `delta` keeps the residual invariant (any gate does) and shrinks "
                    "the `A`-norm decrease along `p` by `1 - delta**2` (derived in the steps), but `p` is no longer "
                    "conjugate to the earlier directions: exact termination is lost (the numeric mirror shows it). "
                    "The MetaRepICL post's 'the stack runs t CG iterations' holds with exact divisions only.")),
    Result(id="incontext.cg_bound", title="The CG rate is set by the condition number of `K + lam * I(n)`, not of "
                                          "`K`; a rank-`m` kernel terminates in `m + 1` layers",
           equations=(Equation(f"at({SYSTEM}, K=V @ D @ V.T)", "V @ (D + lam * I(n)) @ V.T", value="shifted"),
                      Equation(f"at({SYSTEM} - lam * I(n), K=Q @ C @ Q.T) @ (I(n) - Q @ Q.T)", "zeros(n, n)",
                               value="low_rank")),
           derive=derive_cg_bound, where=(KAPPA,),
           sources=(Source(SAAD2003, "Section 6.11.3, Theorem 6.29"),) + SOURCES,
           assumptions=("`K` is symmetric positive semi-definite with extreme eigenvalues `mu_max`, `mu_min`; "
                        "`lam > 0`; CG starts from `alpha = 0`",),
           remarks=("The bound (cited): the `A`-norm error after t layers is at most 2 times `(kappa_A**(1/2) - 1)/"
                    "(kappa_A**(1/2) + 1)` to the power t times the initial one, with `kappa_A` the condition "
                    "number of `A = K + lam * I(n)`. The "
                    "MetaRepICL post's 'rate governed by the condition number of K' is wrong: `kappa_A` is "
                    "below cond(K) for "
                    "`lam > 0`, and cond(K) is infinite for every kernel of rank below `n` (every width-`m` head "
                    "with `m < n`).",
                    "Exact termination: after as many layers as `K + lam * I(n)` has distinct eigenvalues, at most "
                    "`m + 1` for a rank-`m` kernel, in exact arithmetic and with exact divisions; in floating "
                    "point to rounding.")),
]


if __name__ == "__main__":
    from derive.topic import run_topic

    run_topic(__spec__.name)
