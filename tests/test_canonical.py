"""Canonical forms: equal matrix polynomials compare equal, unequal ones do not."""

import numpy as np
import pytest

from derive.engine.pipeline import declare
from derive.engine.polynomial import Polynomial

DECL = declare(spd={"Lambda"}, vectors={"v", "w"})


def same(a: str, b: str, decl=DECL) -> bool:
    return Polynomial.of(a, decl) == Polynomial.of(b, decl)


@pytest.mark.parametrize("a, b", [
    ("tr(A @ B @ C)", "tr(B @ C @ A)"),                 # rotation
    ("tr(A @ B @ C)", "tr(C.T @ B.T @ A.T)"),           # transposition
    ("tr(A @ Lambda)", "tr(Lambda.T @ A)"),             # symmetric symbol
    ("v.T @ A @ w", "w.T @ A.T @ v"),                   # bilinear form reversed
    ("A @ inv(A) @ B", "B"),                            # cancellation
    ("Lambda @ Lambda**2", "Lambda**3"),
    ("(A @ B).T", "B.T @ A.T"),
    ("tr(I)", "d"),
    ("Lambda**(1/2) @ Lambda**(1/2)", "Lambda"),
    ("inv(2 * Lambda + I) @ Lambda", "Lambda @ inv(2 * Lambda + I)"),  # functions of Λ commute with Λ
    ("tr(A @ A.T) - tr(A.T @ A)", "0"),
])
def test_equal(a, b):
    assert same(a, b)


@pytest.mark.parametrize("a, b", [
    ("tr(A @ B @ C)", "tr(A @ C @ B)"),
    ("A @ B", "B @ A"),
    ("tr(A @ B)", "tr(A @ B.T)"),
    ("inv(A + I) @ A", "A @ inv(A + I) @ A"),
    ("inv(2 * Lambda + I) @ A", "A @ inv(2 * Lambda + I)"),  # but not with everything
])
def test_unequal(a, b):
    assert not same(a, b)


def test_canonical_form_agrees_with_numbers():
    rng = np.random.default_rng(3)
    d = 3
    L = rng.normal(size=(d, d))
    values = {"A": rng.normal(size=(d, d)), "B": rng.normal(size=(d, d)), "C": rng.normal(size=(d, d)),
              "Lambda": L @ L.T + np.eye(d), "v": rng.normal(size=d), "w": rng.normal(size=d)}
    text = "tr(A @ Lambda @ B.T @ Lambda) * (v.T @ A @ w) + tr(Lambda @ inv(2 * Lambda + I) @ Lambda @ C)"
    got = Polynomial.of(text, DECL).evaluate(values, d)
    A, B, C, Lam, v, w = (values[k] for k in ("A", "B", "C", "Lambda", "v", "w"))
    want = np.trace(A @ Lam @ B.T @ Lam) * (v @ A @ w) + np.trace(Lam @ np.linalg.inv(2 * Lam + np.eye(d)) @ Lam @ C)
    assert got == pytest.approx(want, rel=1e-12)


def test_named_definitions_are_scoped_to_their_contexts():
    """Γ means the compound only in the context the derivation defined it in; nothing global changes."""
    from derive import lsa_optimum as lsa

    with_gamma = lsa.context()  # DECL with Γ read off the loss
    assert Polynomial.of("Gamma @ Lambda", with_gamma) == Polynomial.of("Lambda @ Gamma", with_gamma)  # commutes
    for plain in (lsa.DECL, declare(spd={"Lambda"})):  # Γ is a plain matrix here, before and after the derivation
        assert Polynomial.of("Gamma @ Lambda", plain) != Polynomial.of("Lambda @ Gamma", plain)


def test_fractional_powers_need_spd():
    from derive.engine.errors import ExpressionError

    with pytest.raises(ExpressionError, match="positive-definite"):
        Polynomial.of("S**(1/2)", declare(symmetric={"S"}))


def test_compounds_are_identified_by_structure():
    """inv(Λ + I) typed twice, or once as inv(I + Λ), is one letter: it cancels against its own inverse.

    (A compound is opaque: it does not cancel against its expansion, inv(Λ + I) @ (Λ + I) stays a sum.)"""
    assert same("inv(Lambda + I) @ inv(I + Lambda)**(-1)", "I")
    assert same("inv(I + Lambda) @ inv(Lambda + I)", "inv(Lambda + I)**2")
