r"""Numeric confirmation of ``incontext.kernel_head``, ``incontext.cg_layer``, ``incontext.cg_bound``.

Mirror of ``derive/incontext_cg.py``.  :func:`cg_network` runs the construction
in torch float64 from its definition: tokens are the columns of the embedding
``E`` (slots φ (m rows), y, α, r, p); each layer applies the kernel head
``e_pᵀ E Eᵀ W^KQ E`` plus ``λp``, the aggregator reductions, the two divisions and
the token-wise updates.  Checks:

* ``incontext.kernel_head``: the head equals ``K p`` and the derived ``head``;
  ``K = ΦΦᵀ`` has no singular value beyond the m-th; wrong variant: a Gaussian
  kernel on n > m points, which no width-m head reaches (its best rank-m
  approximation misses it by σ_{m+1}).
* ``incontext.cg_layer``: the network's α after every layer against
  ``scipy.sparse.linalg.cg``'s iterates (tolerance 1e-9 relative: the two
  codes round differently), one layer against the derived ``alpha_next``,
  ``r_next``, ``p_next``; the A-norm decrease with a gate ``a(1 + δ)`` against the
  derived factor ``1 − δ²``; the worst relative error of a ReLU chord of 1/x
  against ``(ϱ − 1)²/(4ϱ)``.  Wrong variants: the head without ``λp``, the factor
  ``1 − δ``, the error ``(ϱ − 1)²/4``; and with gates off by 1e-3 the network no
  longer terminates where exact CG does.
* ``incontext.cg_bound``: on an arcsine-distributed spectrum of K (n = 300,
  cond(K) = 1e4) and λ ∈ {0.01, 0.1, 1}: the A-norm error of every layer is
  below ``2((√κ − 1)/(√κ + 1))^t`` with κ = cond(K + λI), and the layers it
  predicts for 1e-6 are within 3× of the observed; wrong variant: κ = cond(K),
  whose prediction is off by more than 3×.  Termination: a spectrum of three
  distinct eigenvalues is solved at layer 3 and a rank-m kernel at layer m + 1
  (to 1e-10), while layers 2 and m are not (wrong variants).

``samples`` is the number of random instances (None → 5, at most 200).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse.linalg
import torch

from derive.registry import get
from numeric.checks import DeterministicCheck
from numeric.incontext_gd import TOLERANCE, randn, relative_error, setup, verdict

DEFAULT_INSTANCES = 5
MAX_INSTANCES = 200
SCIPY_TOLERANCE = 1e-9  # CG vs scipy's CG: the same recursion, rounded in another order
SLOTS = ("y", "alpha", "r", "p")


def scaled(error: float, tolerance: float) -> float:
    """``error`` rescaled so that ``verdict``'s tolerance 1e-10 stands for ``tolerance`` (a looser one)."""
    return error * TOLERANCE / tolerance


def instance_count(samples: int | None) -> int:
    return max(1, min(int(samples or DEFAULT_INSTANCES), MAX_INSTANCES))


def kernel_head(E: torch.Tensor, m: int) -> torch.Tensor:
    """The head's output row e_pᵀ E Eᵀ W^KQ E, W^KQ = diag(I_m, 0): scores φ_iᵀφ_j, values p_i."""
    W_kq = torch.zeros(E.shape[0], E.shape[0], dtype=E.dtype, device=E.device)
    W_kq[:m, :m] = torch.eye(m, dtype=E.dtype, device=E.device)
    return E[-1] @ E.T @ W_kq @ E


