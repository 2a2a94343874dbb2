"""An independent numeric oracle for one-layer linear self-attention (pure numpy).

Written from the model's definition only (Zhang, Frei & Bartlett 2024), with
nothing imported from ``derive``:

* prompt: x₁, …, x_N, x_q i.i.d. N(0, Λ), task w ~ N(0, I_d), labels yᵢ = wᵀxᵢ;
* embedding E = [[x₁ … x_N x_q], [y₁ … y_N 0]] ∈ R^{(d+1)×(N+1)};
* f_LSA(E) = E + W^PV E (Eᵀ W^KQ E)/N with FULL (d+1)×(d+1) matrices W^PV, W^KQ;
* prediction ŷ = f_LSA(E)[d, N] (0-based: last row, last column);
* loss of one prompt ½(ŷ − wᵀx_q)², population loss its expectation.

The population loss is computed exactly by tensor-product Gauss–Hermite
quadrature over every scalar Gaussian coordinate: x = L z with Λ = L Lᵀ
(Cholesky) and z, w standard normal.  ŷ is linear in W^PV E and quadratic in
E through Eᵀ W^KQ E, so the integrand is a polynomial of degree ≤ 6 in the
coordinates of x_q (x_q appears in Z and as the query column), ≤ 4 in those of
each xᵢ and ≤ 4 in those of w; an n-node Gauss–Hermite rule integrates degree
≤ 2n − 1 exactly, so 4 nodes per coordinate are exact for all of them
(3 would already do for xᵢ and w).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss


# ---------------------------------------------------------------- the model, from the definition

def embedding(X: np.ndarray, xq: np.ndarray, w: np.ndarray) -> np.ndarray:
    """E for a batch: X (..., N, d) the xᵢ as rows, xq (..., d), w (..., d) → (..., d+1, N+1)."""
    X, xq, w = np.asarray(X, float), np.asarray(xq, float), np.asarray(w, float)
    y = np.einsum("...nd,...d->...n", X, w)  # yᵢ = wᵀxᵢ
    top = np.concatenate([np.swapaxes(X, -1, -2), xq[..., :, None]], axis=-1)  # (..., d, N+1)
    bottom = np.concatenate([y, np.zeros(y.shape[:-1] + (1,))], axis=-1)[..., None, :]  # (..., 1, N+1)
    return np.concatenate([top, bottom], axis=-2)


def f_lsa(E: np.ndarray, W_PV: np.ndarray, W_KQ: np.ndarray) -> np.ndarray:
    """f_LSA(E) = E + W^PV E (Eᵀ W^KQ E)/N, N = (number of columns of E) − 1."""
    N = E.shape[-1] - 1
    Et = np.swapaxes(E, -1, -2)
    attention = Et @ W_KQ @ E  # (..., N+1, N+1)
    return E + (W_PV @ E) @ attention / N


def prediction(X, xq, w, W_PV, W_KQ) -> np.ndarray:
    """ŷ = f_LSA(E)[d, N], the bottom-right entry."""
    return f_lsa(embedding(X, xq, w), W_PV, W_KQ)[..., -1, -1]


def sample_loss(X, xq, w, W_PV, W_KQ) -> np.ndarray:
    """½(ŷ − wᵀx_q)² for each prompt of the batch."""
    target = np.einsum("...d,...d->...", np.asarray(w, float), np.asarray(xq, float))
    return 0.5 * (prediction(X, xq, w, W_PV, W_KQ) - target) ** 2


# ---------------------------------------------------------------- parameters from the blocks

def full_matrices(d: int, U11, u12, u21, u, rng=None, other_scale: float = 1.0):
    """W^PV, W^KQ ((d+1)×(d+1)) with the four named blocks set and every OTHER entry random nonzero.

    U11 = W^KQ[:d, :d], u21 = W^KQ[d, :d], u12 = W^PV[d, :d], u = W^PV[d, d]; the rest
    (W^PV[:d, :d], W^PV[:d, d], W^KQ[:d, d], W^KQ[d, d]) are drawn from ``rng``
    (zero when ``rng`` is None).
    """
    W_PV = np.zeros((d + 1, d + 1))
    W_KQ = np.zeros((d + 1, d + 1))
    if rng is not None:
        W_PV[:] = other_scale * _nonzero(rng, (d + 1, d + 1))
        W_KQ[:] = other_scale * _nonzero(rng, (d + 1, d + 1))
    W_KQ[:d, :d] = U11
    W_KQ[d, :d] = u21
    W_PV[d, :d] = u12
    W_PV[d, d] = u
    return W_PV, W_KQ


def _nonzero(rng, shape) -> np.ndarray:
    """Random entries bounded away from 0: sign × U(0.3, 1.3)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 1.3, size=shape)


# ---------------------------------------------------------------- exact population loss

def _rule(n: int):
    nodes, weights = hermegauss(n)  # weight exp(−t²/2)
    return nodes, weights / np.sqrt(2.0 * np.pi)  # probability weights of N(0, 1)


