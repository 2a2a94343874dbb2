r"""Numeric confirmation of ``incontext.one_layer_gd``, ``incontext.zfb_preconditioned_gd``, ``incontext.depth_t_gd``.

Mirror of ``derive/incontext_gd.py``.  Each check draws random prompts (context
``X`` n×d, labels ``y``, query ``q``) and weights in float64, runs the layers
from their definition with torch (the whole embedding, every block of the
weights), runs gradient descent on ``L(w) = |Xw − y|²/(2n)`` with torch autograd
(not the derived gradient), and compares:

* ``incontext.one_layer_gd``: the LSA prediction with ``U11 = ηPᵀ``, ``u = 1``,
  ``u12 = u21 = 0`` and the other blocks random equals ``qᵀw₁``,
  ``w₁ = −ηP∇L(0)``; wrong variant: the loss without ``1/n``.
* ``incontext.zfb_preconditioned_gd``: at ``U11 = cΓ⁻¹``, ``u = 1/c`` (Γ evaluated
  from ``lsa.reduced_loss``), the prediction equals one GD step preconditioned by
  Γ⁻¹; wrong variant: Λ⁻¹ (Γ's limit N → ∞) instead of Γ⁻¹.
* ``incontext.depth_t_gd``: t = 1..4 masked layers with ``U11 = ηPᵀ``, ``u = −1``:
  ``−s_t`` equals t autograd GD steps and the derived closed form
  ``(I − (I − ηPS)^t) w_LS``; wrong variant: the unmasked stack (the query among
  the keys), which differs from t = 2 on.

``samples`` is the number of random instances (None → 20, at most 2000); a check
passes when every comparison holds to 1e-10 relative and every wrong variant is
off by more than 1e-7.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from derive.registry import get
from numeric.checks import DeterministicCheck
from numeric.device import resolve_device

TOLERANCE = 1e-10
REJECT = 1e3 * TOLERANCE
DEFAULT_INSTANCES = 20
MAX_INSTANCES = 2000


def instance_count(samples: int | None) -> int:
    return max(1, min(int(samples or DEFAULT_INSTANCES), MAX_INSTANCES))


def setup(device: Any, seed: int) -> tuple[torch.device, torch.Generator]:
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    return device, torch.Generator(device=device).manual_seed(seed)


def randn(shape, generator, device) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, device=device, dtype=torch.float64)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max(1, max |a|)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b, dtype=np.float64) if not torch.is_tensor(b) else b, dtype=torch.float64,
                        device=a.device)
    return ((a - b).abs().max() / a.abs().max().clamp_min(1.0)).item()


def verdict(errors: list, wrong: dict, what: str) -> dict[str, Any]:
    """The report numeric.confirm reads; ``wrong`` maps a variant's name to its errors."""
    worst = max(errors)
    rejected = {name: max(values) > REJECT for name, values in wrong.items()}
    passed = worst <= TOLERANCE and all(rejected.values())
    controls = "; ".join(f"{name} {max(values):.1e} ({'rejected' if rejected[name] else 'NOT rejected'})"
                         for name, values in wrong.items())
    return {"passed": passed, "max_error": worst, "samples": len(errors), "negative_controls": rejected,
            "detectable_rel_error": TOLERANCE,
            "detail": f"{what}: max relative error {worst:.1e} (tolerance {TOLERANCE:.0e}); wrong: {controls}"}


