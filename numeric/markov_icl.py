r"""In-context Markov chains: one linear-attention layer cannot learn them.

Task.  Each sequence has its own transition matrix ``T`` over ``K`` states
(rows drawn i.i.d. Dirichlet(1)); the first token is uniform, then
``s_{t+1} ~ T[s_t]``.  Tokens are one-hot.  Every model reads the prefix
``s_0..s_t`` and outputs logits for ``s_{t+1}``.

Models (``logits_t`` may depend on the prefix only):

* ``linear``      one linear-attention layer on one-hot tokens ``x_t``:
                  ``logits_t = (1/(t+1)) sum_h sum_{s<=t} (x_t^T W_Q^h W_K^h^T x_s) x_s^T W_V^h + b``
                  (causal prefix attention, no softmax, no positional encoding;
                  the ``1/(t+1)`` is the size of the attended multiset; 4 heads
                  summed, which only makes the optimisation reliable: a single
                  head of ``linear_prev`` got stuck at ~40% of the gap for some
                  seeds).  By
                  ``iclr.gram_dependence`` ``logits_t`` is a function of ``x_t`` and
                  the prefix Gram matrix ``diag(counts)`` only.
* ``linear_prev`` the same layer on previous-token features ``x_t (+) x_{t-1}``
                  (``x_{-1} = 0``); its Gram matrix holds the bigram counts
                  (``iclr.previous_token_gram``).
* ``perm_mlp``    an MLP on ``(x_t, counts/(t+1), (t+1)/L)``: the best a model can
                  do that sees the context only as a multiset.
* ``softmax1``    one softmax-attention layer with learned positional embeddings.
* ``softmax2``    two softmax-attention layers with learned positional embeddings
                  (positive control: an induction head can build the bigram
                  estimator).

Exact predictors, no training: ``unigram`` (in-context token frequencies with
add-one smoothing), ``bigram`` (in-context transition counts out of ``s_t``
with add-one smoothing), ``oracle`` (the true ``T[s_t]``).

Evaluation.  Next-token cross-entropy (nats) averaged over the *last half* of
each sequence, i.e. the predictions of ``s_{t+1}`` for ``t = L/2 - 1, ..., L - 2``
(every model has seen at least ``L/2`` tokens), the same positions for every
model; ``loss`` is the mean over held-out sequences and ``stderr`` its standard
error over sequences.  Training minimises the cross-entropy over all positions
with Adam on fresh sequences every step.

Footnote 2 of the blog: ``linear`` trained and evaluated on one fixed chain
(``linear_fixed_chain``) gets near that chain's ``oracle_fixed_chain``; trained
on many chains (``linear``) it stays at the unigram level.

Run::

    python -m numeric.markov_icl [--states K] [--length L] [--steps S]
        [--device auto|cpu|cuda] [--seed S] [--format text|json] [--figure PATH]

``--steps`` is the number of Adam steps (batch 64, one-cycle learning rate)
of each model, except ``softmax2`` which gets 2.5 times as many (see
:data:`STEP_MULTIPLIER`).  On the CPU one torch thread is used.  The defaults
(K = 5, L = 64, 800 steps) take about 75 s on two CPU cores and write
``docs/figures/markov_icl.png`` (and print its path); a tqdm bar goes to stderr.  ``--figure ''`` skips
the figure.  Bad arguments: one line on stderr, exit code 2.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import nn

from numeric.device import resolve_device

EXACT_MODELS = ("unigram", "bigram", "oracle")
TRAINED_MODELS = ("linear", "linear_prev", "perm_mlp", "softmax1", "softmax2")
# training steps of each model, in units of --steps
STEP_MULTIPLIER = {"linear": 1.0, "linear_prev": 1.0, "perm_mlp": 1.0, "softmax1": 1.0, "softmax2": 2.5,
                   "linear_fixed_chain": 1.0}
LEARNING_RATE = {"linear": 3e-2, "linear_prev": 3e-2, "perm_mlp": 3e-3, "softmax1": 3e-3, "softmax2": 1e-2,
                 "linear_fixed_chain": 3e-2}


@dataclass(frozen=True)
class Config:
    states: int = 5
    length: int = 64
    steps: int = 800
    batch: int = 64
    eval_sequences: int = 2000
    seed: int = 0


# ------------------------------------------------------------------ data


def sample_transitions(batch: int, states: int, generator: torch.Generator, device) -> torch.Tensor:
    """``batch`` transition matrices (batch, K, K), rows i.i.d. Dirichlet(1)."""
    exponentials = -torch.log(torch.rand(batch, states, states, generator=generator, device=device,
                                         dtype=torch.float64).clamp_min(1e-300))
    transitions = exponentials / exponentials.sum(-1, keepdim=True)
    assert transitions.shape == (batch, states, states)
    return transitions


def sample_chains(transitions: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Token sequences (batch, L): uniform first token, then ``s_{t+1} ~ T[s_t]``."""
    batch, states, _ = transitions.shape
    device = transitions.device
    cumulative = transitions.cumsum(-1)
    tokens = torch.empty(batch, length, dtype=torch.long, device=device)
    tokens[:, 0] = torch.randint(states, (batch,), generator=generator, device=device)
    uniforms = torch.rand(batch, length, generator=generator, device=device, dtype=torch.float64)
    rows = torch.arange(batch, device=device)
    for t in range(1, length):
        cdf = cumulative[rows, tokens[:, t - 1]]  # (batch, K)
        tokens[:, t] = (cdf < uniforms[:, t : t + 1]).sum(-1).clamp_max(states - 1)
    return tokens


