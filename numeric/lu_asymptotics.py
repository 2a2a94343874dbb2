r"""Numeric confirmation of ``derive/lu_asymptotics.py`` (Lu et al., linear attention in context).

Model (the conventions of ``derive/lu_asymptotics.py``)
-------------------------------------------------------
A prompt: tokens :math:`x_1..x_\ell, x_{\ell+1} \sim \mathcal N(0, I_d/d)`, a task
:math:`w`, labels :math:`y_i = \langle x_i, w\rangle + \varepsilon_i`,
:math:`\varepsilon_i \sim \mathcal N(0, \rho)`.  Features
:math:`f = [h; s] \in \mathbb R^{d+1}`, :math:`h = (d/\ell)\sum_i y_i x_i`,
:math:`s = (1/\ell)\sum_i y_i^2`, :math:`H_Z = x_{\ell+1} f^\top`, prediction
:math:`\hat y = \langle \Gamma, H_Z\rangle = x_{\ell+1}^\top \Gamma f`.

Conditional estimator.  Given the context (:math:`x_{1..\ell}, \varepsilon_{1..\ell}, w`),
the query :math:`x_{\ell+1}` and its noise are independent of everything else, so
:math:`\mathbb E[(y_{\ell+1} - \hat y)^2 \mid \text{context}] = \|\Gamma f - w\|^2/d + \rho`
exactly; :func:`error_samples` returns these conditional values (their mean is the
error; the variance is smaller than that of the squared error itself).

Checks (``CHECKS``)
-------------------
* ``lu.finite_d_error`` — simulated error of a random readout :math:`\Gamma` at
  d = 3, ℓ = 5 (fresh tasks, and a fixed task) against the derived ``e_icl`` and
  ``e_task``; controls: the seeds' :math:`H_Z` without the factor d/ℓ (derived by
  the engine too), and the 1/ℓ terms dropped (the ℓ → ∞ error).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from numeric.checks import MonteCarloCheck

DTYPE = torch.float64


# ----------------------------------------------------------------- the derived values
def finite_d_values() -> dict:
    from derive.lu_asymptotics import finite_d

    return finite_d()


def split_readout(gamma: np.ndarray) -> dict:
    """``{"G": Γ[:, :d], "g": Γ[:, d]}``."""
    gamma = np.asarray(gamma, dtype=np.float64)
    return {"G": gamma[:, :-1], "g": gamma[:, -1]}


def derived_error(gamma: np.ndarray, ell: int, rho: float, w: np.ndarray | None = None, seed_features=False) -> float:
    """``lu.finite_d_error``'s e_icl (``w`` None) or e_task at a readout Γ = [G | g]."""
    values = finite_d_values()
    name = "seed_e_icl" if seed_features else ("e_icl" if w is None else "e_task")
    inputs = {**split_readout(gamma), "rho": float(rho), "ell": int(ell)}
    if w is not None:
        inputs["w"] = np.asarray(w, dtype=np.float64)
    return float(values[name].evaluate(inputs))


def pool_error(gamma: np.ndarray, ell: int, rho: float, pool: np.ndarray) -> float:
    """e_IDG: the average of e(Γ; w) over the tasks of the pool (rows of ``pool``), from the derived e_task.

    e_task is a polynomial in G, g, w; its terms are quadratic or quartic in w, so the pool average is
    computed term by term from the pool's moments — here simply by evaluating it at each task (k small)
    or, for large pools, by :func:`pool_error_fast`.
    """
    return float(np.mean([derived_error(gamma, ell, rho, w) for w in np.asarray(pool)]))


# ----------------------------------------------------------------- simulation
def draw_features(task: torch.Tensor, ell: int, rho: float, generator: torch.Generator,
                  seed_features: bool = False) -> torch.Tensor:
    """Context features f = [h; s] (batch, d+1) for tasks ``task`` (batch, d), from the definition."""
    batch, d = task.shape
    x = torch.randn(batch, ell, d, generator=generator, dtype=DTYPE, device=task.device) / d ** 0.5
    eps = torch.randn(batch, ell, generator=generator, dtype=DTYPE, device=task.device) * rho ** 0.5
    y = torch.einsum("bld,bd->bl", x, task) + eps
    scale = 1.0 / ell if seed_features else d / ell
    h = scale * torch.einsum("bl,bld->bd", y, x)
    s = (y * y).mean(dim=1, keepdim=True)
    return torch.cat([h, s], dim=1)


