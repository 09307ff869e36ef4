"""Named genotypes: the source papers' networks, as baselines and as starting points.

``preset(name, input_spec=None)`` returns the genotype; ``input_spec`` adapts it to a task's
images and classes (a search enqueues the presets this way, so the baselines land on every
Pareto front). Without it the preset keeps its paper's data: CIFAR (3x32x32, 10 classes) or
ImageNet (3x224x224, 1000 classes).

| name | source | shape |
|---|---|---|
| resnet20/32/56 | He et al. 2016 (CIFAR), AdderNet Table 2 | hb b1=1 b2=0, 3 stages of n basic blocks, 16/32/64, option-A 'pad' shortcuts |
| resnetN-adder/-binary/-quant4 | AdderNet Table 2 (BNN, AdderNet; 4-bit quantised, Ding et al. and the weight-quantization appendix) | the same with every stage layer adder / binary / 4-bit quant; stem and classifier float |
| vgg-small | AdderNet Table 2 (LQ-Nets' VGG-small) | 6 float convs 128-128-pool-256-256-pool-512-512 |
| hb-net20 | Li et al. section 6.1 | resnet20 with b2 = -1: x_{k+1} = T(x_k) + x_k - x_{k-1} |
| agd-net | Li et al. section 6.2 / Table 4 (k = 12, L = 40) | agd_dense, 3 stages x 12 one-layer blocks |
| dmrnet20 | Li et al. Table 3 (DMRNet) | admm a = c = 1/2, 3 x 3 blocks, 16/32/64 |
| resnet18/50 | He et al. 2016 (ImageNet), AdderNet Table 3 | 7x7/2 stem + max-pool; basic / bottleneck bodies |

Approximations (the genotype's head is global average pooling + one classifier layer):
- vgg-small flattens its last 512x4x4 map into the classifier in LQ-Nets; here the head
  averages the 512x8x8 map (the last max-pool is dropped), so the classifier has 5,130 instead
  of 81,930 parameters; max-pools follow the ReLU of the layer before (conv-BN-ReLU-pool).
  The counted layers (AdderNet leaves out the first and the last) are unchanged.
- agd-net sums maps, so a stage cannot grow by k channels per layer as DenseNet-40 does; its
  stages keep 24/48/96 channels (2k, 4k, 8k), the transform T is layer-BN (not DenseNet's
  BN-ReLU-conv order), stride-2 first blocks replace the 1x1-conv + avg-pool transitions,
  and every alpha is learnable from eq. 5's h (eq. 21 co-optimises them; Li et al. do not
  say how they start).
"""

from __future__ import annotations

from .errors import GenotypeError
from .genotype import BlockSpec, Coefficient, Genotype, HeadSpec, InputSpec, LayerSpec, StageSpec, StemSpec

__all__ = ["preset", "PRESETS", "PRESET_SUMMARIES", "VARIANT_SUFFIXES"]

CIFAR10 = InputSpec(3, 32, 32, 10)
IMAGENET = InputSpec(3, 224, 224, 1000)

# Layer kind of every stage layer in a variant; the stem and the classifier stay float
# ("We follow the general setting in binary networks to set the first and last layers as
# full-precision", AdderNet, section 4.2).
_VARIANTS = {
    "": ("conv", {}),
    "-adder": ("adder", {}),
    "-binary": ("binary", {}),
    "-quant4": ("quant", {"w_bits": 4}),
}
#: Name endings of the layer-kind variants of the CIFAR ResNets ("resnet20-adder", ...).
VARIANT_SUFFIXES: tuple[str, ...] = tuple(suffix for suffix in _VARIANTS if suffix)


def _resnet_cifar(depth: int, suffix: str, b2: float = 0.0) -> Genotype:
    """He et al.'s CIFAR ResNet-(6n+2): 16/32/64 channels, n blocks a stage, option-A shortcuts."""
    blocks = (depth - 2) // 6
    layer = LayerSpec(*_VARIANTS[suffix])
    block = BlockSpec("hb", (Coefficient("b1", 1.0), Coefficient("b2", b2)))
    stages = tuple(StageSpec(blocks, width, stride=stride, block=block, layer=layer, shortcut="pad")
                   for width, stride in ((16, 1), (32, 2), (64, 2)))
    return Genotype(CIFAR10, StemSpec(16), stages)