def sample_batch(batch: int, states: int, length: int, generator: torch.Generator, device,
                 fixed_transition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (batch, L), transitions (batch, K, K)); one shared chain if ``fixed_transition``."""
    if fixed_transition is None:
        transitions = sample_transitions(batch, states, generator, device)
    else:
        transitions = fixed_transition.to(device).expand(batch, states, states)
    return sample_chains(transitions, length, generator), transitions


# --------------------------------------------------------- exact predictors


def prefix_counts(tokens: torch.Tensor, states: int) -> torch.Tensor:
    """counts[b, t, j] = number of s <= t with tokens[b, s] = j."""
    return F.one_hot(tokens, states).to(torch.float64).cumsum(1)


def prefix_bigram_counts(tokens: torch.Tensor, states: int) -> torch.Tensor:
    """pairs[b, t, i, j] = number of s < t with (tokens[b, s], tokens[b, s+1]) = (i, j)."""
    batch, length = tokens.shape
    one_hot = F.one_hot(tokens, states).to(torch.float64)
    pair = torch.einsum("bti,btj->btij", one_hot[:, :-1], one_hot[:, 1:])
    pairs = torch.zeros(batch, length, states, states, dtype=torch.float64, device=tokens.device)
    pairs[:, 1:] = pair.cumsum(1)
    return pairs


def unigram_log_probs(tokens: torch.Tensor, states: int) -> torch.Tensor:
    """log p(s_{t+1} = j) = log (count_j(s_0..s_t) + 1) / (t + 1 + K)."""
    counts = prefix_counts(tokens, states) + 1.0
    return torch.log(counts / counts.sum(-1, keepdim=True))


def bigram_log_probs(tokens: torch.Tensor, states: int) -> torch.Tensor:
    """log p(s_{t+1} = j) = log (#(s_t -> j in s_0..s_t) + 1) / (#(s_t -> .) + K)."""
    pairs = prefix_bigram_counts(tokens, states)
    index = tokens[:, :, None, None].expand(-1, -1, 1, states)
    rows = pairs.gather(2, index).squeeze(2) + 1.0  # (batch, L, K)
    return torch.log(rows / rows.sum(-1, keepdim=True))


def oracle_log_probs(tokens: torch.Tensor, transitions: torch.Tensor) -> torch.Tensor:
    """log T[s_t, j], the true next-token distribution."""
    rows = torch.arange(tokens.shape[0], device=tokens.device)[:, None]
    return torch.log(transitions[rows, tokens].clamp_min(1e-300))


# ------------------------------------------------------------------ models


def causal_linear_attention(features: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                            value: torch.Tensor) -> torch.Tensor:
    """Causal linear attention summed over heads, for z = features (B, L, n).

    ``out_t = (1/(t+1)) sum_h sum_{s<=t} (z_t^T W_Q^h W_K^h^T z_s) z_s^T W_V^h
            = (1/(t+1)) sum_h z_t^T W_Q^h W_K^h^T G_t W_V^h``
    with the prefix Gram matrix ``G_t = sum_{s<=t} z_s z_s^T`` (computed so, it
    shows that the prefix enters only through ``G_t``); ``query``, ``key`` are
    (H, n, n) and ``value`` (H, n, K).
    """
    batch, length, width = features.shape
    heads = query.shape[0]
    assert query.shape == key.shape == (heads, width, width) and value.shape[:2] == (heads, width)
    grams = torch.einsum("bsn,bsm->bsnm", features, features).cumsum(1)  # G_t, (B, L, n, n)
    bilinear = query @ key.transpose(-1, -2)  # W_Q W_K^T per head, (H, n, n)
    queried = torch.einsum("bln,hnm->bhlm", features, bilinear)
    read = torch.einsum("bhln,blnm->bhlm", queried, grams)
    sizes = torch.arange(1, length + 1, device=features.device, dtype=features.dtype)[:, None]
    out = torch.einsum("bhlm,hmk->blk", read, value) / sizes
    assert out.shape == (batch, length, value.shape[-1])
    return out


class LinearAttention(nn.Module):
    """One linear-attention layer on one-hot tokens, or on ``x_t (+) x_{t-1}``."""

    def __init__(self, states: int, previous_token: bool = False, heads: int = 4):
        super().__init__()
        self.states = states
        self.previous_token = previous_token
        width = 2 * states if previous_token else states
        self.query = nn.Parameter(torch.randn(heads, width, width) / math.sqrt(width))
        self.key = nn.Parameter(torch.randn(heads, width, width) / math.sqrt(width))
        self.value = nn.Parameter(torch.randn(heads, width, states) / math.sqrt(width * heads))
        self.bias = nn.Parameter(torch.zeros(states))

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """One-hot tokens (B, L, K), with the previous token's one-hot appended if asked."""
        one_hot = F.one_hot(tokens, self.states).to(self.query.dtype)
        if not self.previous_token:
            return one_hot
        previous = torch.zeros_like(one_hot)
        previous[:, 1:] = one_hot[:, :-1]
        return torch.cat([one_hot, previous], dim=-1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return causal_linear_attention(self.features(tokens), self.query, self.key, self.value) + self.bias


class PermutationInvariantMLP(nn.Module):
    """An MLP on (x_t, counts(s_0..s_t)/(t+1), (t+1)/L): sees the prefix only as a multiset."""

    def __init__(self, states: int, length: int, hidden: int = 128):
        super().__init__()
        self.states, self.length = states, length
        self.net = nn.Sequential(nn.Linear(2 * states + 1, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, states))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        dtype = self.net[0].weight.dtype
        one_hot = F.one_hot(tokens, self.states).to(dtype)
        sizes = torch.arange(1, tokens.shape[1] + 1, device=tokens.device, dtype=dtype)[None, :, None]
        frequencies = one_hot.cumsum(1) / sizes
        inputs = torch.cat([one_hot, frequencies, (sizes / self.length).expand(tokens.shape[0], -1, 1)], -1)
        return self.net(inputs)


class SoftmaxTransformer(nn.Module):
    """Attention-only transformer: token + learned positional embeddings, causal softmax layers."""

    def __init__(self, states: int, length: int, layers: int, width: int = 32, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.token_embedding = nn.Embedding(states, width)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(length, width))
        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(layers)])
        self.qkv = nn.ModuleList([nn.Linear(width, 3 * width) for _ in range(layers)])
        self.out = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])
        self.final_norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, states)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape
        h = self.token_embedding(tokens) + self.position_embedding[:length]
        for norm, qkv, out in zip(self.norms, self.qkv, self.out):
            q, k, v = qkv(norm(h)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = h + out(attended.transpose(1, 2).reshape(batch, length, -1))
        return self.readout(self.final_norm(h))


def build_model(name: str, states: int, length: int) -> nn.Module:
    """A fresh model of kind ``name`` (one of :data:`TRAINED_MODELS` or ``linear_fixed_chain``)."""
    if name in ("linear", "linear_fixed_chain"):
        return LinearAttention(states)
    if name == "linear_prev":
        return LinearAttention(states, previous_token=True)
    if name == "perm_mlp":
        return PermutationInvariantMLP(states, length)
    if name == "softmax1":
        return SoftmaxTransformer(states, length, layers=1)
    if name == "softmax2":
        return SoftmaxTransformer(states, length, layers=2)
    raise ValueError(f"unknown model {name!r}")


# ------------------------------------------------------- training and loss


def evaluated_positions(length: int) -> slice:
    """Positions t whose prediction of s_{t+1} is scored: the last half, t = L/2-1 .. L-2."""
    return slice(max(length // 2 - 1, 0), length - 1)


def per_sequence_loss(log_probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean over the evaluated positions of -log p(s_{t+1}), one value per sequence (B,)."""
    batch, length = tokens.shape
    assert log_probs.shape[:2] == (batch, length)
    positions = evaluated_positions(length)
    targets = tokens[:, 1:][:, positions]
    picked = log_probs[:, :-1][:, positions].gather(-1, targets[..., None]).squeeze(-1)
    return -picked.mean(1)


def summarize(losses: torch.Tensor) -> dict[str, float]:
    """Mean and standard error over sequences."""
    losses = losses.double()
    return {"loss": losses.mean().item(),
            "stderr": (losses.std(unbiased=True) / math.sqrt(losses.numel())).item()}


def train(model: nn.Module, config: Config, steps: int, learning_rate: float, device,
          generator: torch.Generator, fixed_transition: torch.Tensor | None = None,
          progress=None) -> list[float]:
    """Adam on fresh batches; returns the per-step training loss on the evaluated positions."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps,
                                                   pct_start=0.1)
    curve = []
    for _ in range(steps):
        tokens, _ = sample_batch(config.batch, config.states, config.length, generator, device,
                                 fixed_transition)
        log_probs = F.log_softmax(model(tokens), -1)
        loss = F.nll_loss(log_probs[:, :-1].reshape(-1, config.states), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            curve.append(per_sequence_loss(log_probs, tokens).mean().item())
        if progress is not None:
            progress.update(1)
    model.eval()
    return curve


@torch.no_grad()
def model_losses(model: nn.Module, tokens: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """Per-sequence evaluation loss of a trained model (B,)."""
    parts = [per_sequence_loss(F.log_softmax(model(tokens[i : i + chunk]).double(), -1), tokens[i : i + chunk])
             for i in range(0, tokens.shape[0], chunk)]
    return torch.cat(parts)


def exact_losses(tokens: torch.Tensor, transitions: torch.Tensor, states: int) -> dict[str, torch.Tensor]:
    """Per-sequence evaluation losses of the exact predictors."""
    return {"unigram": per_sequence_loss(unigram_log_probs(tokens, states), tokens),
            "bigram": per_sequence_loss(bigram_log_probs(tokens, states), tokens),
            "oracle": per_sequence_loss(oracle_log_probs(tokens, transitions), tokens)}


def last_position_logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Logits at the last position, computed in float64 on a copy of the model."""
    double = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return double(tokens)[:, -1]


def shuffle_context(tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each sequence with its positions before the last shuffled (the last token kept)."""
    shuffled = tokens.clone()
    for row in range(tokens.shape[0]):
        order = torch.randperm(tokens.shape[1] - 1, generator=generator, device=tokens.device)
        shuffled[row, :-1] = tokens[row, :-1][order]
    return shuffled


# ------------------------------------------------------------- experiment


def run_experiment(config: Config, device: torch.device, models: tuple[str, ...] = TRAINED_MODELS,
                   fixed_chain: bool = True, show_progress: bool = True) -> tuple[dict, dict, dict]:
    """Train and evaluate every model.

    Returns (results: name -> {loss, stderr, ...}, curves: name -> training
    losses, trained: name -> model).
    """
    torch.manual_seed(config.seed)
    data_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    eval_generator = torch.Generator(device=device).manual_seed(config.seed + 10_000)
    eval_tokens, eval_transitions = sample_batch(config.eval_sequences, config.states, config.length,
                                                 eval_generator, device)
    results = {name: summarize(loss) for name, loss in
               exact_losses(eval_tokens, eval_transitions, config.states).items()}

    names = list(models) + (["linear_fixed_chain"] if fixed_chain else [])
    steps = {name: max(1, int(round(config.steps * STEP_MULTIPLIER[name]))) for name in names}
    progress = None
    if show_progress:
        from tqdm import tqdm

        progress = tqdm(total=sum(steps.values()), desc="markov_icl", file=sys.stderr, leave=False)
    curves, trained = {}, {}
    for index, name in enumerate(names):
        torch.manual_seed(config.seed + 100 * (index + 1))
        fixed = None
        if name == "linear_fixed_chain":
            fixed = sample_transitions(1, config.states, torch.Generator(device=device).manual_seed(config.seed + 7),
                                       device)[0]
        model = build_model(name, config.states, config.length)
        if progress is not None:
            progress.set_postfix_str(name)
        started = time.perf_counter()
        curves[name] = train(model, config, steps[name], LEARNING_RATE[name], device, data_generator, fixed,
                             progress)
        seconds = time.perf_counter() - started
        if fixed is None:
            tokens, transitions = eval_tokens, eval_transitions
        else:
            tokens, transitions = sample_batch(config.eval_sequences, config.states, config.length,
                                               eval_generator, device, fixed)
            for exact, loss in exact_losses(tokens, transitions, config.states).items():
                results[f"{exact}_fixed_chain"] = summarize(loss)
        results[name] = {**summarize(model_losses(model, tokens)), "steps": steps[name],
                         "train_seconds": round(seconds, 2)}
        trained[name] = model
    if progress is not None:
        progress.close()

    gap = results["unigram"]["loss"] - results["bigram"]["loss"]
    for name in list(models):
        results[name]["gap_closed"] = (results["unigram"]["loss"] - results[name]["loss"]) / gap
    if "linear" in trained:
        generator = torch.Generator(device=device).manual_seed(config.seed + 3)
        probe = eval_tokens[:200]
        shuffled = shuffle_context(probe, generator)
        for name in ("linear", "softmax2"):
            if name in trained:
                change = (last_position_logits(trained[name], probe)
                          - last_position_logits(trained[name], shuffled)).abs().max().item()
                results[name]["shuffle_change"] = change
    return results, curves, trained


# ------------------------------------------------------------------ output


def render_text(results: dict, config: Config, seconds: float) -> str:
    """A table of the losses (nats) with standard errors."""
    lines = [f"in-context Markov chains: K = {config.states}, L = {config.length}, "
             f"loss = next-token cross-entropy (nats) over the last half, "
             f"{config.eval_sequences} held-out sequences",
             f"{'model':<22}{'loss':>9}{'stderr':>9}{'gap closed':>12}"]
    for name, entry in results.items():
        closed = f"{entry['gap_closed']:>12.2f}" if "gap_closed" in entry else " " * 12
        extra = f"  shuffle change {entry['shuffle_change']:.1e}" if "shuffle_change" in entry else ""
        lines.append(f"{name:<22}{entry['loss']:>9.4f}{entry['stderr']:>9.4f}{closed}{extra}")
    lines.append(f"gap closed = (unigram - model) / (unigram - bigram); wall time {seconds:.1f} s")
    return "\n".join(lines)


BASELINE_COLOR, TRAINED_COLOR, FIXED_COLOR = "0.55", "tab:blue", "tab:orange"
DEFAULT_FIGURE = "docs/figures/markov_icl.png"


def save_figure(results: dict, curves: dict, path: str, config: Config | None = None) -> str:
    """Held-out losses (bars from 0, coloured by kind: exact baseline / trained on many chains / the
    fixed-chain model with its own oracle drawn over it) and the training curves, as a PNG; returns the path."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.3, 1]})
    names = [n for n in results if not n.endswith("_fixed_chain")] + (
        ["linear_fixed_chain"] if "linear_fixed_chain" in results else [])
    colors = [BASELINE_COLOR if n in EXACT_MODELS else FIXED_COLOR if n.endswith("_fixed_chain") else TRAINED_COLOR
              for n in names]
    heights = [results[n]["loss"] for n in names]
    bars.bar(range(len(names)), heights, yerr=[results[n]["stderr"] for n in names], color=colors, capsize=3)
    for i, h in enumerate(heights):
        bars.text(i, h + 0.02, f"{h:.3f}", ha="center", va="bottom", fontsize=7)
    handles = []
    if "oracle_fixed_chain" in results and "linear_fixed_chain" in names:
        i = names.index("linear_fixed_chain")
        oracle = results["oracle_fixed_chain"]["loss"]
        handles.append(bars.hlines(oracle, i - 0.45, i + 0.45, colors="k", linestyles="--", lw=1.5,
                                   label=f"oracle of that fixed chain ({oracle:.3f})"))
    for name, style in (("unigram", ":"), ("bigram", "--")):
        bars.axhline(results[name]["loss"], color="0.3", linestyle=style, lw=0.8)
    bars.set_xticks(range(len(names)), names, rotation=40, ha="right")
    bars.set_ylim(0, max(heights) * 1.12)  # from 0: the differences are shown at their true size
    bars.set_ylabel("next-token cross-entropy, last half (nats)")
    bars.set_title("held-out loss (bars from 0; dotted: unigram, dashed: bigram)", fontsize=10)
    bars.legend(handles=[Patch(color=BASELINE_COLOR, label="exact predictor (no training)"),
                         Patch(color=TRAINED_COLOR, label="trained on many chains"),
                         Patch(color=FIXED_COLOR, label="trained on one fixed chain")] + handles,
                fontsize=7, loc="lower left")
    for name, curve in curves.items():
        window = max(1, len(curve) // 50)
        smooth = torch.tensor(curve).unfold(0, window, window).mean(1) if len(curve) >= window else torch.tensor(curve)
        lines.plot([window * (i + 1) for i in range(len(smooth))], smooth.tolist(), label=name,
                   ls="--" if name.endswith("_fixed_chain") else "-")
    for name, style in (("unigram", ":"), ("bigram", "--"), ("oracle", "-.")):
        lines.axhline(results[name]["loss"], color="gray", linestyle=style, label=f"{name} (held out)")
    lines.set_xlabel("training step")
    lines.set_ylabel("training cross-entropy, last half (nats)")
    lines.set_ylim(0, results["unigram"]["loss"] * 1.25)
    lines.legend(fontsize=7, ncol=2, loc="lower left")
    lines.set_title("training curves (from 0)", fontsize=10)
    K = config.states if config else "?"
    L = config.length if config else "?"
    fig.suptitle(f"In-context Markov chains, K = {K} states, L = {L}: one linear-attention layer stays at the "
                 "unigram loss,\ntwo softmax-attention layers approach the in-context bigram estimator; "
                 "on one fixed chain linear attention nears that chain's oracle", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------- CLI


def _positive(minimum: int, name: str):
    from numeric.options import integer_at_least

    return integer_at_least(minimum, f"{name} must be at least {minimum}")


def main(argv: list[str] | None = None) -> int:
    from derive.cli import OneLineParser, UsageError
    from numeric.options import add_common_options, run_settings

    parser = OneLineParser(prog="python -m numeric.markov_icl",
                           description="Train linear/softmax attention on in-context Markov chains.")
    parser.add_argument("--states", type=_positive(2, "--states"), default=Config.states, help="number of states K")
    parser.add_argument("--length", type=_positive(2, "--length"), default=Config.length, help="sequence length L")
    parser.add_argument("--steps", type=_positive(1, "--steps"), default=Config.steps, help="Adam steps per model")
    add_common_options(parser, seed_help="seed of the chains and the initialisations")
    parser.add_argument("--figure", default=DEFAULT_FIGURE, help="PNG path ('' for none)")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        raise UsageError(str(error)) from None

    if device.type == "cpu":
        # the models are tiny: one thread is as fast as two and does not stall
        # (OpenMP spin-waits) when the cores are shared with other work
        torch.set_num_threads(1)
    config = Config(states=args.states, length=args.length, steps=args.steps, seed=args.seed)
    started = time.perf_counter()
    results, curves, _ = run_experiment(config, device, show_progress=True)
    seconds = time.perf_counter() - started
    figure = save_figure(results, curves, args.figure, config) if args.figure else None
    if args.format == "json":
        settings = run_settings(args.seed, device, states=config.states, length=config.length, steps=config.steps,
                                eval_sequences=config.eval_sequences)
        sys.stdout.write(json.dumps({"settings": settings, "results": results, "figure": figure,
                                     "seconds": round(seconds, 2)}, indent=2) + "\n")
    else:
        sys.stdout.write(render_text(results, config, seconds) + "\n")
    if figure:
        print(f"figure: {figure}", file=sys.stderr if args.format == "json" else sys.stdout)
    return 0


if __name__ == "__main__":
    from derive.cli import run

    raise SystemExit(run(main))
