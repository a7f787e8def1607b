"""Published DARTS-space genotypes by name (data copied from the authors' code) and the paper's figures."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from lpm_zoo.errors import LpmError
from lpm_zoo.space import Genotype


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("lpm_zoo").joinpath("data/published_genotypes.json").read_text("utf-8")
    return json.loads(text)


PUBLISHED: tuple[str, ...] = tuple(_data()["genotypes"])
"""Names of the published genotypes: DARTS_V2, PC_DARTS_cifar, PC_DARTS_image."""


def list_genotypes() -> list[str]:
    """Names of the published genotypes."""
    return list(PUBLISHED)


def get_genotype(name: str) -> Genotype:
    """The published genotype `name`; unknown names get an error listing the known ones."""
    data = _data()["genotypes"].get(name)
    if data is None:
        raise LpmError(f"unknown genotype {name!r}; published: {', '.join(PUBLISHED)}")
    return Genotype.from_dict(data)


def published_figures(name: str) -> dict[str, float]:
    """The paper's figures for a published genotype (params, multiply-adds, P100 latency)."""
    return dict(_data()["published_figures"].get(name, {}))


DARTS_V2 = get_genotype("DARTS_V2")
PC_DARTS_cifar = get_genotype("PC_DARTS_cifar")
PC_DARTS_image = get_genotype("PC_DARTS_image")
