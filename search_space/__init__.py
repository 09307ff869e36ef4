"""optinas.search_space: what can be built and what it costs.

Genotype schema and validation, the layer zoo, the block patterns, the network builder, the
search space, the analytic cost model and export to PyTorch source. Imports nothing from
``evaluator`` or ``strategies``. Heavy pieces (torch) load on first use, so importing this
package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError, DataError, GenotypeError, OptinasError
from .genotype import BlockSpec, Coefficient, Genotype, HeadSpec, InputSpec, LayerSpec, StageSpec, StemSpec

__all__ = [
    "OptinasError", "GenotypeError", "ConfigError", "DataError",
    "Genotype", "InputSpec", "LayerSpec", "Coefficient", "BlockSpec", "StemSpec", "StageSpec", "HeadSpec",
    "SearchSpace", "build_model", "count_cost", "count_with_hooks", "Cost", "export_source",
    "load_genotype",
]

_LAZY = {
    "SearchSpace": ".space",
    "build_model": ".builder",
    "count_cost": ".cost",
    "count_with_hooks": ".cost",
    "Cost": ".cost",
    "export_source": ".export",
    "load_genotype": ".io",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
