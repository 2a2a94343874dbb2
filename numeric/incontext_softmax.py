r"""Numeric confirmation of ``incontext.softmax_smoother`` (mirror of ``derive/incontext_softmax.py``).

On random queries Q (L×d), keys Kx (n×d) and values V in float64:

* ``torch.softmax(Q Kxᵀ/√d) V`` equals ``D⁻¹ K_exp V`` and ``D̃⁻¹ K_rbf D_k V`` (the
  derived factorization, evaluated from the ``normalised`` value) to 1e-12;
  wrong variants: the unnormalised ``K_exp V`` and the plain Gaussian smoother
  without the key weights ``D_k``;
* ``λ`` times the kernel-ridge prediction ``K_q (K + λI)⁻¹ y`` (K = K_exp on the
  keys) approaches ``K_q y`` at rate 1/λ: the gap at 10λ is a tenth of that at λ
  (to 2 %), for λ from 1e4·‖K‖; wrong variant: softmax's ``D⁻¹ K_q y`` as that
  limit, which stays a finite distance away;
* the seed's alignment measure ``‖D⁻¹K_exp − K_exp‖₂/‖K_exp‖₂`` is reported (it is
  of order one for identical kernels).

``samples`` is the number of random instances (None → 20, at most 2000).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from derive.registry import get
from numeric.checks import DeterministicCheck
from numeric.incontext_gd import TOLERANCE, instance_count, randn, relative_error, setup, verdict


def exponential_kernel(Q: torch.Tensor, Kx: torch.Tensor) -> torch.Tensor:
    """K_exp[j, i] = exp(q_jᵀk_i/√d)."""
    return torch.exp(Q @ Kx.T / math.sqrt(Q.shape[1]))


def factors(Q: torch.Tensor, Kx: torch.Tensor) -> dict:
    """D_q, K_rbf, D_k with K_exp = D_q K_rbf D_k, and D̃ = row sums of K_rbf D_k."""
    root = math.sqrt(Q.shape[1])
    D_q = torch.diag(torch.exp((Q * Q).sum(1) / (2 * root)))
    D_k = torch.diag(torch.exp((Kx * Kx).sum(1) / (2 * root)))
    K_rbf = torch.exp(-torch.cdist(Q, Kx) ** 2 / (2 * root))
    Dt = torch.diag((K_rbf @ D_k).sum(1))
    return {"D_q": D_q, "D_k": D_k, "K_rbf": K_rbf, "Dt": Dt}


def run_softmax(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    device, generator = setup(device, seed)
    normalised = get("incontext.softmax_smoother").derivation.values["normalised"]
    errors, wrong = [], {"unnormalised K_exp V": [], "Gaussian smoother without D_k": [],
                         "softmax as the lam -> oo limit of lam * KRR": []}
    alignment = []
    for _ in range(instance_count(samples)):
        L, n, d = 5, 7, 3
        Q, Kx, V = randn((L, d), generator, device), randn((n, d), generator, device), randn((n, 2), generator, device)
        attention = torch.softmax(Q @ Kx.T / math.sqrt(d), dim=1) @ V
        K_exp = exponential_kernel(Q, Kx)
        D = torch.diag(K_exp.sum(1))
        errors.append(relative_error(attention, torch.linalg.solve(D, K_exp) @ V))
        f = factors(Q, Kx)
        errors.append(relative_error(K_exp, f["D_q"] @ f["K_rbf"] @ f["D_k"]))
        weights = normalised.evaluate({k: v.cpu().numpy() for k, v in f.items()})
        errors.append(relative_error(attention, torch.as_tensor(weights, device=device) @ V))
        wrong["unnormalised K_exp V"].append(relative_error(attention, K_exp @ V))
        rbf_rows = f["K_rbf"] / f["K_rbf"].sum(1, keepdim=True)
        wrong["Gaussian smoother without D_k"].append(relative_error(attention, rbf_rows @ V))
        # kernel ridge on the keys, queried at Q: lam * KRR -> K_q y at rate 1/lam
        K, y = exponential_kernel(Kx, Kx), V[:, 0]
        base = 1e4 * torch.linalg.matrix_norm(K, 2).item()
        gaps = []
        for lam in (base, 10 * base):
            krr = K_exp @ torch.linalg.solve(K + lam * torch.eye(n, dtype=torch.float64, device=device), y)
            gaps.append(relative_error(K_exp @ y, lam * krr))
        errors.append(abs(gaps[1] / gaps[0] - 0.1) / 0.1 * TOLERANCE / 0.02)
        lam = 10 * base
        krr = K_exp @ torch.linalg.solve(K + lam * torch.eye(n, dtype=torch.float64, device=device), y)
        wrong["softmax as the lam -> oo limit of lam * KRR"].append(relative_error(lam * krr, attention[:, 0]))
        alignment.append((torch.linalg.matrix_norm(torch.linalg.solve(D, K_exp) - K_exp, 2) /
                          torch.linalg.matrix_norm(K_exp, 2)).item())
    report = verdict(errors, wrong, "softmax = inv(D) K_exp V = inv(Dt) K_rbf D_k V; lam * KRR -> K_exp y at 1/lam")
    report["seed_alignment_measure"] = sum(alignment) / len(alignment)
    report["detail"] += f"; the seed's |inv(D) K_exp - K_exp|/|K_exp| averages {report['seed_alignment_measure']:.2f}"
    return report


CHECKS = [
    DeterministicCheck(id="incontext.softmax_smoother", run=run_softmax,
                       description="torch.softmax vs inv(D) K_exp V and the derived Gaussian factorization; "
                                   "lam * KRR -> K_exp y at rate 1/lam; unnormalised, unweighted and softmax-as-"
                                   "limit variants rejected"),
]