def cg_network(Phi: torch.Tensor, y: torch.Tensor, lam: float, layers: int, gate_error: float = 0.0,
               generator: torch.Generator | None = None, skip: bool = True) -> list[dict]:
    """States (α, r, p) after each layer of the construction, from α = 0, r = p = y.

    ``gate_error``: the divisions return a(1 + δ), b(1 + δ') with δ, δ' = ±gate_error (random signs), as an
    MLP approximating 1/x would.  ``skip=False`` drops the λp term (a wrong variant).
    """
    n, m = Phi.shape
    zeros = torch.zeros_like(y)
    E = torch.cat([Phi.T, torch.stack([y, zeros, y, y])])  # slots: φ, y, α, r, p
    row = {name: m + k for k, name in enumerate(SLOTS)}
    states = []
    for _ in range(layers):
        v = kernel_head(E, m) + (lam * E[row["p"]] if skip else 0.0)
        rho = E[row["r"]] @ E[row["r"]]  # aggregator: query 1, keys and values the r slot
        gamma = E[row["p"]] @ v
        signs = (torch.randint(0, 2, (2,), generator=generator, device=y.device) * 2 - 1).to(y.dtype)
        a = rho / gamma * (1 + gate_error * signs[0])
        E = E.clone()
        E[row["alpha"]] = E[row["alpha"]] + a * E[row["p"]]
        E[row["r"]] = E[row["r"]] - a * v
        b = (E[row["r"]] @ E[row["r"]]) / rho * (1 + gate_error * signs[1])
        E[row["p"]] = E[row["r"]] + b * E[row["p"]]
        states.append({name: E[row[name]].clone() for name in ("alpha", "r", "p")})
    return states


def scipy_iterates(A: np.ndarray, y: np.ndarray, layers: int) -> list[np.ndarray]:
    """``scipy.sparse.linalg.cg``'s iterates x_1..x_layers from x_0 = 0 (its callback)."""
    found: list[np.ndarray] = []
    scipy.sparse.linalg.cg(A, y, x0=np.zeros_like(y), rtol=1e-300, atol=0.0, maxiter=layers,
                           callback=lambda x: found.append(np.array(x)))
    return found


def a_norm(A: torch.Tensor, e: torch.Tensor) -> float:
    return math.sqrt(float(e @ A @ e))