def error_samples(gamma: np.ndarray, ell: int, rho: float, batch: int, generator: torch.Generator,
                  device, w: np.ndarray | None = None, seed_features: bool = False) -> torch.Tensor:
    """Per-prompt conditional errors ‖Γf − w‖²/d + ρ (fresh task w ~ N(0, I) unless ``w`` is given)."""
    G = torch.as_tensor(np.asarray(gamma), dtype=DTYPE, device=device)
    d = G.shape[0]
    if w is None:
        task = torch.randn(batch, d, generator=generator, dtype=DTYPE, device=device)
    else:
        task = torch.as_tensor(np.asarray(w), dtype=DTYPE, device=device).expand(batch, d)
    f = draw_features(task, ell, rho, generator, seed_features)
    residual = f @ G.T - task
    return (residual * residual).sum(dim=1) / d + rho


def query_error_samples(gamma: np.ndarray, ell: int, rho: float, batch: int, generator: torch.Generator,
                        device, tasks: torch.Tensor) -> torch.Tensor:
    """Plain Monte Carlo: (y_{ℓ+1} − ŷ)² of whole fresh prompts, query drawn too (tasks given per prompt)."""
    G = torch.as_tensor(np.asarray(gamma), dtype=DTYPE, device=device)
    d = G.shape[0]
    f = draw_features(tasks, ell, rho, generator)
    xq = torch.randn(batch, d, generator=generator, dtype=DTYPE, device=device) / d ** 0.5
    yq = (xq * tasks).sum(dim=1) + torch.randn(batch, generator=generator, dtype=DTYPE, device=device) * rho ** 0.5
    yhat = ((xq @ G) * f).sum(dim=1)
    return (yq - yhat) ** 2


# ----------------------------------------------------------------- the finite-d check
FINITE_D = {"d": 3, "ell": 5}


def finite_d_instance(fixed_task: bool):
    def make(rng: np.random.Generator) -> dict[str, Any]:
        d = FINITE_D["d"]
        # a readout near the good one (G ~ I) with a visible g column, so every term matters
        gamma = np.concatenate([np.eye(d) + 0.4 * rng.standard_normal((d, d)), 0.3 * rng.standard_normal((d, 1))],
                               axis=1)
        inst = {"gamma": gamma, "ell": FINITE_D["ell"], "rho": float(rng.uniform(0.2, 0.8))}
        if fixed_task:
            inst["w"] = rng.standard_normal(d)
        return inst

    return make


def _exact(inst, seed_features=False):
    return np.asarray(derived_error(inst["gamma"], inst["ell"], inst["rho"], inst.get("w"), seed_features))


def _sample(inst, batch, generator, device):
    return error_samples(inst["gamma"], inst["ell"], inst["rho"], batch, generator, device, inst.get("w"))


def _infinite_context(inst):
    """The ℓ → ∞ error: every 1/ℓ term of the derived polynomial dropped (a wrong formula)."""
    return np.asarray(derived_error(inst["gamma"], 10 ** 9, inst["rho"], inst.get("w")))


FINITE_D_SIZES = {"samples": 2_000_000, "ci_samples": 400_000, "batch": 200_000}

CHECKS = [
    MonteCarloCheck(
        id="lu.finite_d_error", instance=finite_d_instance(False), exact=_exact, sample=_sample,
        wrong={"seed H_Z without d/ell": lambda inst: _exact(inst, seed_features=True),
               "1/ell terms dropped (ell -> infinity)": _infinite_context},
        **FINITE_D_SIZES, description="simulated e_ICL of a random readout, d = 3, ell = 5 (query integrated out)"),
    MonteCarloCheck(
        id="lu.finite_d_error", instance=finite_d_instance(True), exact=_exact, sample=_sample,
        wrong={"1/ell terms dropped (ell -> infinity)": _infinite_context},
        **FINITE_D_SIZES, description="simulated e(Gamma; w) at a fixed task, d = 3, ell = 5"),
]


# ----------------------------------------------------------------- pretraining and the closed-form fit
def draw_pretraining(d: int, ell: int, k: int, n: int, rho: float, generator: torch.Generator, device,
                     chunk: int = 4096) -> dict:
    """The pool (k, d), and n sequences: queries (n, d), features f = [h; s] (n, d+1), labels (n,).

    Each sequence's task is drawn uniformly from the pool; tokens, noise and query are fresh.
    """
    pool = torch.randn(k, d, generator=generator, dtype=DTYPE, device=device)
    which = torch.randint(0, k, (n,), generator=generator, device=device)
    features = torch.empty(n, d + 1, dtype=DTYPE, device=device)
    for start in range(0, n, chunk):  # the (chunk, ell, d) token block bounds memory
        stop = min(start + chunk, n)
        features[start:stop] = draw_features(pool[which[start:stop]], ell, rho, generator)
    query = torch.randn(n, d, generator=generator, dtype=DTYPE, device=device) / d ** 0.5
    labels = (query * pool[which]).sum(dim=1) + torch.randn(n, generator=generator, dtype=DTYPE,
                                                           device=device) * rho ** 0.5
    return {"pool": pool, "query": query, "features": features, "labels": labels}


