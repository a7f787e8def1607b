"""The latency term of LA-DARTS §3.3: LAT(α) = E[LPM(γ)], γ ~ S(α), estimated from M sampled cells.

The sub-network distribution S(α, β) over normal cells
------------------------------------------------------
* Edges. Node j (2..5) keeps 2 of its j incoming edges, drawn *without replacement* from a
  per-node distribution q_j: uniform for DARTS (the paper: "uniformly sample 8 out of 14 edges",
  done per node so every sample is a valid cell), and softmax(β_j) for PC-DARTS (its edge
  normalisation, so β enters the edge choice). Sampling is the Gumbel top-2 trick, i.e. the
  ordered draw e1 ~ q, e2 ~ q restricted to the other edges (Plackett-Luce). The marginal
  inclusion probability is π_e = q_e + Σ_{f≠e} q_f q_e / (1 - q_f).
* Operations. Each kept edge takes op o ~ p_e = softmax(α_e) over the 7 non-`none` ops
  (`none` is renormalised away, it never appears in a derived cell).
* The encoding of γ is the paper's 112-bit vector (bit 8·edge + op).

Estimators of ∇LAT (averaged over the M samples, as the paper averages gradients over γ_m)
------------------------------------------------------------------------------------------
* `pathwise` (differentiable predictors, the paper's method): straight-through through the
  sampled encoding. Bit (e, o) of sample m is s̃_e · h̃_{e,o} with h̃ = h + p_e − sg(p_e) (h the
  sampled one-hot op) and s̃_e = s_e + π_e − sg(π_e) (s_e ∈ {0,1} whether e was kept); `sg` is
  stop-gradient. The forward value is exactly the one-hot encoding of γ_m, so the predictor
  only ever sees valid cells, and ∂LPM/∂bit flows to α (through p) and to β (through π).
  For a predictor linear in the bits this is exactly ∇E[LPM]; otherwise it is the usual
  straight-through approximation.
* `score` (any predictor, including scikit-learn ones and user-registered ones with only
  `predict`): REINFORCE, ∇LAT ≈ 1/M Σ_m (f_m − b_m) ∇ log P(γ_m) with the leave-one-out
  baseline b_m = mean of the other M−1 predictions: unbiased, and lower variance than no baseline.
  log P(γ) sums log p_e(o_e) over kept edges and the Plackett-Luce log-probability of each
  node's ordered edge pair.
* `auto` picks `pathwise` when `predictor.differentiable`, else `score`.

Units and modes
---------------
The predictor answers in milliseconds. Absolute mode (the paper): the added loss is
λ·LAT(α) with LAT in seconds, λ in s⁻¹. Relative mode: λ·LAT(α)/LAT_ref with LAT_ref the same
predictor's latency of DARTS_V2's normal cell, so λ is dimensionless and means the same on a
P100 and on a CPU. `noise_ms` adds N(0, σ) (σ in ms) to every predicted latency (the paper's Table 3).
With a predictor of the paper's encoding (lpm-112) only the normal cell enters LAT: it encodes the
normal cell with a fixed reduction cell. With a whole-network predictor (lpm-224, fitted on a
"-both" profile) the reduction cell is sampled too, from its own α (and β), independently of the
normal cell; the sample is the two encodings side by side, and both estimators reach α_reduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lpm_zoo.encoding import N_EDGES, N_OPS, NODE_OFFSET, encode, encoding_name
from lpm_zoo.errors import LpmError
from lpm_zoo.published import DARTS_V2
from lpm_zoo.space import N_INPUTS, N_NODES

ESTIMATORS = ("auto", "pathwise", "score")

# A (4, 5) table of each node's edge indices (padded with edge 0, masked).
_MAXIN = N_INPUTS + N_NODES - 1
_NODE_EDGES = np.array([[NODE_OFFSET[k] + i if i < N_INPUTS + k else 0 for i in range(_MAXIN)] for k in range(N_NODES)])
_NODE_MASK = np.array([[i < N_INPUTS + k for i in range(_MAXIN)] for k in range(N_NODES)])


@dataclass
class LatencyEstimate:
    """One evaluation of the latency term: `loss` carries the gradient, the rest is for logs."""

    loss: torch.Tensor  # λ·LAT (scaled), differentiable w.r.t. α (and β)
    lat_ms: float  # LAT(α) in ms, the mean predicted latency of the samples (with noise, if any)
    samples_ms: np.ndarray  # (M,) predictions


DIVERGED = ("the architecture weights are no longer finite numbers: the search diverged; lower --lr, --arch-lr or "
            "--lambda and start afresh (--restart or another --out)")


def check_finite(*weights: torch.Tensor | None) -> None:
    """Refuse in one line architecture weights or their probabilities that are NaN or infinite (a diverged search)."""
    if any(w is not None and not bool(torch.isfinite(w).all()) for w in weights):
        raise LpmError(DIVERGED)


def edge_distribution(beta: torch.Tensor | None) -> torch.Tensor:
    """Per-node edge probabilities q as a (4, 5) tensor (padding 0): uniform, or softmax(β_j) per node."""
    idx = torch.as_tensor(_NODE_EDGES)
    mask = torch.as_tensor(_NODE_MASK)
    if beta is None:
        logits = torch.zeros(N_NODES, _MAXIN)
    else:
        logits = beta[idx]
    logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, dim=-1)


def inclusion_probability(q: torch.Tensor) -> torch.Tensor:
    """π_e of sampling 2 edges without replacement from each node's q, as a (14,) tensor."""
    mask = torch.as_tensor(_NODE_MASK)
    qs = q.masked_fill(~mask, 0.0)
    # π_e = q_e + q_e Σ_{f≠e} q_f/(1-q_f)
    ratio = torch.where(mask, qs / (1.0 - qs).clamp_min(1e-12), torch.zeros_like(qs))
    pi = qs + qs * (ratio.sum(dim=1, keepdim=True) - ratio)
    return pi[mask]


