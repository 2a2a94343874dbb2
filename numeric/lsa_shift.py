r"""Train the LSA, then test it at other lengths M and under covariate shift, against the derived curves.

Experiment
----------
1. Train the full model (every entry of :math:`W^{PV}, W^{KQ}` trainable, Adam, fresh prompts every step)
   on prompts of length N with tokens N(0, Λ), Λ = diag(0.5, 1, 1.5), w ~ N(0, I), no noise, from the
   balanced start of the seed (u = σ, U11 = σΘΘᵀ); the learning rate decays so that Adam settles.
2. Evaluate the trained model by Monte Carlo (the literal forward pass, normalization 1/M) on test prompts
   of length M ∈ {1, 2, 5, 10, 20, 50, 200} for four test laws: the training law; a query shift
   (S_q = 4Λ); a task shift (Ψ = diag(3, 1, 0.3)) with label noise σ = 0.5; a context shift (S = 2Λ).
   Each is compared with the derived ``test_error`` of ``lsa.test_error`` at the *derived* minimizer.
3. Scale all test covariates by c ∈ [0.5, 3] (covariance c²Λ) at M = 200 and compare with the derived
   error at that M and with its N, M → ∞ limit ``limit_error`` = c²(c² − 1)² tr Λ (``lsa.covariate_shift``).

The printed table gives, for each point, the Monte Carlo mean ± standard error, the derived value and
z; the run fails (exit status 1) when the trained model's u·U11 is off Γ⁻¹ by more than 2 % (Frobenius,
relative) or a point's z, against the derived error of the trained model itself (the same derivation
at its u·U11 = V, ``test_error_any_product``), exceeds the Bonferroni 5σ threshold; the minimizer's
curve (``lsa.test_error``) is drawn and printed beside it.

Run::

    python -m numeric.lsa_shift [--seed 0] [--steps 2000] [--prompts 40000] [--format text|json] [--figure docs/figures/lsa_shift.png]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from numeric.lsa_generalization import DTYPE, embed, gamma, lsa_predict, on
from numeric.montecarlo import bonferroni_threshold

DEFAULT_FIGURE = Path("docs") / "figures" / "lsa_shift.png"
LENGTHS = (1, 2, 5, 10, 20, 50, 200)
LABELS = {"training law": "training law", "query shift Sq = 4 Lambda": r"query shift $S_q = 4\Lambda$",
          "task shift + noise": r"task shift $\Psi \neq I$, noise $\sigma = 0.5$",
          "context shift S = 2 Lambda": r"context shift $S = 2\Lambda$"}
SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def train(Lambda: np.ndarray, N: int, steps: int, seed: int, batch: int = 1024, device="cpu") -> dict[str, Any]:
    """Adam on the full W^PV, W^KQ from the seed's balanced start; fresh prompts every step."""
    d = Lambda.shape[0]
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((d, d))
    theta /= np.sqrt(np.linalg.norm(theta @ theta.T, "fro"))
    sigma = 0.3
    wpv = np.zeros((d + 1, d + 1))
    wkq = np.zeros((d + 1, d + 1))
    wpv[d, d] = sigma
    wkq[:d, :d] = sigma * theta @ theta.T
    W_PV, W_KQ = (torch.tensor(w, dtype=DTYPE, device=device, requires_grad=True) for w in (wpv, wkq))
    opt = torch.optim.Adam([W_PV, W_KQ], lr=0.02)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1.0 + 20.0 * k / steps) ** 2)
    generator = torch.Generator(device=device).manual_seed(seed)
    chol = on(device, np.linalg.cholesky(Lambda))
    for _ in range(steps):
        x = torch.randn((batch, N, d), generator=generator, dtype=DTYPE, device=device) @ chol.T
        xq = torch.randn((batch, d), generator=generator, dtype=DTYPE, device=device) @ chol.T
        w = torch.randn((batch, d), generator=generator, dtype=DTYPE, device=device)
        y = (x @ w.unsqueeze(-1)).squeeze(-1)
        loss = 0.5 * ((lsa_predict(embed(x, y, xq), W_PV, W_KQ) - (w * xq).sum(-1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return {"W_PV": W_PV.detach().cpu().numpy(), "W_KQ": W_KQ.detach().cpu().numpy()}


def evaluate(weights: dict, law: dict, M: int, prompts: int, generator) -> tuple[float, float]:
    """Mean and standard error of (ŷ − y_q)² over test prompts of length M from ``law`` (on the generator's device)."""
    d = law["S"].shape[0]
    device = generator.device
    values = []
    for start in range(0, prompts, 50_000):
        b = min(50_000, prompts - start)
        def sample(shape, covariance):
            return torch.randn(shape, generator=generator, dtype=DTYPE, device=device) @ on(
                device, np.linalg.cholesky(law[covariance])).T

        x, xq, w = sample((b, M, d), "S"), sample((b, d), "Sq"), sample((b, d), "Psi")
        eps = law["sigma"] * torch.randn((b, M + 1), generator=generator, dtype=DTYPE, device=device)
        y = (x @ w.unsqueeze(-1)).squeeze(-1) + eps[:, :M]
        yhat = lsa_predict(embed(x, y, xq), on(device, weights["W_PV"]), on(device, weights["W_KQ"]))
        values.append(((yhat - (w * xq).sum(-1) - eps[:, M]) ** 2).cpu().numpy())
    v = np.concatenate(values)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


def derived_error(Lambda, N, M, law, product=None) -> float:
    """The derived test error at the minimizer (``lsa.test_error``) or, given ``product`` = u·U11, at that model."""
    d = Lambda.shape[0]
    values = {"S": law["S"], "Sq": law["Sq"], "Psi": law["Psi"], "sigma": law["sigma"], "M": M}
    if product is None:
        from derive.registry import get

        poly = get("lsa.test_error").derivation.values["test_error"]
        return float(poly.evaluate({**values, "Lambda": Lambda}, d, N))
    from derive.lsa_generalization import test_error_any_product

    return float(test_error_any_product().evaluate({**values, "V": product}, d, N))


def experiment(seed: int = 0, steps: int = 2000, prompts: int = 40_000, figure: str | None = None,
               device="cpu") -> dict:
    """Train at N = 10 on N(0, Lambda) prompts, then measure the test error at the lengths and laws above."""
    from numeric.options import run_settings

    start = time.perf_counter()
    Lambda = np.diag([0.5, 1.0, 1.5])
    d, N = 3, 10
    weights = train(Lambda, N, steps, seed, device=device)
    G = gamma(Lambda, N)
    trained_product = weights["W_PV"][d, d] * weights["W_KQ"][:d, :d]
    V = trained_product
    residual = float(np.linalg.norm(trained_product - np.linalg.inv(G)) / np.linalg.norm(np.linalg.inv(G)))
    cross = float(max(np.abs(weights["W_PV"][d, :d]).max(), np.abs(weights["W_KQ"][d, :d]).max()))
    laws = {"training law": {"S": Lambda, "Sq": Lambda, "Psi": np.eye(d), "sigma": 0.0},
            "query shift Sq = 4 Lambda": {"S": Lambda, "Sq": 4 * Lambda, "Psi": np.eye(d), "sigma": 0.0},
            "task shift + noise": {"S": Lambda, "Sq": Lambda, "Psi": np.diag([3.0, 1.0, 0.3]), "sigma": 0.5},
            "context shift S = 2 Lambda": {"S": 2 * Lambda, "Sq": Lambda, "Psi": np.eye(d), "sigma": 0.0}}
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    points = []
    for name, law in laws.items():
        for M in LENGTHS:
            mean, se = evaluate(weights, law, M, prompts, generator)
            points.append({"panel": "M", "law": name, "M": M, "mean": mean, "se": se,
                           "label": LABELS[name], "derived": derived_error(Lambda, N, M, law),
                           "derived_trained": derived_error(Lambda, N, M, law, V)})
    M_c = 200
    for c in SCALES:
        law = {"S": c**2 * Lambda, "Sq": c**2 * Lambda, "Psi": np.eye(d), "sigma": 0.0}
        mean, se = evaluate(weights, law, M_c, prompts, generator)
        from derive.registry import get

        limit = float(get("lsa.covariate_shift").derivation.values["limit_error"].evaluate({"Lambda": Lambda, "c": c}, d))
        points.append({"panel": "c", "c": c, "M": M_c, "mean": mean, "se": se, "derived": derived_error(Lambda, N, M_c, law),
                       "derived_trained": derived_error(Lambda, N, M_c, law, V), "limit": limit})
    threshold = bonferroni_threshold(len(points))
    for p in points:
        p["z"] = abs(p["mean"] - p["derived_trained"]) / p["se"]
    passed = residual < 0.02 and all(p["z"] <= threshold for p in points)
    report = {"d": d, "N": N, "steps": steps, "seed": seed, "prompts": prompts, "uU11_relative_error": residual,
              "max_cross": cross, "threshold": threshold, "points": points, "passed": bool(passed),
              "seconds": time.perf_counter() - start,
              "settings": run_settings(seed, device, d=d, N=N, steps=steps, prompts=prompts)}
    if figure:
        report["figure"] = draw(points, Lambda, N, figure)
    return report


def draw(points, Lambda, N, path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = dict(zip(["training law", "query shift Sq = 4 Lambda", "task shift + noise", "context shift S = 2 Lambda"],
                      ["C0", "C1", "C2", "C3"]))
    for law, color in colors.items():
        rows = [p for p in points if p["panel"] == "M" and p["law"] == law]
        Ms = np.array([p["M"] for p in rows])
        left.errorbar(Ms, [p["mean"] for p in rows], yerr=[2 * p["se"] for p in rows], fmt="o", color=color,
                      label=f"trained LSA, {LABELS[law]}")
        left.plot(Ms, [p["derived"] for p in rows], "-", color=color, alpha=0.7)
    left.axvline(N, color="grey", ls=":", label=f"training length $N = {N}$")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("test prompt length $M$")
    left.set_ylabel(r"$\mathbb{E}(\hat y - y_q)^2$")
    left.set_title("test error vs $M$ (lines: derived lsa.test_error)", fontsize=10)
    left.legend(fontsize=7)
    rows = [p for p in points if p["panel"] == "c"]
    cs = np.array([p["c"] for p in rows])
    fine = np.linspace(cs.min(), cs.max(), 200)
    right.errorbar(cs, [p["mean"] for p in rows], yerr=[2 * p["se"] for p in rows], fmt="o", color="C0",
                   label=f"trained LSA, $M = {rows[0]['M']}$")
    right.plot(cs, [p["derived"] for p in rows], "-", color="C0", alpha=0.7, label="derived, same $M$, $N$")
    right.plot(fine, fine**2 * (fine**2 - 1) ** 2 * np.trace(Lambda), "k--",
               label=r"limit $c^2(c^2-1)^2\,\mathrm{tr}\,\Lambda$")
    right.set_yscale("symlog", linthresh=0.1)
    right.set_xlabel(r"test covariates scaled by $c$ (covariance $c^2\Lambda$)")
    right.set_ylabel(r"$\mathbb{E}(\hat y - y_q)^2$")
    right.set_title(r"covariate scaling: $\mathbb{E}[\hat y \mid x_q, w] \to c^2\, w^\top x_q$", fontsize=10)
    right.legend(fontsize=8)
    fig.suptitle("A trained LSA follows the derived test error at every length $M$ and under shift; "
                 "scaled covariates are predicted $c^2$ times too large", fontsize=11)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return str(out)


def main(argv=None) -> int:
    from derive.cli import OneLineParser, UsageError
    from numeric.device import resolve_device
    from numeric.options import add_common_options

    parser = OneLineParser(prog="python -m numeric.lsa_shift",
                           description="Train the LSA, test it at other lengths and under covariate shift.")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps (>= 100)")
    parser.add_argument("--prompts", type=int, default=40_000, help="test prompts per point (>= 1000)")
    parser.add_argument("--figure", default=str(DEFAULT_FIGURE), help="PNG path ('' for none)")
    add_common_options(parser, seed_help="seed of the start, training and test prompts")
    args = parser.parse_args(argv)
    if args.steps < 100:
        raise UsageError(f"--steps must be at least 100, got {args.steps}")
    if args.prompts < 1000:
        raise UsageError(f"--prompts must be at least 1000, got {args.prompts}")
    report = experiment(args.seed, args.steps, args.prompts, args.figure or None, device=resolve_device(args.device))
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(f"LSA trained by Adam (full W^PV, W^KQ), d = {report['d']}, N = {report['N']}, {report['steps']} steps, "
              f"seed {report['seed']}: |u U11 - inv(Gamma)|/|inv(Gamma)| = {report['uU11_relative_error']:.2e}, "
              f"max |u12|, |u21| = {report['max_cross']:.1e}")
        print(f"{'law':<28} {'M':>4} {'c':>5} {'measured':>22} {'derived (trained V)':>20} {'derived (minimizer)':>20} "
              f"{'z':>6}")
        for p in report["points"]:
            law = p.get("law", "covariates scaled by c")
            c = f"{p['c']:.2f}" if "c" in p else ""
            print(f"{law:<28} {p['M']:>4} {c:>5} {p['mean']:>13.5g} ± {p['se']:<7.2g} {p['derived_trained']:>20.5g} "
                  f"{p['derived']:>20.5g} {p['z']:>6.2f}")
        print(f"threshold {report['threshold']:.2f} (Bonferroni over {len(report['points'])} points)")
        if "figure" in report:
            print(f"figure: {report['figure']}")
        print(f"{'PASSED' if report['passed'] else 'FAILED'} ({report['seconds']:.1f} s)")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    from derive.cli import run as run_cli

    sys.exit(run_cli(main))
