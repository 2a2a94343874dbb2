"""derive.incontext_gd: the GD identities come out of the engine, and fail in their wrong variants."""

from __future__ import annotations

import pytest

from derive import incontext_gd as gd
from derive.engine.statements import evaluate
from derive.registry import all_results, check_equations
from numeric import incontext_gd as numeric_gd

IDS = ("incontext.one_layer_gd", "incontext.zfb_preconditioned_gd", "incontext.depth_t_gd")


def test_results_registered_and_equations_hold():
    registered = {r.id: r for r in all_results()}
    for result_id in IDS:
        result = registered[result_id]
        assert result.module == "derive.incontext_gd" and result.sources and result.derivation.steps
        assert check_equations(result) == []


def test_one_layer_without_one_over_n_is_not_gd():
    """Negative control: with the loss a plain sum, the layer at U11 = eta * P.T is not one GD step."""
    definitions = {"yhat": gd.one_layer_prediction(), "L": "(X @ w - y).T @ (X @ w - y) / 2"}
    layer = evaluate(f"at(yhat, {gd.SUBSPACE}, U11=eta * P.T, u=1)", gd.DECL, definitions)
    assert layer != evaluate("q.T @ at(w - eta * P @ grad(L, w), w=zeros(d, 1))", gd.DECL, definitions)


def test_zfb_step_is_not_the_inv_lambda_step():
    z = gd.zfb_step()
    wrong = evaluate("q.T @ at(w - inv(Lambda) @ grad(L, w), w=zeros(d, 1))", z["context"], {"L": gd.LOSS[1]})
    assert z["residual"].is_zero() and z["at_minimum"] != wrong


def test_wrong_sign_of_u_is_not_gd():
    """Negative control: u = +1 moves the residuals the wrong way."""
    definitions = {"L": gd.LOSS[1], **gd.layer_rows(True)}
    wrong = evaluate("at(s_next, r=y - X @ w, s=-q.T @ w, U11=eta * P.T, u=1)", gd.DECL, definitions)
    assert wrong != gd.depth_t()["s_gd"]


def test_closed_form_with_wrong_power_fails():
    unrolled = gd.depth_t()["unrolled"]
    assert all(r.is_zero() for r in unrolled.values())
    w = gd.closed_form(2)
    assert w != gd.closed_form(3)


@pytest.mark.parametrize("check", numeric_gd.CHECKS, ids=lambda c: c.id)
def test_numeric_checks_pass_with_controls_rejected(check):
    report = check.run(5, "cpu", 1)
    assert report["passed"] and all(report["negative_controls"].values()), report["detail"]
