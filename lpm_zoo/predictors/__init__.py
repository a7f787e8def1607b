"""Latency predictors: the interface (`base`), a registry of types (`registry`: `mlp`, baselines), their files
(`files`) and a zoo of fitted ones per backend (`zoo`).

    from lpm_zoo.predictors import create_predictor, get_predictor
    p = create_predictor("mlp", epochs=1000).fit(X, y_ms)   # X: encodings, (ops, inputs) or cells
    ort = get_predictor("ort-cpu")                          # fitted, from the zoo
    ort.predict(cells)  # ms

Importing this package imports neither torch nor scikit-learn; the types import them when used.
Types come from the `lpm_zoo.predictors` entry-point group (the built-ins and any installed
plugin), discovered on first use, so a plugin type saved in the zoo loads in a fresh process.
"""

from lpm_zoo.encoding import ENCODING
from lpm_zoo.predictors.base import Predictor, as_arrays
from lpm_zoo.predictors.files import save_predictor
from lpm_zoo.predictors.registry import create_predictor, list_predictor_types, predictor_class, register_predictor
from lpm_zoo.predictors.zoo import get_predictor, list_predictors, load_predictor, user_zoo_dir, zoo_table

__all__ = [
    "ENCODING",
    "Predictor",
    "as_arrays",
    "create_predictor",
    "get_predictor",
    "list_predictor_types",
    "list_predictors",
    "load_predictor",
    "predictor_class",
    "register_predictor",
    "save_predictor",
    "user_zoo_dir",
    "zoo_table",
]