def embedding(X: torch.Tensor, y: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """E = [[Xᵀ, q], [yᵀ, 0]] ∈ R^{(d+1)×(n+1)} (batched over a leading axis when X is 3-d)."""
    top = torch.cat([X.transpose(-1, -2), q.unsqueeze(-1)], dim=-1)
    bottom = torch.cat([y, torch.zeros_like(y[..., :1])], dim=-1).unsqueeze(-2)
    return torch.cat([top, bottom], dim=-2)


def lsa_layer(E: torch.Tensor, W_pv: torch.Tensor, W_kq: torch.Tensor, masked: bool) -> torch.Tensor:
    """E + W^PV E_k E_kᵀ W^KQ E / n; E_k = the n context columns (``masked``) or all n + 1 columns (ZFB).

    ``n`` is the number of context columns either way (ZFB divide by N, not N + 1).
    """
    n = E.shape[-1] - 1
    keys = E[..., :n] if masked else E
    return E + W_pv @ keys @ keys.transpose(-1, -2) @ W_kq @ E / n


def gd_steps(X, y, steps: int, eta: float, P: torch.Tensor, normalized: bool = True) -> torch.Tensor:
    """``steps`` of w ← w − ηP∇L(w) from w = 0, the gradient by autograd of L = |Xw − y|²/(2n) (or /2)."""
    n, d = X.shape
    w = torch.zeros(d, dtype=X.dtype, device=X.device)
    for _ in range(steps):
        w = w.detach().requires_grad_(True)
        loss = ((X @ w - y) ** 2).sum() / (2 * n if normalized else 2)
        (grad,) = torch.autograd.grad(loss, w)
        w = (w - eta * P @ grad).detach()
    return w


def _prompt(generator, device, n: int = 9, d: int = 4):
    X, y, q = randn((n, d), generator, device), randn((n,), generator, device), randn((d,), generator, device)
    return X, y, q


def _weights(U11, u, generator, device, d: int):
    """Full (d+1)×(d+1) weights with the given U11, u, zero u12, u21 and random other blocks."""
    W_pv, W_kq = randn((d + 1, d + 1), generator, device), randn((d + 1, d + 1), generator, device)
    W_pv[d, :d] = 0.0
    W_kq[d, :d] = 0.0
    W_pv[d, d] = u
    W_kq[:d, :d] = U11
    return W_pv, W_kq


def run_one_layer(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    device, generator = setup(device, seed)
    errors, wrong = [], {"loss without 1/n": []}
    derived = get("incontext.one_layer_gd").derivation.values["pgd_prediction"]
    for _ in range(instance_count(samples)):
        X, y, q = _prompt(generator, device)
        d = X.shape[1]
        P = randn((d, d), generator, device)
        eta = float(torch.rand(1, generator=generator, device=device)) + 0.1
        W_pv, W_kq = _weights(eta * P.T, 1.0, generator, device, d)
        yhat = lsa_layer(embedding(X, y, q), W_pv, W_kq, masked=False)[d, -1]
        errors.append(relative_error(yhat, q @ gd_steps(X, y, 1, eta, P)))
        value = derived.evaluate({"X": X.cpu().numpy(), "y": y.cpu().numpy(), "q": q.cpu().numpy(),
                                  "P": P.cpu().numpy(), "eta": eta})
        errors.append(relative_error(yhat, value))
        wrong["loss without 1/n"].append(relative_error(yhat, q @ gd_steps(X, y, 1, eta, P, normalized=False)))
    return verdict(errors, wrong, "one LSA layer = one preconditioned GD step")


def gamma_at(Lambda: np.ndarray, N: int) -> np.ndarray:
    """Γ from ``lsa.reduced_loss`` (the derived polynomial, evaluated)."""
    gamma = get("lsa.reduced_loss").derivation.values["Gamma"]
    return np.asarray(gamma.evaluate({"Lambda": Lambda}, Lambda.shape[0], N))


def run_zfb(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    device, generator = setup(device, seed)
    errors, wrong = [], {"inv(Lambda) instead of inv(Gamma)": []}
    derived = get("incontext.zfb_preconditioned_gd").derivation.values["minimum_prediction"]
    for _ in range(instance_count(samples)):
        X, y, q = _prompt(generator, device)
        n, d = X.shape
        A = randn((d, d), generator, device)
        Lambda = (A @ A.T / d + 0.5 * torch.eye(d, dtype=torch.float64, device=device)).cpu().numpy()
        Gamma_inv = torch.tensor(np.linalg.inv(gamma_at(Lambda, n)), device=device)
        c = float(torch.rand(1, generator=generator, device=device)) + 0.5
        W_pv, W_kq = _weights(c * Gamma_inv, 1.0 / c, generator, device, d)
        yhat = lsa_layer(embedding(X, y, q), W_pv, W_kq, masked=False)[d, -1]
        errors.append(relative_error(yhat, q @ gd_steps(X, y, 1, 1.0, Gamma_inv)))
        value = derived.evaluate({"X": X.cpu().numpy(), "y": y.cpu().numpy(), "q": q.cpu().numpy(),
                                  "Lambda": Lambda}, d, n)
        errors.append(relative_error(yhat, value))
        Lambda_inv = torch.tensor(np.linalg.inv(Lambda), device=device)
        wrong["inv(Lambda) instead of inv(Gamma)"].append(relative_error(yhat, q @ gd_steps(X, y, 1, 1.0, Lambda_inv)))
    return verdict(errors, wrong, "ZFB minimum = one GD step preconditioned by inv(Gamma)")


def stack(X, y, q, P, eta: float, depth: int, masked: bool = True) -> list[torch.Tensor]:
    """−(query label slot) after each of ``depth`` layers with U11 = ηPᵀ, u = −1 (other blocks 0)."""
    d = X.shape[1]
    W_pv = torch.zeros(d + 1, d + 1, dtype=X.dtype, device=X.device)
    W_kq = torch.zeros_like(W_pv)
    W_pv[d, d], W_kq[:d, :d] = -1.0, eta * P.T
    E, out = embedding(X, y, q), []
    for _ in range(depth):
        E = lsa_layer(E, W_pv, W_kq, masked)
        out.append(-E[d, -1])
    return out


def run_depth(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    device, generator = setup(device, seed)
    errors, wrong = [], {"unmasked stack": []}
    closed = get("incontext.depth_t_gd").derivation.values["closed_form"]
    for _ in range(instance_count(samples)):
        X, y, q = _prompt(generator, device)
        n, d = X.shape
        P = torch.eye(d, dtype=torch.float64, device=device) + 0.3 * randn((d, d), generator, device)
        eta = 0.3
        S = X.T @ X / n
        wls = torch.linalg.solve(X.T @ X, X.T @ y)
        values = {"P": P.cpu().numpy(), "S": S.cpu().numpy(), "wls": wls.cpu().numpy(), "eta": eta}
        predictions = stack(X, y, q, P, eta, len(closed))
        unmasked = stack(X, y, q, P, eta, len(closed), masked=False)
        for t, yhat in enumerate(predictions, 1):
            errors.append(relative_error(yhat, q @ gd_steps(X, y, t, eta, P)))
            errors.append(relative_error(yhat, q @ torch.tensor(closed[str(t)].evaluate(values), device=device)))
        wrong["unmasked stack"].append(max(relative_error(a, b) for a, b in zip(predictions, unmasked)))
    return verdict(errors, wrong, "t masked layers = t preconditioned GD steps = closed form (t <= 4)")


CHECKS = [
    DeterministicCheck(id="incontext.one_layer_gd", run=run_one_layer,
                       description="LSA layer (all blocks random except u12 = u21 = 0) vs one autograd GD step; "
                                   "the loss without 1/n fails"),
    DeterministicCheck(id="incontext.zfb_preconditioned_gd", run=run_zfb,
                       description="LSA at U11 = c inv(Gamma), u = 1/c vs GD preconditioned by inv(Gamma); "
                                   "inv(Lambda) fails"),
    DeterministicCheck(id="incontext.depth_t_gd", run=run_depth,
                       description="t = 1..4 masked layers vs t autograd GD steps and the closed form; the "
                                   "unmasked stack fails"),
]
