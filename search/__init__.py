"""Latency-aware differentiable architecture search (DARTS, PC-DARTS) driven by any registered predictor."""
