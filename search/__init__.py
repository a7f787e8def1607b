"""Latency-aware differentiable architecture search (DARTS, PC-DARTS) driven by any registered predictor.

The latency term is a library, for your own DARTS code (docs/latency-term.md):

    from lpm_zoo.search import LatencyTerm
    term = LatencyTerm(get_predictor("ort-cpu"), lam=0.5, samples=20, relative=True)
    est = term(alpha)          # est.loss (λ·LAT, differentiable in α), est.lat_ms (LAT(α) in ms)

The names below load lazily, so importing the package (and `lpm --help`) does not pull in torch.
"""

from __future__ import annotations

from lpm_zoo.lazy import lazy_exports

_EXPORTS = {
    "LatencyTerm": ".latency",
    "LatencyEstimate": ".latency",
    "ESTIMATORS": ".latency",
    "sample_subnetworks": ".latency",
    "encode_samples": ".latency",
    "log_prob": ".latency",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
