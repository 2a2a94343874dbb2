r"""Numeric confirmation of the ``iclr.*`` results (mirror of ``derive.linear_attention_gram``).

Each check draws random instances in float64 on the chosen torch device,
computes the linear-attention layer ``Attn(X) = (X W_Q W_K^T X^T) X W_V`` from
its definition with torch, and compares it with the *derived* symbolic result
evaluated at the instance (``Polynomial.evaluate`` of the derivation's values):

* ``iclr.attention_factorization``: ``Attn(X) = U M`` with ``U, Sigma, V`` from
  ``torch.linalg.svd`` of a context of rank ``r < d``; the output's columns lie
  in the span of ``U`` and its rank is at most ``r``; wrong variant: ``M``
  without ``Sigma^T Sigma``.
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

    python -c "from numeric.linear_attention_gram import CHECKS; print([c.run(20, 'cpu', 0)['passed'] for c in CHECKS])"
"""

from __future__ import annotations

from typing import Any

import numpy as np
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


def _numbers(*tensors) -> list[np.ndarray]:
    return [t.detach().cpu().numpy() for t in tensors]


def run_factorization(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """Attn(X) = U M at a random rank-r context X (L x d) and weights, M from the derivation; rank(Attn) <= r."""
    device, generator = _setup(device, seed)
    M_derived = get("iclr.attention_factorization").derivation.values["M"]
    errors, wrong = [], []
    L, d, r = 7, 4, 2
    for _ in range(instance_count(samples)):
        X = _random((L, r), generator, device) @ _random((r, d), generator, device)  # rank r
        W_Q, W_K, W_V = (_random((d, d), generator, device) for _ in range(3))
        U, s, Vh = torch.linalg.svd(X, full_matrices=False)
        U, Sigma, V = U[:, :r], torch.diag(s[:r]), Vh[:r].T  # the thin SVD: r nonzero singular values
        values = dict(zip(("Sig", "V", "W_Q", "W_K", "W_V"), _numbers(Sigma, V, W_Q, W_K, W_V)))
        M = torch.as_tensor(M_derived.evaluate(values), device=device)
        target = attention(X, W_Q, W_K, W_V)
        errors.append(relative_error(target, U @ M))
        errors.append(relative_error(target, U @ (U.T @ target)))  # columns in the span of U
        singular = torch.linalg.svdvals(target)
        errors.append((singular[r:].max() / singular[0]).item())  # rank at most r
        M_wrong = Sigma @ V.T @ W_Q @ W_K.T @ V @ V.T @ W_V  # Sigma^T Sigma dropped
        wrong.append(relative_error(target, U @ M_wrong))
    return _verdict(errors, wrong, "Attn(X) = U M, rank <= r", "M without Sigma^T Sigma")


def run_gram_dependence(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """Attn(X) = X F(X^T X) and Attn(P X) = P Attn(X) for random permutations P."""
    device, generator = _setup(device, seed)
    gram_factor = get("iclr.gram_dependence").derivation.values["gram_factor"]
    errors, wrong = [], []
    for _ in range(instance_count(samples)):
        L, d = 9, 3
        X = _random((L, d), generator, device)
        W = [_random((d, d), generator, device) for _ in range(3)]
        target = attention(X, *W)
        values = dict(zip(("W_Q", "W_K", "W_V", "G"), _numbers(*W, X.T @ X)))
        F = torch.as_tensor(gram_factor.evaluate(values), device=device)
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
    last_row = get("iclr.bigram_invisible").derivation.values["last_row"]
    errors, wrong = [], []
    states, length = 4, 12
    e = np.eye(length)[-1]
    for _ in range(instance_count(samples)):
        tokens = torch.randint(states, (length,), generator=generator, device=device)
        order = torch.randperm(length - 1, generator=generator, device=device)
        shuffled = torch.cat([tokens[:-1][order], tokens[-1:]])
        X_a, X_b = _one_hot(tokens, states), _one_hot(shuffled, states)
        W = [_random((states, states), generator, device) for _ in range(3)]
        errors.append(relative_error(attention(X_a, *W)[-1], attention(X_b, *W)[-1]))
        derived = last_row.evaluate({"X": X_a.cpu().numpy(), "e": e, **dict(zip(("W_Q", "W_K", "W_V"), _numbers(*W)))})
        errors.append(relative_error(attention(X_a, *W)[-1], torch.as_tensor(derived, device=device)))
        errors.append(relative_error(X_a.T @ X_a, torch.diag(X_a.sum(0))))
        # the estimator's statistic x_L^T X^T Y is what would tell them apart
        wrong.append(relative_error(X_a[-1] @ X_a[:-1].T @ X_a[1:], X_b[-1] @ X_b[:-1].T @ X_b[1:]))
    return _verdict(errors, wrong, "one-hot contexts with equal counts", "bigram readout x_L^T X^T Y")


def run_previous_token_gram(samples: int | None = None, device: Any = "cpu", seed: int = 0) -> dict[str, Any]:
    """The derived block (2, 1) of Z^T Z, Z = [X | S X], equals the directly counted bigrams."""
    device, generator = _setup(device, seed)
    block = get("iclr.previous_token_gram").derivation.values["gram21"]
    errors, wrong = [], []
    states, length = 4, 15
    shift = np.eye(length, k=-1)
    for _ in range(instance_count(samples)):
        tokens = torch.randint(states, (length,), generator=generator, device=device)
        X = _one_hot(tokens, states)
        counts = torch.zeros(states, states, dtype=torch.float64, device=device)
        for before, after in zip(tokens[:-1].tolist(), tokens[1:].tolist()):
            counts[before, after] += 1
        gram21 = torch.as_tensor(block.evaluate({"X": X.cpu().numpy(), "S": shift}), device=device)
        errors.append(relative_error(counts, gram21))
        wrong.append(relative_error(counts, (X.T @ X)))
    return _verdict(errors, wrong, "Z^T Z block (2, 1) = bigram counts", "block without the shift")


CHECKS = [
    DeterministicCheck(id="iclr.attention_factorization", run=run_factorization,
                       description="torch SVD of a rank-r X: Attn(X) = U M (M derived), rank <= r; "
                                   "dropping Sigma^T Sigma fails"),
    DeterministicCheck(id="iclr.gram_dependence", run=run_gram_dependence,
                       description="Attn(X) = X F(X^T X); permutation equivariance; a non-orthogonal mix fails"),
    DeterministicCheck(id="iclr.bigram_invisible", run=run_bigram_invisible,
                       description="shuffled one-hot contexts give equal last outputs; bigram counts differ"),
    DeterministicCheck(id="iclr.previous_token_gram", run=run_previous_token_gram,
                       description="previous-token Gram block = counted bigrams; X^T X instead fails"),
]
