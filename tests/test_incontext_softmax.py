"""derive.incontext_softmax: softmax = row-normalised exponential kernel; its relation to kernel ridge."""

from __future__ import annotations

import math

import torch

from derive import incontext_softmax as sm
from derive.engine.statements import evaluate
from derive.registry import all_results, check_equations
from numeric import incontext_softmax as numeric_sm


def test_result_registered_and_equations_hold():
    (result,) = [r for r in all_results() if r.id == "incontext.softmax_smoother"]
    assert result.module == "derive.incontext_softmax" and result.sources
    assert check_equations(result) == []


def test_key_factor_does_not_cancel():
    """Negative control: normalising the rows removes D_q but not D_k."""
    assert evaluate(sm.NORMALISED, sm.SOFTMAX) != evaluate("inv(Dt) @ K_rbf", sm.SOFTMAX)


def test_first_order_neumann_is_not_enough():
    """Negative control: I - K/lam leaves a K**2/lam**2 remainder."""
    assert evaluate("(K + lam * I(n)) @ (I(n) - K/lam) / lam", sm.SOFTMAX) != evaluate("I(n)", sm.SOFTMAX)


def test_softmax_identity_and_wrong_variant():
    g = torch.Generator().manual_seed(0)
    Q, Kx, V = (torch.randn(s, generator=g, dtype=torch.float64) for s in ((4, 3), (6, 3), (6, 2)))
    K_exp = numeric_sm.exponential_kernel(Q, Kx)
    attention = torch.softmax(Q @ Kx.T / math.sqrt(3), dim=1) @ V
    assert torch.allclose(attention, (K_exp / K_exp.sum(1, keepdim=True)) @ V, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(attention, K_exp @ V, rtol=1e-3)


def test_numeric_check_passes_with_controls_rejected():
    report = numeric_sm.CHECKS[0].run(3, "cpu", 4)
    assert report["passed"] and all(report["negative_controls"].values()), report["detail"]
