"""optinas.search_space: what can be built and what it costs.

Genotype schema and validation, the layer zoo, the block patterns, the network builder, the
search space, the analytic cost model and export to PyTorch source. Imports nothing from
``evaluator`` or ``strategies``. Importing the package imports ``layers`` and ``blocks``, which
register their layer kinds and block patterns (the registry itself imports neither), so every
module of the package sees the full registry.
"""

from __future__ import annotations

from . import blocks, layers  # noqa: F401  (registers the built-in layer kinds and block patterns)
from .builder import build_model
from .cost import Cost, count_cost, count_with_hooks
from .errors import ConfigError, DataError, GenotypeError, OptinasError
from .export import export_source
from .genotype import BlockSpec, Coefficient, Genotype, HeadSpec, InputSpec, LayerSpec, StageSpec, StemSpec
from .io import load_genotype
from .packaged_spaces import PACKAGED_SPACES, default_space_for
from .space import SearchSpace

__all__ = [
    "OptinasError", "GenotypeError", "ConfigError", "DataError",
    "Genotype", "InputSpec", "LayerSpec", "Coefficient", "BlockSpec", "StemSpec", "StageSpec", "HeadSpec",
    "SearchSpace", "PACKAGED_SPACES", "default_space_for", "build_model", "count_cost", "count_with_hooks", "Cost",
    "export_source", "load_genotype",
]
