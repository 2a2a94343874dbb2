r"""Numeric confirmation of ``derive/lsa_generalization.py``: the trained LSA at test length M, under shift.

Model
-----
A global minimizer of the training loss (tokens N(0, Λ), prompts of length
N): full :math:`(d+1)\times(d+1)` matrices with ``U11 = c Γ⁻¹``, ``u = 1/c``,
``u12 = u21 = 0`` and every other entry random (the prediction does not read
them, ``lsa.prediction``).  A test prompt of length M: :math:`x_i \sim
\mathcal N(0, S)`, :math:`x_q \sim \mathcal N(0, S_q)`, :math:`w \sim
\mathcal N(0, \Psi)`, :math:`y_i = w^\top x_i + \varepsilon_i`, target
:math:`w^\top x_q + \varepsilon_q`, :math:`\varepsilon \sim \mathcal N(0,
\sigma^2)`.  The forward pass is the literal
:math:`f(E) = E + W^{PV} E (E^\top W^{KQ} E)/M`, :math:`\hat y = f(E)_{d+1, M+1}`.

Checks (``CHECKS``)
-------------------
* ``lsa.test_error`` at M = 2 < N = 5 and M = 9 > N = 5 (d = 3, random SPD Λ,
  S, Sq, Ψ, σ = 0.7): the sample mean of :math:`(\hat y - y_q)^2` against the
  derived ``test_error``.  Controls: the seed's Theorem 4.2 (the variance term
  without 1/M) and the unshifted formula (S, Sq, Ψ replaced by Λ, Λ, I).
  Measured at seeds 0..9 (default samples, S and Sq with eigenvalues in [1.5, 2.5]): max z ≤ 2.3 for
  the derived form; the seed's form z = 320–550 (M = 2) and 2,000–4,000 (M = 9) — its gap grows like
  M − 1; the unshifted formula z = 240–480.
* ``lsa.covariate_shift``: the conditional mean E[ŷ | q, w] at fixed query
  and task with covariates scaled by c ∈ [1.5, 2] (S = c²Λ), N = 4, M = 3:
  the derived c² qᵀΓ⁻¹Λw.  Controls: the seed's c² qᵀw (its N → ∞ form) and
  the unscaled qᵀΓ⁻¹Λw (seeds 0..9: derived max z 2.3, the seed's form z = 575–845, unscaled
  z = 360–480).  Plus an exact check that the finite-N, M error
  approaches ``limit_error`` = c²(c² − 1)² tr Λ (N = M = 10⁸), with the
  context-shift-only value (c² − 1)² tr Λ and c(c − 1)² tr Λ (the covariance scaled by c, the
  GPT-2 figure's convention, read as if it scaled the covariates) as wrong variants that must fail.

Run::

    python -m numeric.confirm lsa.test_error lsa.covariate_shift
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from numeric.checks import DeterministicCheck, MonteCarloCheck

DTYPE = torch.float64


# ------------------------------------------------------------------ the model (copied conventions, see lsa_optimum)
def random_spd(rng: np.random.Generator, d: int, low: float = 0.5, high: float = 1.5) -> np.ndarray:
    """Q diag(λ) Qᵀ with Q Haar-random orthogonal and eigenvalues uniform in [low, high]."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    spd = (q * rng.uniform(low, high, size=d)) @ q.T
    return (spd + spd.T) / 2.0