def _vgg_small() -> Genotype:
    plain = BlockSpec("gd")
    stages = (StageSpec(1, 128, body="single", block=plain),
              StageSpec(2, 256, stride=2, body="single", downsample="maxpool", block=plain),
              StageSpec(2, 512, stride=2, body="single", downsample="maxpool", block=plain))
    return Genotype(CIFAR10, StemSpec(128), stages)


def _agd_net() -> Genotype:
    block = BlockSpec("agd_dense", (Coefficient("alpha", 0.0, "learnable", init="paper"),
                                    Coefficient("beta", 0.0, "paper")))
    stages = tuple(StageSpec(12, width, stride=stride, body="single", block=block)
                   for width, stride in ((24, 1), (48, 2), (96, 2)))
    return Genotype(CIFAR10, StemSpec(16), stages)


def _dmrnet20() -> Genotype:
    block = BlockSpec("admm", (Coefficient("a", 0.5), Coefficient("c", 0.5)))
    stages = tuple(StageSpec(3, width, stride=stride, block=block, shortcut="pad")
                   for width, stride in ((16, 1), (32, 2), (64, 2)))
    return Genotype(CIFAR10, StemSpec(16), stages)


def _resnet_imagenet(depths: tuple[int, ...], bottleneck: bool) -> Genotype:
    widths = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
    block = BlockSpec("hb", (Coefficient("b1", 1.0), Coefficient("b2", 0.0)))
    stages = tuple(StageSpec(depth, width, stride=1 if index == 0 else 2, block=block,
                             body="bottleneck" if bottleneck else "basic")
                   for index, (depth, width) in enumerate(zip(depths, widths)))
    return Genotype(IMAGENET, StemSpec(64, kernel_size=7, stride=2, pool="max"), stages, HeadSpec())


_BUILDERS = {
    **{f"resnet{depth}{suffix}": (lambda depth=depth, suffix=suffix: _resnet_cifar(depth, suffix))
       for depth in (20, 32, 56) for suffix in _VARIANTS},
    "vgg-small": _vgg_small,
    "hb-net20": lambda: _resnet_cifar(20, "", b2=-1.0),
    "agd-net": _agd_net,
    "dmrnet20": _dmrnet20,
    "resnet18": lambda: _resnet_imagenet((2, 2, 2, 2), bottleneck=False),
    "resnet50": lambda: _resnet_imagenet((3, 4, 6, 3), bottleneck=True),
}

PRESETS: tuple[str, ...] = tuple(_BUILDERS)

PRESET_SUMMARIES = {
    **{f"resnet{depth}": f"ResNet-{depth} for CIFAR (He et al.): hb b1=1 b2=0, option-A shortcuts"
       for depth in (20, 32, 56)},
    **{f"resnet{depth}-adder": f"ResNet-{depth} with adder layers (AdderNet)" for depth in (20, 32, 56)},
    **{f"resnet{depth}-binary": f"ResNet-{depth} with binary layers (BNN row of AdderNet's Table 2)" for depth in (20, 32, 56)},
    **{f"resnet{depth}-quant4": f"ResNet-{depth} with 4-bit quantised weights" for depth in (20, 32, 56)},
    "vgg-small": "VGG-small (LQ-Nets; AdderNet Table 2), average-pooled head",
    "hb-net20": "HB-Net (Li et al., 6.1): ResNet-20 with x_{k+1} = T(x_k) + x_k - x_{k-1}",
    "agd-net": "AGD-Net (Li et al., 6.2, eq. 21), k = 12, L = 40 shape with summed maps",
    "dmrnet20": "DMRNet (Li et al., Table 3): admm with a = c = 1/2, 3 stages of 3 blocks",
    "resnet18": "ResNet-18 for ImageNet at 224x224 (AdderNet Table 3)",
    "resnet50": "ResNet-50 for ImageNet at 224x224, bottleneck blocks (AdderNet Table 3)",
}


def preset(name: str, input_spec: InputSpec | None = None) -> Genotype:
    """The genotype called ``name`` (see ``PRESETS``), for ``input_spec``'s data when given.

    Raises:
        GenotypeError: for an unknown name, or when the preset cannot take ``input_spec``
            (e.g. VGG-small's max-pools on images smaller than 4x4).
    """
    if name not in _BUILDERS:
        raise GenotypeError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    genotype = _BUILDERS[name]()
    if input_spec is None:
        return genotype
    try:
        return Genotype(input_spec, genotype.stem, genotype.stages, genotype.head)
    except GenotypeError as error:
        raise GenotypeError(f"preset {name!r} does not fit input {input_spec.shape}: {error}") from None
