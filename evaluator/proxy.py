"""Proxy architectures: the cheaper stand-in a short training scores for a genotype.

Two knobs of :class:`~evaluator.Fidelity` change the network itself rather than the
training run, so they act on the genotype before the caller builds it:

- ``width_multiplier`` scales every stem and stage width (:func:`scale_widths`), as the
  width multiplier of MobileNets does; a proxy at half width trains about 4x faster and,
  for ranking candidates of one family, tends to keep their order;
- ``resolution`` sets the input size the network is built for (the evaluator resizes the
  images to it on the device).

The cost of a candidate is always counted on its real genotype; only training uses the proxy.
"""

from __future__ import annotations

import dataclasses

from optinas.search_space.errors import ConfigError
from optinas.search_space.genotype import BOTTLENECK_EXPANSION, Genotype, InputSpec

from .fidelity import Fidelity

__all__ = ["scale_widths", "proxy_genotype"]


def _scaled(width: int, factor: float, multiple: int = 1) -> int:
    # Rounded to the nearest allowed width: multiples of ``multiple`` (4 for bottleneck
    # bodies), never below one multiple. Rounding is monotone, so a stage that was at least
    # as wide as the one before it stays so (what a 'pad' shortcut needs).
    return max(multiple, multiple * round(width * factor / multiple))


def scale_widths(genotype: Genotype, factor: float) -> Genotype:
    """The same architecture with every stem and stage width multiplied by ``factor``.

    Widths are rounded to the nearest integer (bottleneck stages: to the nearest multiple
    of 4) and kept at least 1 (4). Depth, strides, kernels, block patterns, coefficients,
    layer kinds and the input are unchanged. A pure function: ``genotype`` is not modified.

    Args:
        genotype: The architecture.
        factor: Positive width multiplier; 1 returns ``genotype`` itself.

    Returns:
        The scaled genotype (validated like any other).

    Raises:
        ConfigError: If ``factor`` is not a positive number (a ``ValueError`` too).
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise ConfigError(f"width factor must be a positive number, got {factor!r}")
    if factor == 1:
        return genotype
    stem = dataclasses.replace(genotype.stem, width=_scaled(genotype.stem.width, factor))
    stages = tuple(
        dataclasses.replace(
            stage, width=_scaled(
                stage.width, factor, BOTTLENECK_EXPANSION if stage.body == "bottleneck" else 1
            )
        )
        for stage in genotype.stages
    )
    return dataclasses.replace(genotype, stem=stem, stages=stages)


def proxy_genotype(genotype: Genotype, fidelity: Fidelity) -> Genotype:
    """The genotype to build for training at ``fidelity``: scaled widths, proxy input size.

    Args:
        genotype: The real architecture (the one whose cost is reported).
        fidelity: The proxy recipe; its ``width_multiplier`` and ``resolution`` apply.

    Returns:
        ``genotype`` itself when both are at their defaults, else the proxy genotype.

    Raises:
        search_space.errors.GenotypeError: If the proxy is not a valid architecture (e.g.
            a resolution too small for the genotype's max-pools).
    """
    proxy = scale_widths(genotype, fidelity.width_multiplier)
    if fidelity.resolution is not None:
        size = fidelity.resolution
        spec = genotype.input
        if (spec.height, spec.width) != (size, size):
            proxy = dataclasses.replace(
                proxy, input=InputSpec(spec.channels, size, size, spec.classes)
            )
    return proxy