def op_distribution(alpha: torch.Tensor) -> torch.Tensor:
    """(14, 8) op probabilities of each edge: softmax over the 7 non-`none` ops, 0 for `none`."""
    p = torch.softmax(alpha[:, 1:], dim=-1)
    return torch.cat([torch.zeros_like(p[:, :1]), p], dim=1)


def sample_subnetworks(alpha: torch.Tensor, beta: torch.Tensor | None, m: int,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """M cells from S(α, β): kept-edge pairs (M, 4, 2) as edge indices in draw order, and ops (M, 14)."""
    with torch.no_grad():
        q = edge_distribution(None if beta is None else beta.detach())
        p = op_distribution(alpha.detach())
        check_finite(p, q)  # multinomial would fail with a traceback on NaN probabilities
        gumbel = -torch.log(-torch.log(torch.rand(m, N_NODES, _MAXIN, generator=generator).clamp(1e-20, 1.0)))
        keys = torch.log(q).unsqueeze(0) + gumbel  # -inf on padding
        slot = keys.topk(2, dim=-1).indices  # (M, 4, 2): position within the node's edges
        edges = torch.as_tensor(_NODE_EDGES)[torch.arange(N_NODES)[None, :, None], slot]
        ops = torch.multinomial(p, m, replacement=True, generator=generator).T  # (M, 14)
    return edges, ops


def encode_samples(edges: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """The 0/1 encodings (M, 112) of sampled cells."""
    m = edges.shape[0]
    keep = torch.zeros(m, N_EDGES)
    keep.scatter_(1, edges.reshape(m, -1), 1.0)
    onehot = torch.nn.functional.one_hot(ops, N_OPS).float()
    return (keep[:, :, None] * onehot).reshape(m, N_EDGES * N_OPS)


def subnetwork_arrays(edges: torch.Tensor, ops: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The sampled cells as lpm_zoo (ops, inputs) int8 arrays (M, 8): what any predictor's `predict` takes."""
    m = edges.shape[0]
    flat = edges.reshape(m, -1)
    inputs = (flat - torch.as_tensor(NODE_OFFSET).repeat_interleave(2)[None]).numpy().astype(np.int8)
    return ops.gather(1, flat).numpy().astype(np.int8), inputs


def log_prob(alpha: torch.Tensor, beta: torch.Tensor | None, edges: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """log P(γ_m) under S(α, β) for the ordered draws, shape (M,), differentiable in α and β."""
    m = edges.shape[0]
    logp_op = torch.log_softmax(alpha[:, 1:], dim=-1)  # (14, 7)
    flat = edges.reshape(m, -1)  # (M, 8)
    lp = logp_op[flat, ops.gather(1, flat) - 1].sum(dim=1)
    if beta is not None:
        q = edge_distribution(beta)  # (4, 5)
        local = flat - torch.as_tensor(NODE_OFFSET).repeat_interleave(2)[None]  # slot within node
        local = local.reshape(m, N_NODES, 2)
        q1 = q[torch.arange(N_NODES)[None, :], local[:, :, 0]]
        q2 = q[torch.arange(N_NODES)[None, :], local[:, :, 1]]
        lp = lp + (torch.log(q1) + torch.log(q2) - torch.log1p(-q1)).sum(dim=1)
    return lp


class LatencyTerm:
    """λ·LAT(α) from any predictor (the normal cell, or both cells for lpm-224), pathwise or score-function gradient."""

    def __init__(self, predictor: Any, lam: float, samples: int = 20, estimator: str = "auto",
                 relative: bool = False, noise_ms: float = 0.0, reference_ms: float | None = None):
        if estimator not in ESTIMATORS:
            raise LpmError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if samples < 2:
            raise LpmError(f"--samples must be at least 2 (the baseline needs other samples), got {samples}")
        if noise_ms < 0:
            raise LpmError(f"--noise must be >= 0 ms, got {noise_ms}")
        differentiable = bool(getattr(predictor, "differentiable", False))
        if estimator == "auto":
            estimator = "pathwise" if differentiable else "score"
        if estimator == "pathwise" and not differentiable:
            raise LpmError("the pathwise estimator needs a differentiable predictor (predict_torch); "
                           "use --estimator score or auto")
        self.predictor = predictor
        self.both = getattr(predictor, "meta", {}).get("encoding") == encoding_name(2)  # whole-network predictor
        self.lam = float(lam)
        self.samples = int(samples)
        self.estimator = estimator
        self.relative = bool(relative)
        self.noise_ms = float(noise_ms)
        self.reference_ms = float(reference_ms) if reference_ms is not None else self._reference()
        if self.relative and not self.reference_ms > 0:
            raise LpmError(f"relative mode needs a positive reference latency, the predictor gives {self.reference_ms}")

    def _reference(self) -> float:
        """The predictor's latency of DARTS_V2 (its normal cell, or the whole genotype) in ms: relative mode's unit."""

        x = [DARTS_V2] if self.both else encode(DARTS_V2.normal)[None]
        return float(np.asarray(self.predictor.predict(x)).reshape(-1)[0])

    def _cells(self, alpha: torch.Tensor, beta: torch.Tensor | None, alpha_reduce: torch.Tensor | None,
               beta_reduce: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """The (α, β) of each cell LAT depends on: the normal cell, and the reduction cell for lpm-224."""
        if not self.both:
            return [(alpha, beta)]
        if alpha_reduce is None:
            raise LpmError("a whole-network (lpm-224) predictor needs the reduction cell's α as well")
        return [(alpha, beta), (alpha_reduce, beta_reduce)]

    def _sample(self, cells: list, m: int, generator: torch.Generator | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [sample_subnetworks(a, b, m, generator) for a, b in cells]

    @staticmethod
    def _arrays(draws: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
        parts = [subnetwork_arrays(e, o) for e, o in draws]
        return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])

    @property
    def scale(self) -> float:
        """Factor from a latency in ms to the loss: λ/1000 (absolute, λ in s⁻¹) or λ/LAT_ref (relative)."""
        return self.lam / self.reference_ms if self.relative else self.lam / 1000.0

    def predict_mean_ms(self, alpha: torch.Tensor, beta: torch.Tensor | None = None, samples: int = 200,
                        seed: int = 0, alpha_reduce: torch.Tensor | None = None,
                        beta_reduce: torch.Tensor | None = None) -> float:
        """A no-gradient Monte Carlo estimate of LAT(α) in ms (for logs and results)."""
        gen = torch.Generator().manual_seed(seed)
        draws = self._sample(self._cells(alpha, beta, alpha_reduce, beta_reduce), samples, gen)
        pred = np.asarray(self.predictor.predict(self._arrays(draws)), dtype=np.float64)
        return float(pred.mean())

    def __call__(self, alpha: torch.Tensor, beta: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, alpha_reduce: torch.Tensor | None = None,
                 beta_reduce: torch.Tensor | None = None) -> LatencyEstimate:
        """Sample M sub-networks and return the scaled latency loss with its gradient estimator."""
        cells = self._cells(alpha, beta, alpha_reduce, beta_reduce)
        draws = self._sample(cells, self.samples, generator)
        noise = None
        if self.noise_ms > 0:
            noise = torch.randn(self.samples, generator=generator, dtype=torch.float64) * self.noise_ms
        if self.estimator == "pathwise":
            enc = torch.cat([self._relaxed_encoding(a, b, e, o) for (a, b), (e, o) in zip(cells, draws)], dim=1)
            pred = self.predictor.predict_torch(enc).reshape(-1)
            if noise is not None:
                pred = pred + noise.to(pred.dtype)
            lat = pred.mean()
            loss = self.scale * lat
            values = pred.detach().double().numpy()
        else:
            pred = self.predictor.predict(self._arrays(draws))
            f = torch.as_tensor(np.asarray(pred, dtype=np.float64).reshape(-1))
            if noise is not None:
                f = f + noise
            m = self.samples
            baseline = (f.sum() - f) / (m - 1)
            lp = sum(log_prob(a, b, e, o) for (a, b), (e, o) in zip(cells, draws))
            surrogate = ((f - baseline).to(lp.dtype) * lp).mean()
            lat = f.mean()
            loss = self.scale * (lat.to(lp.dtype) + surrogate - surrogate.detach())
            values = f.numpy()
        return LatencyEstimate(loss=loss, lat_ms=float(values.mean()), samples_ms=values)

    @staticmethod
    def _relaxed_encoding(alpha: torch.Tensor, beta: torch.Tensor | None, edges: torch.Tensor,
                          ops: torch.Tensor) -> torch.Tensor:
        """Straight-through encodings: forward value one-hot γ_m, gradient through p (ops) and π (edges)."""
        m = edges.shape[0]
        p = op_distribution(alpha)  # (14, 8)
        h = torch.nn.functional.one_hot(ops, N_OPS).to(p.dtype)  # (M, 14, 8)
        h_st = h + (p - p.detach()).unsqueeze(0)
        keep = torch.zeros(m, N_EDGES, dtype=p.dtype)
        keep.scatter_(1, edges.reshape(m, -1), 1.0)
        if beta is not None:
            pi = inclusion_probability(edge_distribution(beta)).to(p.dtype)
            keep = keep + (pi - pi.detach()).unsqueeze(0)
        return (keep.unsqueeze(-1) * h_st).reshape(m, N_EDGES * N_OPS).float()
