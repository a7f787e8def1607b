"""Experiments and micro-benchmarks behind BENCHMARKS.md; they use lpm-zoo's public API only (not shipped)."""
