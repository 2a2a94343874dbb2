r"""Numeric confirmation of the ``iclr.*`` results (mirror of ``derive.iclr_rank``).

Each check draws random instances in float64 on the chosen torch device,
computes the linear-attention layer ``Attn(X) = (X W_Q W_K^T X^T) X W_V`` from
its definition with torch, and compares it with the *derived* symbolic result
evaluated at the instance (``sympy.lambdify`` of the derivation's values):

* ``iclr.attention_factorization``: ``Attn(X) = U M`` with ``U, Sigma, V`` from
  ``torch.linalg.svd``; wrong variant: ``M`` without ``Sigma^T Sigma``.
* ``iclr.gram_dependence``: ``Attn(X) = X F(X^T X)`` and
  ``Attn(P X) = P Attn(X)`` for random permutations; wrong variant: a
  non-orthogonal mixing ``A`` of the positions.
* ``iclr.bigram_invisible``: random one-hot contexts and a copy with the same
  counts and last token but shuffled earlier positions: equal last-position
  outputs, while the bigram counts ``X^T Y`` (the wrong variant's readout)
  differ for at least one instance.
* ``iclr.previous_token_gram``: the off-diagonal block of ``Z^T Z`` for
  ``Z = [X | S X]`` equals the bigram counts counted directly; wrong variant:
  the block without the shift, ``X^T X``.

``samples`` is the number of random instances (None -> 20, at most 2000).
A check passes when every right comparison holds to ``1e-10`` (relative) and
every wrong variant is rejected.  Run with ``numeric.confirm`` or directly::

    python -c "from numeric.iclr_rank import CHECKS; print([c.run(20, 'cpu', 0)['passed'] for c in CHECKS])"
"""

from __future__ import annotations

from typing import Any

import sympy as sp
import torch

from derive.registry import get
from numeric.checks import DeterministicCheck
from numeric.device import resolve_device

TOLERANCE = 1e-10
DEFAULT_INSTANCES = 20
MAX_INSTANCES = 2000


def instance_count(samples: int | None) -> int:
    """Random instances per check: ``samples`` (None -> 20), capped at 2000."""
    return max(1, min(int(samples or DEFAULT_INSTANCES), MAX_INSTANCES))


