"""lpm-zoo: latency prediction modules per device backend, and latency-aware DARTS search.

The public names below load lazily, so importing `lpm_zoo` (and running `lpm --help`) does not
pull in torch or scikit-learn until a name that needs them is used.
"""

from __future__ import annotations

from lpm_zoo.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "PRIMITIVES": "lpm_zoo.space",
    "EDGES": "lpm_zoo.space",
    "Genotype": "lpm_zoo.space",
    "GenotypeError": "lpm_zoo.space",
    "parse_genotype": "lpm_zoo.space",
    "LpmError": "lpm_zoo.errors",
    "get_genotype": "lpm_zoo.published",
    "list_genotypes": "lpm_zoo.published",
    "encode": "lpm_zoo.encoding",
    "encode_batch": "lpm_zoo.encoding",
    "encode_arrays": "lpm_zoo.encoding",
    "decode": "lpm_zoo.encoding",
    "cell_key": "lpm_zoo.encoding",
    "genotype_key": "lpm_zoo.encoding",
    "canonical_cell": "lpm_zoo.encoding",
    "sample_arrays": "lpm_zoo.sampler",
    "sample_cells": "lpm_zoo.sampler",
    "sample_genotypes": "lpm_zoo.sampler",
    "count_cells": "lpm_zoo.sampler",
    "NetworkCIFAR": "lpm_zoo.networks",
    "NetworkImageNet": "lpm_zoo.networks",
    "build_network": "lpm_zoo.networks",
    "count_params": "lpm_zoo.complexity",
    "count_madds": "lpm_zoo.complexity",
    "get_profile": "lpm_zoo.profiles",
    "list_profiles": "lpm_zoo.profiles",
    "MeasurementStore": "lpm_zoo.store",
    "load_dataset": "lpm_zoo.store",
    "create_predictor": "lpm_zoo.predictors",
    "get_predictor": "lpm_zoo.predictors",
    "list_predictors": "lpm_zoo.predictors",
    "list_predictor_types": "lpm_zoo.predictors",
    "register_predictor": "lpm_zoo.predictors",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