def run_kernel_head(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    device, generator = setup(device, seed)
    head = get("incontext.kernel_head").derivation.values["head"]
    errors, wrong = [], {"Gaussian kernel of rank n > m": []}
    for _ in range(instance_count(samples)):
        n, m = 12, 3
        Phi, p = randn((n, m), generator, device), randn((n,), generator, device)
        E = torch.cat([Phi.T, torch.zeros(3, n, dtype=torch.float64, device=device), p[None]])
        out = kernel_head(E, m)
        K = Phi @ Phi.T
        errors.append(relative_error(out, K @ p))
        errors.append(relative_error(out, head.evaluate({"Phi": Phi.cpu().numpy(), "p": p.cpu().numpy()})))
        singular = torch.linalg.svdvals(K)
        errors.append((singular[m:].max() / singular[0]).item())
        X = randn((n, 2), generator, device)
        K_rbf = torch.exp(-torch.cdist(X, X) ** 2 / 2)
        eigenvalues = torch.linalg.eigvalsh(K_rbf).flip(0)  # descending
        wrong["Gaussian kernel of rank n > m"].append((eigenvalues[m] / eigenvalues[0]).item())
    return verdict(errors, wrong, "head = K p, rank(K) <= m")


def _layer_values(Phi, y, lam, state_before) -> dict:
    return {"Phi": Phi.cpu().numpy(), "lam": lam, **{k: v.cpu().numpy() for k, v in state_before.items()}}


def run_cg_layer(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    device, generator = setup(device, seed)
    values = get("incontext.cg_layer").derivation.values
    reciprocal = values["reciprocal_error"]
    errors, wrong = [], {"head without lam * p": [], "factor 1 - delta": [], "chord error (rat - 1)**2/4": [],
                         "gates off by 1e-3 still terminate": []}
    for _ in range(instance_count(samples)):
        n, m, lam, layers = 30, 8, 0.5, 8
        Phi, y = randn((n, m), generator, device) / math.sqrt(m), randn((n,), generator, device)
        A = Phi @ Phi.T + lam * torch.eye(n, dtype=torch.float64, device=device)
        states = cg_network(Phi, y, lam, layers)
        reference = scipy_iterates(A.cpu().numpy(), y.cpu().numpy(), layers)
        scale = float(torch.linalg.norm(torch.linalg.solve(A, y)))
        for state, x in zip(states, reference):
            errors.append(scaled(float(np.linalg.norm(state["alpha"].cpu().numpy() - x)) / scale, SCIPY_TOLERANCE))
        no_skip = cg_network(Phi, y, lam, layers, skip=False)
        wrong["head without lam * p"].append(
            max(float(np.linalg.norm(s["alpha"].cpu().numpy() - x)) / scale for s, x in zip(no_skip, reference)))
        # one layer against the derived map, from the state after layer 2
        before = {"alpha": states[1]["alpha"], "res": states[1]["r"], "p": states[1]["p"], "y": y}
        numbers = _layer_values(Phi, y, lam, before)
        for name in ("alpha", "r", "p"):
            errors.append(relative_error(states[2][name], values[f"{name}_next"].evaluate(numbers)))
        # the A-norm decrease with a gate a*(1 + delta)
        astar = torch.linalg.solve(A, y)
        alpha, p = states[1]["alpha"], states[1]["p"]
        delta = float(torch.rand(1, generator=generator, device=device)) - 0.5
        exact = float(p @ A @ (astar - alpha)) / float(p @ A @ p)
        f = lambda x: 0.5 * float((x - astar) @ A @ (x - astar))  # noqa: E731
        observed = f(alpha + (1 + delta) * exact * p) - f(alpha)
        derived = values["decrease"].evaluate({"A": A.cpu().numpy(), "p": p.cpu().numpy(),
                                               "alpha": alpha.cpu().numpy(), "astar": astar.cpu().numpy(),
                                               "delta": delta})
        errors.append(abs(observed - derived) / abs(derived))
        full = f(alpha + exact * p) - f(alpha)
        wrong["factor 1 - delta"].append(abs(observed - (1 - delta) * full) / abs(observed))
        # a ReLU chord of 1/x on [c, c * rat]: worst relative error at x* = c (rat + 1)/2
        c, rat = float(torch.rand(1, generator=generator, device=device)) + 0.1, 1.5
        chord = lambda x: 1 / c - (x - c) / (c * c * rat)  # noqa: E731
        grid = np.linspace(c, c * rat, 200_001)
        worst = float(np.max(grid * chord(grid) - 1))
        formula = float(reciprocal.evaluate({"rat": rat}))
        errors.append(scaled(abs(worst - formula) / formula, 1e-8))  # the grid resolves the maximum to ~1e-10
        wrong["chord error (rat - 1)**2/4"].append(abs(worst - (rat - 1) ** 2 / 4) / formula)
        # with inexact gates the rank-m problem is no longer solved at layer m + 1
        small_m = 4
        Phi_small = Phi[:, :small_m]
        A_small = Phi_small @ Phi_small.T + lam * torch.eye(n, dtype=torch.float64, device=device)
        target = torch.linalg.solve(A_small, y)
        noisy = cg_network(Phi_small, y, lam, small_m + 1, gate_error=1e-3, generator=generator)
        wrong["gates off by 1e-3 still terminate"].append(a_norm(A_small, noisy[-1]["alpha"] - target) /
                                                           a_norm(A_small, target))
    return verdict(errors, wrong, f"CG network vs scipy cg per layer (to {SCIPY_TOLERANCE:.0e}), one layer vs the "
                                  "derived map, 1 - delta**2, chord error of 1/x")


def arcsine_spectrum(n: int, low: float, high: float) -> np.ndarray:
    """n eigenvalues at the Chebyshev points of [low, high] (where the CG bound is nearly attained)."""
    k = np.arange(n)
    return low + (high - low) * (1 + np.cos(np.pi * (k + 0.5) / n)) / 2


def cg_errors(A: torch.Tensor, y: torch.Tensor, layers: int) -> list[float]:
    """Relative A-norm errors of plain CG on A α = y (the network's recursion on a given matrix), t = 1..layers."""
    target = torch.linalg.solve(A, y)
    alpha, r = torch.zeros_like(y), y.clone()
    p, out = r.clone(), []
    for _ in range(layers):
        v = A @ p
        rho = r @ r
        a = rho / (p @ v)
        alpha, r_new = alpha + a * p, r - a * v
        p, r = r_new + (r_new @ r_new) / rho * p, r_new
        out.append(a_norm(A, alpha - target) / a_norm(A, target))
    return out


def layers_for(kappa: float, eps: float) -> float:
    """The t at which 2((√κ − 1)/(√κ + 1))^t = ε (the derived ``t_eps``)."""
    root = math.sqrt(kappa)
    return math.log(2 / eps) / math.log((root + 1) / (root - 1))


def run_cg_bound(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    device, generator = setup(device, seed)
    errors, wrong = [], {"cond(K) instead of cond(K + lam I)": [], "terminates after 2 of 3 eigenvalues": [],
                         "rank-m kernel terminates after m layers": []}
    n, eps = 300, 1e-6
    mu = arcsine_spectrum(n, 1e-4, 1.0)
    for _ in range(instance_count(samples)):
        V, _ = torch.linalg.qr(randn((n, n), generator, device))
        y = randn((n,), generator, device)
        for lam in (0.01, 0.1, 1.0):
            A = V @ torch.diag(torch.tensor(mu + lam, device=device)) @ V.T
            kappa_A, kappa_K = (mu.max() + lam) / (mu.min() + lam), mu.max() / mu.min()
            observed = cg_errors(A, y, int(layers_for(kappa_A, eps)) + 5)
            root = math.sqrt(kappa_A)
            rate = (root - 1) / (root + 1)
            errors.append(max(max(0.0, e / (2 * rate ** t) - 1) for t, e in enumerate(observed, 1)))
            reached = next(t for t, e in enumerate(observed, 1) if e <= eps)
            errors.append(0.0 if layers_for(kappa_A, eps) <= 3 * reached else 1.0)  # informative: within 3x
            wrong["cond(K) instead of cond(K + lam I)"].append(max(0.0, layers_for(kappa_K, eps) / reached - 3))
        # three distinct eigenvalues: exact at layer 3
        clustered = np.repeat([0.2, 1.0, 5.0], 10)
        V30, _ = torch.linalg.qr(randn((30, 30), generator, device))
        A3 = V30 @ torch.diag(torch.tensor(clustered, device=device)) @ V30.T
        y30 = randn((30,), generator, device)
        e3 = cg_errors(A3, y30, 3)
        errors.append(scaled(e3[2], 1e-8))
        wrong["terminates after 2 of 3 eigenvalues"].append(e3[1])
        # a rank-m kernel: m + 1 layers of the network
        m, lam = 4, 0.3
        Phi = randn((30, m), generator, device)
        A_m = Phi @ Phi.T + lam * torch.eye(30, dtype=torch.float64, device=device)
        states = cg_network(Phi, y30, lam, m + 1)
        target = torch.linalg.solve(A_m, y30)
        errors.append(scaled(a_norm(A_m, states[m]["alpha"] - target) / a_norm(A_m, target), 1e-8))
        wrong["rank-m kernel terminates after m layers"].append(
            a_norm(A_m, states[m - 1]["alpha"] - target) / a_norm(A_m, target))
    return verdict(errors, wrong, "A-norm error <= 2 rate(cond(K + lam I))**t at every layer and lam, within 3x of "
                                  "the prediction; exact termination at 3 and m + 1 layers (to 1e-8)")


CHECKS = [
    DeterministicCheck(id="incontext.kernel_head", run=run_kernel_head,
                       description="the head vs K p and the derived head; rank(K) <= m; a Gaussian kernel of rank "
                                   "n > m is out of reach"),
    DeterministicCheck(id="incontext.cg_layer", run=run_cg_layer,
                       description="the CG network vs scipy.sparse.linalg.cg per layer, one layer vs the derived "
                                   "map, 1 - delta**2, the chord error of 1/x; wrong variants rejected"),
    DeterministicCheck(id="incontext.cg_bound", run=run_cg_bound,
                       description="A-norm bound with cond(K + lam I) across lam; cond(K) off by > 3x; "
                                   "termination at 3 distinct eigenvalues and at m + 1 layers"),
]
