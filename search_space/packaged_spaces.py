"""The search spaces shipped with optinas, by name, and the one a task's images call for.

``digits`` (the default, sized for the 8x8 demo), ``cifar`` (3x32x32: the CIFAR ResNets and their
adder, binary and 4-bit variants, HB-Net and DMRNet are points of it) and ``imagenet``
(3x224x224: ResNet-18 and ResNet-50 are points of it) live in ``search_space/spaces/NAME.toml``.
Wherever a space is asked for by ``NAME|FILE``, an existing file wins over a packaged name
(as ``load_genotype`` lets a file win over a preset name).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .genotype_specs import InputSpec

__all__ = ["PACKAGED_SPACES", "DEFAULT_SPACE", "SPACE_INPUTS", "default_space_for", "space_source", "space_label"]

#: Names of the packaged spaces, the default first.
PACKAGED_SPACES: tuple[str, ...] = ("digits", "cifar", "imagenet")
#: The space used when neither a space nor a CIFAR- or ImageNet-shaped task says otherwise.
DEFAULT_SPACE = "digits"
#: The input each packaged space is sized for, when no task says otherwise (``optinas space``).
SPACE_INPUTS = {"digits": InputSpec(1, 8, 8, 10), "cifar": InputSpec(3, 32, 32, 10),
                "imagenet": InputSpec(3, 224, 224, 1000)}
_IMAGENET_MIN_SIDE = 64  # 3-channel images this large get ImageNet's strided stem and max-pool


def default_space_for(input_spec: InputSpec) -> str:
    """The packaged space meant for ``input_spec``'s images.

    3x32x32 (CIFAR-10/100, any class count) gives "cifar"; 3 channels with both sides at least
    64 pixels give "imagenet"; everything else (the 1x8x8 digits, MNIST-like grey images) "digits".
    """
    if input_spec.channels == 3 and (input_spec.height, input_spec.width) == (32, 32):
        return "cifar"
    if input_spec.channels == 3 and min(input_spec.height, input_spec.width) >= _IMAGENET_MIN_SIDE:
        return "imagenet"
    return DEFAULT_SPACE


def _packaged_name(source: Any) -> str | None:
    """The packaged space ``source`` names, or None where it is a path (an existing file wins)."""
    if source is None:
        return DEFAULT_SPACE
    if str(source) in PACKAGED_SPACES and not Path(source).is_file():
        return str(source)
    return None


def space_label(source: Any) -> str:
    """How messages and ``optinas space`` name a space: the packaged name, else the path as given."""
    return _packaged_name(source) or str(source)


def space_source(source: Any) -> tuple[str, str]:
    """The label and TOML text of a space given as None (the default), a packaged name or a file.

    Raises:
        ConfigError: when ``source`` is neither a packaged space nor an existing file, or the
            file cannot be read.
    """
    name = _packaged_name(source)
    if name is not None:
        text = resources.files("optinas.search_space").joinpath("spaces", f"{name}.toml")
        return name, text.read_text(encoding="utf-8")
    path = Path(source)
    if path.is_dir():
        raise ConfigError(f"search space {str(source)!r} is a folder; give a TOML file or a packaged space "
                          f"({', '.join(PACKAGED_SPACES)})")
    if not path.is_file():
        raise ConfigError(f"search space {str(source)!r} is neither a packaged space "
                          f"({', '.join(PACKAGED_SPACES)}) nor an existing file")
    try:
        return str(source), path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read search space file {str(source)!r}: {error}") from None