def embed(x: torch.Tensor, y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """E = [[x_1 .. x_M, x_q], [y_1 .. y_M, 0]] of shape (..., d+1, M+1); x (..., M, d), y (..., M), xq (..., d)."""
    top = torch.cat([x, xq.unsqueeze(-2)], dim=-2).transpose(-1, -2)
    bottom = torch.cat([y, torch.zeros_like(y[..., :1])], dim=-1).unsqueeze(-2)
    return torch.cat([top, bottom], dim=-2)


def lsa_predict(E: torch.Tensor, W_PV: torch.Tensor, W_KQ: torch.Tensor) -> torch.Tensor:
    """ŷ = [E + W^PV E (Eᵀ W^KQ E)/M]_{d+1, M+1}, M = number of context columns (ρ = M at test time).

    Only the last column of f(E) is formed, associated as E e + W^PV (E Eᵀ) (W^KQ E e)/M with e the last
    unit vector: the same product (matrix multiplication is associative), without the (M+1)×(M+1) attention.
    """
    M = E.shape[-1] - 1
    query = E[..., -1:]
    column = query + W_PV @ ((E @ E.transpose(-1, -2)) @ (W_KQ @ query)) / M
    return column[..., -1, 0]


def on(device, array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=DTYPE, device=device)


def gaussian(chol: torch.Tensor, shape: tuple, generator, device) -> torch.Tensor:
    """Draws of N(0, L Lᵀ) with trailing dimension d."""
    return torch.randn((*shape, chol.shape[0]), generator=generator, device=device, dtype=DTYPE) @ chol.T


def minimizer_matrices(rng: np.random.Generator, Gamma: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Full W^PV, W^KQ at the global minimizer U11 = cΓ⁻¹, u = 1/c, u12 = u21 = 0; other entries random."""
    d = Gamma.shape[0]
    wpv = 0.5 * rng.standard_normal((d + 1, d + 1))
    wkq = 0.5 * rng.standard_normal((d + 1, d + 1))
    wpv[d, :d], wpv[d, d] = 0.0, 1.0 / c
    wkq[:d, :d], wkq[d, :d] = c * np.linalg.inv(Gamma), 0.0
    return wpv, wkq


# ------------------------------------------------------------------ derived values
def derived(result_id: str) -> dict:
    from derive.registry import get

    return get(result_id).derivation.values


def gamma(Lambda: np.ndarray, N: int) -> np.ndarray:
    from derive.lsa_optimum import reduction

    return np.asarray(reduction()["Gamma"].evaluate({"Lambda": Lambda}, Lambda.shape[0], N), dtype=np.float64)


def values(instance: dict[str, Any], **overrides) -> dict:
    keys = ("Lambda", "S", "Sq", "Psi", "sigma", "M", "c")
    return {**{k: instance[k] for k in keys if k in instance}, **overrides}


def test_error_at(instance: dict[str, Any], **overrides) -> float:
    poly = derived("lsa.test_error")["test_error"]
    vals = values(instance, **overrides)
    return float(poly.evaluate(vals, np.asarray(instance["Lambda"]).shape[0], int(instance["N"])))


def variance_part(instance: dict[str, Any]) -> float:
    """The 1/M terms of the derived error (σ and M as given): the seed writes them without 1/M."""
    big = test_error_at(instance)
    M = int(instance["M"])
    # the error is A + B/M with A, B free of M: two evaluations give B
    twice = test_error_at(instance, M=2 * M)
    return 2.0 * (big - twice)  # = B/M


# ------------------------------------------------------------------ lsa.test_error
def test_error_instance(M: int, N: int = 5, d: int = 3):
    def make(rng: np.random.Generator) -> dict[str, Any]:
        lam, Psi = random_spd(rng, d), random_spd(rng, d)
        # context and query covariates larger than in training: a definite shift, never close to the unshifted error
        S, Sq = random_spd(rng, d, 1.5, 2.5), random_spd(rng, d, 1.5, 2.5)
        c = float(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
        wpv, wkq = minimizer_matrices(rng, gamma(lam, N), c)
        return {"Lambda": lam, "S": S, "Sq": Sq, "Psi": Psi, "sigma": 0.7, "N": N, "M": M, "W_PV": wpv,
                "W_KQ": wkq}

    return make


def test_error_samples(instance: dict[str, Any], batch: int, generator, device) -> torch.Tensor:
    """E[(ŷ − y_q)² | context, task] from the literal forward pass, shape (batch, 1).

    At the minimizer (``u12 = 0``) ŷ is linear in the query: ŷ = gᵀx_q.  The
    forward pass is run with the query column set to each basis vector e_j,
    which gives g; a second pass at a drawn query asserts ŷ = gᵀx_q.  The query
    and its noise are then integrated exactly, E[(gᵀx_q − wᵀx_q − ε_q)²] =
    (g − w)ᵀ S_q (g − w) + σ² (the mean is unchanged, the variance ~4× smaller
    than for (ŷ − y_q)² itself).
    """
    M, d = int(instance["M"]), np.asarray(instance["S"]).shape[0]
    W_PV, W_KQ = on(device, instance["W_PV"]), on(device, instance["W_KQ"])
    x = gaussian(on(device, np.linalg.cholesky(instance["S"])), (batch, M), generator, device)
    w = gaussian(on(device, np.linalg.cholesky(instance["Psi"])), (batch,), generator, device)
    eps = instance["sigma"] * torch.randn((batch, M), generator=generator, device=device, dtype=DTYPE)
    y = (x @ w.unsqueeze(-1)).squeeze(-1) + eps
    eye = torch.eye(d, dtype=DTYPE, device=device)
    basis = embed(x.unsqueeze(1).expand(batch, d, M, d), y.unsqueeze(1).expand(batch, d, M), eye.expand(batch, d, d))
    g = lsa_predict(basis, W_PV, W_KQ)  # (batch, d): ŷ at x_q = e_j
    xq = gaussian(on(device, np.linalg.cholesky(instance["Sq"])), (batch,), generator, device)
    yhat = lsa_predict(embed(x, y, xq), W_PV, W_KQ)
    if not torch.allclose(yhat, (g * xq).sum(-1), rtol=1e-9, atol=1e-9):
        raise AssertionError("the prediction is not linear in the query at this minimizer")
    r = g - w
    return ((r @ on(device, instance["Sq"])) * r).sum(-1, keepdim=True) + instance["sigma"] ** 2


def exact_test_error(instance):
    return np.array([test_error_at(instance)])


def seed_theorem(instance):
    """The seed's Theorem 4.2: the variance term without its 1/M."""
    return np.array([test_error_at(instance) + (int(instance["M"]) - 1) * variance_part(instance)])


def unshifted_formula(instance):
    d = np.asarray(instance["Lambda"]).shape[0]
    return np.array([test_error_at(instance, S=instance["Lambda"], Sq=instance["Lambda"], Psi=np.eye(d))])


# ------------------------------------------------------------------ lsa.covariate_shift
def scaled_instance(rng: np.random.Generator, d: int = 3, N: int = 4, M: int = 3) -> dict[str, Any]:
    lam = random_spd(rng, d)
    c = float(rng.uniform(1.5, 2.0))
    wpv, wkq = minimizer_matrices(rng, gamma(lam, N), 1.0)
    q = rng.standard_normal(d)
    w = q / np.linalg.norm(q)  # w along q keeps the mean c² qᵀΓ⁻¹Λw away from 0 (Γ⁻¹Λ is SPD)
    return {"Lambda": lam, "c": c, "N": N, "M": M, "sigma": 0.5, "q": q, "w": w, "W_PV": wpv, "W_KQ": wkq}


def conditional_samples(instance: dict[str, Any], batch: int, generator, device) -> torch.Tensor:
    """ŷ at a fixed query and task, context tokens c·x with x ~ N(0, Λ) (covariance c²Λ) and noisy labels."""
    M, c = int(instance["M"]), float(instance["c"])
    x = c * gaussian(on(device, np.linalg.cholesky(instance["Lambda"])), (batch, M), generator, device)
    w, xq = on(device, instance["w"]), on(device, instance["q"]).expand(batch, -1)
    y = x @ w + instance["sigma"] * torch.randn((batch, M), generator=generator, device=device, dtype=DTYPE)
    return lsa_predict(embed(x, y, xq), on(device, instance["W_PV"]), on(device, instance["W_KQ"])).unsqueeze(-1)


def exact_conditional(instance):
    from derive.lsa_generalization import covariate_shift

    poly = covariate_shift()["scaled_mean"]
    vals = {"Lambda": instance["Lambda"], "c": instance["c"], "q": instance["q"], "w": instance["w"],
            "sigma": instance["sigma"], "M": instance["M"]}
    return np.array([float(poly.evaluate(vals, len(instance["q"]), int(instance["N"])))])


def seed_c_squared(instance):
    return np.array([instance["c"] ** 2 * float(instance["q"] @ instance["w"])])


def unscaled_mean(instance):
    G = gamma(instance["Lambda"], int(instance["N"]))
    return np.array([float(instance["q"] @ np.linalg.solve(G, instance["Lambda"] @ instance["w"]))])


def limit_check(samples=None, device=None, seed: int = 0) -> dict[str, Any]:
    """The derived finite-N, M error at N = M = 10⁸ against ``limit_error`` (and wrong variants), relative 1e-6."""
    rng = np.random.default_rng(seed)
    d = 3
    lam = random_spd(rng, d)
    c = float(rng.uniform(1.5, 2.0))
    big = 10**8
    finite = test_error_at({"Lambda": lam, "N": big}, S=c**2 * lam, Sq=c**2 * lam, Psi=np.eye(d), sigma=0.0, M=big)
    limit = float(derived("lsa.covariate_shift")["limit_error"].evaluate({"Lambda": lam, "c": c}, d))
    wrong = {"context shift only, (c**2 - 1)**2 tr(Lambda)": (c**2 - 1) ** 2 * np.trace(lam),
             "covariance scaled by c (c Lambda): c (c - 1)**2 tr(Lambda)": c * (c - 1) ** 2 * np.trace(lam)}
    tol = 1e-6
    rel = abs(finite - limit) / abs(limit)
    rejected = {name: abs(finite - v) / abs(limit) > tol for name, v in wrong.items()}
    passed = rel < tol and all(rejected.values())
    detail = (f"c = {c:.3f}: error at N = M = 1e8 {finite:.9g}, limit_error {limit:.9g} (relative gap {rel:.1e}, "
              f"tolerance {tol:g}); wrong variants rejected: {rejected}")
    return {"passed": passed, "detail": detail, "negative_controls": rejected}


def test_error_check(M: int, samples: int) -> MonteCarloCheck:
    relation = "<" if M < 5 else ">"
    return MonteCarloCheck(id="lsa.test_error", instance=test_error_instance(M=M), exact=exact_test_error,
                           sample=test_error_samples,
                           wrong={"seed Theorem 4.2 (variance term without 1/M)": seed_theorem,
                                  "unshifted formula (S = Sq = Lambda, Psi = I)": unshifted_formula},
                           samples=samples, ci_samples=100_000, batch=5_000,  # batch: peak memory of confirm under 400 MB
                           description=f"forward pass at a global minimizer, test length M = {M} {relation} N = 5, "
                                       "shifted S, Sq, Psi, noise")


CHECKS = [
    test_error_check(2, 2_200_000),
    test_error_check(9, 1_000_000),
    MonteCarloCheck(id="lsa.covariate_shift", instance=scaled_instance, exact=exact_conditional,
                    sample=conditional_samples,
                    wrong={"seed: c**2 * q.T @ w at finite N": seed_c_squared,
                           "no scaling: q.T @ inv(Gamma) @ Lambda @ w": unscaled_mean},
                    samples=300_000, ci_samples=100_000, batch=20_000,
                    description="conditional mean at fixed query and task, covariates scaled by c"),
    DeterministicCheck(id="lsa.covariate_shift", run=limit_check, kind="exact",
                       description="the finite error at N = M = 1e8 equals limit_error; wrong variants fail"),
]
