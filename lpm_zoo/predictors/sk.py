"""Baselines: scikit-learn regressors on the 112-bit encoding (random forest, GBRT, kNN).

kNN is its training set and parameters, stored as arrays (safetensors). The tree ensembles are
stored with skops (never pickle), and a stored model is loaded only if every type skops does not
trust by default is in the type's exact allow-list `skops_types` (tests derive it from freshly
fitted models with `skops.io.get_untrusted_types`). When a stored model was written by another
scikit-learn version, the zoo refits it from the training set stored beside it, with the same seed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from lpm_zoo.predictors.base import Predictor, as_arrays
from lpm_zoo.predictors.registry import register_predictor


class SklearnPredictor(Predictor):
    """A scikit-learn regressor on the dense 112-bit encoding."""

    persistence = "skops"
    #: the exact type paths beyond skops' defaults that a stored model of this type may contain
    skops_types: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self._estimator: Any = None

    def make_estimator(self) -> Any:
        """The unfitted scikit-learn estimator for this predictor's parameters."""
        raise NotImplementedError

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        est = self.make_estimator()
        est.fit(self._dense(ops, inputs), y)
        self._estimator = est

    def _predict(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        out = np.empty(len(ops), np.float64)
        step = 65536
        for s in range(0, len(ops), step):
            out[s : s + step] = self._estimator.predict(self._dense(ops[s : s + step], inputs[s : s + step]))
        return out

    @property
    def fitted(self) -> bool:
        return self._estimator is not None


@register_predictor("rf")
class RandomForestPredictor(SklearnPredictor):
    """Random forest regression on the encoding."""

    skops_types = frozenset({"sklearn.tree._tree.Tree"})

    def __init__(self, n_estimators: int = 200, min_samples_leaf: int = 1, max_features: float = 0.5,
                 seed: int = 0, n_jobs: int | None = None):
        super().__init__()
        self.n_estimators = int(n_estimators)
        self.min_samples_leaf = int(min_samples_leaf)
        self.max_features = max_features
        self.seed = int(seed)
        self.n_jobs = n_jobs

    def make_estimator(self) -> Any:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                     max_features=self.max_features, random_state=self.seed, n_jobs=self.n_jobs)


@register_predictor("gbrt")
class GBRTPredictor(SklearnPredictor):
    """Gradient-boosted regression trees (scikit-learn's histogram GBRT) on the encoding."""

    skops_types = frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"})

    def __init__(self, max_iter: int = 500, learning_rate: float = 0.1, max_leaf_nodes: int = 31, seed: int = 0):
        super().__init__()
        self.max_iter = int(max_iter)
        self.learning_rate = float(learning_rate)
        self.max_leaf_nodes = int(max_leaf_nodes)
        self.seed = int(seed)

    def make_estimator(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                             max_leaf_nodes=self.max_leaf_nodes, early_stopping=False,
                                             random_state=self.seed)


@register_predictor("knn")
class KNNPredictor(SklearnPredictor):
    """k-nearest neighbours on the encoding (Euclidean = square root of the Hamming distance).

    Its fitted state is its training set, so it is stored as arrays and rebuilt on load.
    """

    persistence = "safetensors"
    state_spec = {"ops": ("int8", (None, None)), "inputs": ("int8", (None, None)), "latency_ms": ("float64", (None,))}

    def __init__(self, n_neighbors: int = 10, weights: str = "distance"):
        super().__init__()
        self.n_neighbors = int(n_neighbors)
        self.weights = weights
        self._data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def make_estimator(self) -> Any:
        from sklearn.neighbors import KNeighborsRegressor

        return KNeighborsRegressor(n_neighbors=self.n_neighbors, weights=self.weights)

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        est = self.make_estimator()
        est.set_params(n_neighbors=min(self.n_neighbors, len(y)))
        est.fit(self._dense(ops, inputs), y)
        self._estimator = est
        self._data = (np.asarray(ops, np.int8), np.asarray(inputs, np.int8), np.asarray(y, np.float64))

    def _state(self) -> dict[str, np.ndarray]:
        assert self._data is not None
        ops, inputs, y = self._data
        return {"ops": ops, "inputs": inputs, "latency_ms": y}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        ops, inputs = as_arrays((state["ops"], state["inputs"]))
        y = np.asarray(state["latency_ms"], np.float64)
        if y.shape != (len(ops),) or not np.isfinite(y).all():
            raise ValueError(f"{len(ops)} cells but latencies of shape {y.shape} (or not finite)")
        self._fit(ops, inputs, y)