def fit_readout(query: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, lam: float,
                chunk: int = 2048) -> torch.Tensor:
    """Γ* = argmin Σ_μ (y^μ − x_μᵀ Γ f_μ)² + (n/d) λ ‖Γ‖²_F in closed form, using the rank-one structure.

    The design row of sequence μ is vec(x_μ f_μᵀ) (p = d(d+1) entries), never formed whole:

    * dual form (n < p): the kernel ⟨vec(x_μ f_μᵀ), vec(x_ν f_νᵀ)⟩ = (x_μᵀx_ν)(f_μᵀf_ν) is the Hadamard
      product (X Xᵀ) ∘ (F Fᵀ) (cost n²(2d+1)); a = (K + (n/d)λ I)⁻¹ y and Γ = Xᵀ diag(a) F.  At λ = 0 this
      is the minimum-norm interpolator.
    * primal form (n ≥ p): the p×p Gram Σ_μ (x_μ x_μᵀ) ⊗ (f_μ f_μᵀ) accumulated over chunks of rows, the
      right side Xᵀ diag(y) F; at λ = 0, least squares.
    """
    n, d = query.shape
    p = d * (d + 1)
    ridge = n / d * lam
    if n < p:
        kernel = (query @ query.T) * (features @ features.T)
        kernel.diagonal().add_(ridge)
        weights = torch.linalg.solve(kernel, labels)
        return query.T @ (weights[:, None] * features)
    gram = torch.zeros(p, p, dtype=query.dtype, device=query.device)
    for start in range(0, n, chunk):
        rows = (query[start:start + chunk, :, None] * features[start:start + chunk, None, :]).reshape(-1, p)
        gram.addmm_(rows.T, rows)
    gram.diagonal().add_(ridge)
    right = (query.T @ (labels[:, None] * features)).reshape(p)
    return torch.linalg.solve(gram, right).reshape(d, d + 1)


def fit_naive(query: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """The same fit through the dense n×p design matrix (a reference for tests and the benchmark)."""
    n, d = query.shape
    design = (query[:, :, None] * features[:, None, :]).reshape(n, -1)
    if lam == 0:
        return torch.linalg.lstsq(design, labels[:, None], driver="gelsd").solution.reshape(d, d + 1)
    gram = design.T @ design + n / d * lam * torch.eye(design.shape[1], dtype=design.dtype, device=design.device)
    return torch.linalg.solve(gram, design.T @ labels).reshape(d, d + 1)


def task_errors(gamma: np.ndarray, ell: int, rho: float, tasks: np.ndarray) -> np.ndarray:
    """e(Γ; w) of ``lu.finite_d_error`` at each row of ``tasks``, from the derived polynomial's invariants.

    The derived e_task is evaluated once per task (the polynomial's own evaluator), so no formula is
    retyped here.
    """
    return np.array([derived_error(gamma, ell, rho, w) for w in np.asarray(tasks)])


def simulate_point(d: int, alpha: float, kappa: float, tau: float, rho: float, lam: float, seed: int,
                   device="cpu") -> dict:
    """One fitted point: draw, fit Γ*, and its e_ICL, e_IDG, g_task from ``lu.finite_d_error``."""
    ell, k, n = max(1, round(alpha * d)), max(1, round(kappa * d)), max(1, round(tau * d * d))
    generator = torch.Generator(device=device).manual_seed(int(seed))
    data = draw_pretraining(d, ell, k, n, rho, generator, device)
    gamma = fit_readout(data["query"], data["features"], data["labels"], lam).cpu().numpy()
    e_icl = derived_error(gamma, ell, rho)
    e_idg = float(np.mean(task_errors(gamma, ell, rho, data["pool"].cpu().numpy())))
    return {"d": d, "ell": ell, "k": k, "n": n, "alpha": alpha, "kappa": kappa, "tau": tau, "rho": rho, "lam": lam,
            "seed": int(seed), "e_icl": e_icl, "e_idg": e_idg, "g_task": e_icl - e_idg, "gamma": gamma}