def population_loss(Lambda, W_PV, W_KQ, N: int, nodes_x: int = 4, nodes_q: int = 4, nodes_w: int = 4,
                    chunk: int = 1 << 16) -> float:
    """½E[(ŷ − wᵀx_q)²] by tensor-product Gauss–Hermite quadrature over all (N + 2)·d coordinates.

    Every xᵢ coordinate uses ``nodes_x`` nodes, x_q ``nodes_q``, w ``nodes_w``;
    the rule is exact when 2·nodes − 1 ≥ the degree (4, 6, 4 respectively).
    """
    Lambda = np.asarray(Lambda, float)
    d = Lambda.shape[0]
    L = np.linalg.cholesky(Lambda)
    counts = [nodes_x] * (N * d) + [nodes_q] * d + [nodes_w] * d
    rules = [_rule(n) for n in counts]
    total_points = int(np.prod(counts))
    total = 0.0
    for start in range(0, total_points, chunk):
        index = np.arange(start, min(start + chunk, total_points))
        digits = np.unravel_index(index, counts)
        z = np.stack([rules[k][0][digits[k]] for k in range(len(counts))], axis=-1)  # (B, (N+2)d)
        weight = np.ones(len(index))
        for k in range(len(counts)):
            weight = weight * rules[k][1][digits[k]]
        zx = z[:, : N * d].reshape(-1, N, d)
        zq = z[:, N * d: (N + 1) * d]
        w = z[:, (N + 1) * d:]
        X = zx @ L.T  # xᵢ = L zᵢ
        xq = zq @ L.T
        total += float(weight @ sample_loss(X, xq, w, W_PV, W_KQ))
    return total


def population_loss_w_analytic(Lambda, W_PV, W_KQ, N: int, nodes: int = 4, chunk: int = 1 << 16) -> float:
    """Same loss, with w integrated in closed form using only E[w] = 0, E[wwᵀ] = I.

    For fixed x's, ŷ − wᵀx_q = a + bᵀw + wᵀCw is a quadratic in w (ŷ is, since
    y = Xw enters E linearly and ŷ is cubic in E but at most quadratic in the
    last row).  Its coefficients are recovered exactly from ŷ at w = 0, ±eₖ and
    eₖ + eₗ; then E[(a + bᵀw + wᵀCw)²] needs E[w_k w_l w_m w_n] =
    δδ + δδ + δδ, which follows from E[wwᵀ] = I for a Gaussian.
    """
    Lambda = np.asarray(Lambda, float)
    d = Lambda.shape[0]
    L = np.linalg.cholesky(Lambda)
    counts = [nodes] * ((N + 1) * d)
    rule = _rule(nodes)
    total_points = int(np.prod(counts))
    eye = np.eye(d)
    total = 0.0
    for start in range(0, total_points, chunk):
        index = np.arange(start, min(start + chunk, total_points))
        digits = np.unravel_index(index, counts)
        z = np.stack([rule[0][digits[k]] for k in range(len(counts))], axis=-1)
        weight = np.prod(np.stack([rule[1][digits[k]] for k in range(len(counts))]), axis=0)
        X = z[:, : N * d].reshape(-1, N, d) @ L.T
        xq = z[:, N * d:] @ L.T
        B = len(index)

        def g(wvec):  # ŷ − wᵀx_q at a fixed w for the whole batch
            ww = np.broadcast_to(wvec, (B, d))
            return prediction(X, xq, ww, W_PV, W_KQ) - xq @ wvec

        a = g(np.zeros(d))
        plus = [g(eye[k]) for k in range(d)]
        minus = [g(-eye[k]) for k in range(d)]
        b = np.stack([(plus[k] - minus[k]) / 2 for k in range(d)], axis=-1)  # (B, d)
        C = np.zeros((B, d, d))
        for k in range(d):
            C[:, k, k] = (plus[k] + minus[k]) / 2 - a
        for k in range(d):
            for l in range(k + 1, d):
                both = g(eye[k] + eye[l]) - a - b[:, k] - b[:, l] - C[:, k, k] - C[:, l, l]
                C[:, k, l] = C[:, l, k] = both / 2
        trC = np.trace(C, axis1=1, axis2=2)
        # E[(a + bᵀw + wᵀCw)²] = a² + |b|² + 2a tr C + (tr C)² + 2 tr(C²)   (C symmetric)
        second = a ** 2 + np.sum(b ** 2, axis=1) + 2 * a * trC + trC ** 2 + 2 * np.einsum("bkl,blk->b", C, C)
        total += float(weight @ (0.5 * second))
    return total


def monte_carlo_loss(Lambda, W_PV, W_KQ, N: int, samples: int, rng) -> tuple[float, float]:
    """Plain sampling estimate of the loss and its standard error (a check on the quadrature)."""
    Lambda = np.asarray(Lambda, float)
    d = Lambda.shape[0]
    L = np.linalg.cholesky(Lambda)
    X = rng.standard_normal((samples, N, d)) @ L.T
    xq = rng.standard_normal((samples, d)) @ L.T
    w = rng.standard_normal((samples, d))
    losses = sample_loss(X, xq, w, W_PV, W_KQ)
    return float(losses.mean()), float(losses.std(ddof=1) / np.sqrt(samples))