def attention(X: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor, W_V: torch.Tensor) -> torch.Tensor:
    """The layer from its definition, (X W_Q W_K^T X^T) X W_V."""
    out = (X @ W_Q @ W_K.T @ X.T) @ X @ W_V
    assert out.shape == (X.shape[0], W_V.shape[1])
    return out


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(1, max |a|)."""
    return ((a - b).abs().max() / a.abs().max().clamp_min(1.0)).item()


def _setup(device: Any, seed: int) -> tuple[torch.device, torch.Generator]:
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    return device, torch.Generator(device=device).manual_seed(seed)


def _random(shape, generator, device) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, device=device, dtype=torch.float64)


def _verdict(errors: list[float], wrong_errors: list[float], what: str, wrong_name: str) -> dict[str, Any]:
    """The report numeric.confirm reads: passed, detail, samples, negative_controls."""
    worst, wrong_best = max(errors), max(wrong_errors)
    rejected = wrong_best > 1e3 * TOLERANCE
    passed = worst <= TOLERANCE and rejected
    return {"passed": passed, "max_error": worst, "wrong_max_error": wrong_best,
            "samples": len(wrong_errors), "negative_controls": {wrong_name: rejected},
            "detectable_rel_error": TOLERANCE,
            "detail": f"{what}: max relative error {worst:.1e} (tolerance {TOLERANCE:.0e}); "
                      f"wrong variant {wrong_best:.1e} ({'rejected' if wrong_best > 1e3 * TOLERANCE else 'NOT rejected'})"}


def run_factorization(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """Attn(X) = U M at random X (L x d) and weights, M from the derivation."""
    device, generator = _setup(device, seed)
    values = get("iclr.attention_factorization").derivation.values
    names = ("U", "Sigma", "V", "W_Q", "W_K", "W_V")
    derived_M = sp.lambdify([values[n] for n in names], values["M"], "numpy")
    errors, wrong = [], []
    for _ in range(instance_count(samples)):
        L, d = 7, 4
        X = _random((L, d), generator, device)
        W_Q, W_K, W_V = (_random((d, d), generator, device) for _ in range(3))
        U, s, Vh = torch.linalg.svd(X, full_matrices=False)
        Sigma, V = torch.diag(s), Vh.T
        assert U.shape == (L, d) and Sigma.shape == (d, d)
        arrays = [t.cpu().numpy() for t in (U, Sigma, V, W_Q, W_K, W_V)]
        M = torch.as_tensor(derived_M(*arrays), device=device)
        target = attention(X, W_Q, W_K, W_V)
        errors.append(relative_error(target, U @ M))
        M_wrong = Sigma @ V.T @ W_Q @ W_K.T @ V @ V.T @ W_V  # Sigma^T Sigma dropped
        wrong.append(relative_error(target, U @ M_wrong))
    return _verdict(errors, wrong, "Attn(X) = U M", "M without Sigma^T Sigma")


def run_gram_dependence(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """Attn(X) = X F(X^T X) and Attn(P X) = P Attn(X) for random permutations P."""
    device, generator = _setup(device, seed)
    values = get("iclr.gram_dependence").derivation.values
    gram_factor = sp.lambdify([values[n] for n in ("W_Q", "W_K", "W_V", "G")], values["gram_factor"], "numpy")
    errors, wrong = [], []
    for _ in range(instance_count(samples)):
        L, d = 9, 3
        X = _random((L, d), generator, device)
        W = [_random((d, d), generator, device) for _ in range(3)]
        target = attention(X, *W)
        F = torch.as_tensor(gram_factor(*[t.cpu().numpy() for t in (*W, X.T @ X)]), device=device)
        errors.append(relative_error(target, X @ F))
        P = torch.eye(L, dtype=torch.float64, device=device)[torch.randperm(L, generator=generator, device=device)]
        errors.append(relative_error(attention(P @ X, *W), P @ target))
        A = P + 0.1 * _random((L, L), generator, device)  # mixes positions, A^T A != I
        wrong.append(relative_error(attention(A @ X, *W), A @ target))
    return _verdict(errors, wrong, "Attn(X) = X F(X^T X), Attn(PX) = P Attn(X)",
                    "non-orthogonal position mixing")


def _one_hot(tokens: torch.Tensor, states: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(tokens, states).to(torch.float64)


def run_bigram_invisible(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """Same counts and last token -> same last-position output; bigram counts differ."""
    device, generator = _setup(device, seed)
    errors, wrong = [], []
    states, length = 4, 12
    for _ in range(instance_count(samples)):
        tokens = torch.randint(states, (length,), generator=generator, device=device)
        order = torch.randperm(length - 1, generator=generator, device=device)
        shuffled = torch.cat([tokens[:-1][order], tokens[-1:]])
        X_a, X_b = _one_hot(tokens, states), _one_hot(shuffled, states)
        W = [_random((states, states), generator, device) for _ in range(3)]
        errors.append(relative_error(attention(X_a, *W)[-1], attention(X_b, *W)[-1]))
        errors.append(relative_error(X_a.T @ X_a, torch.diag(X_a.sum(0))))
        # the estimator's statistic x_L^T X^T Y is what would tell them apart
        wrong.append(relative_error(X_a[-1] @ X_a[:-1].T @ X_a[1:], X_b[-1] @ X_b[:-1].T @ X_b[1:]))
    return _verdict(errors, wrong, "one-hot contexts with equal counts", "bigram readout x_L^T X^T Y")


def run_previous_token_gram(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """The off-diagonal block of Z^T Z, Z = [X | S X], equals the directly counted bigrams."""
    device, generator = _setup(device, seed)
    errors, wrong = [], []
    states, length = 4, 15
    for _ in range(instance_count(samples)):
        tokens = torch.randint(states, (length,), generator=generator, device=device)
        X = _one_hot(tokens, states)
        previous = torch.zeros_like(X)
        previous[1:] = X[:-1]
        Z = torch.cat([X, previous], dim=1)
        gram = Z.T @ Z
        counts = torch.zeros(states, states, dtype=torch.float64, device=device)
        for before, after in zip(tokens[:-1].tolist(), tokens[1:].tolist()):
            counts[before, after] += 1
        errors.append(relative_error(counts, gram[states:, :states]))
        wrong.append(relative_error(counts, (X.T @ X)))
    return _verdict(errors, wrong, "Z^T Z off-diagonal block = bigram counts", "block without the shift")


CHECKS = [
    DeterministicCheck(id="iclr.attention_factorization", run=run_factorization,
                       description="torch SVD of random X: Attn(X) = U M (M derived); drop Sigma^T Sigma fails"),
    DeterministicCheck(id="iclr.gram_dependence", run=run_gram_dependence,
                       description="Attn(X) = X F(X^T X); permutation equivariance; a non-orthogonal mix fails"),
    DeterministicCheck(id="iclr.bigram_invisible", run=run_bigram_invisible,
                       description="shuffled one-hot contexts give equal last outputs; bigram counts differ"),
    DeterministicCheck(id="iclr.previous_token_gram", run=run_previous_token_gram,
                       description="previous-token Gram block = counted bigrams; X^T X instead fails"),
]
