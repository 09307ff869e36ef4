"""The papers' CIFAR-10 comparisons, retrained with the presets and the evaluator.

Two tables of the papers compare networks that differ in one thing on CIFAR-10:

- AdderNet, Table 2, ResNet-20: the same network with convolutions (CNN, 92.93 %), adder
  layers (l1-AddNN 91.84 %; "v2" 92.31 %) and binary layers (BNN, 84.87 %), first and last
  layer float; 800 epochs, batch 256, lr 0.1 with a polynomial schedule (section 4.2);
- Li et al., Table 4, CIFAR-10 with standard augmentation ("+"): ResNet vs HB-Net
  (x_{k+1} = T(x_k) + x_k - x_{k-1}, section 6.1) at n = 9 (56 layers), error 5.32 % vs
  5.46 %; 300 epochs, batch 64, Nesterov SGD, lr 0.1 divided by 10 at 50 % and 75 %.

Here every network is a preset genotype (``optinas.search_space.presets``; ``hb-net56`` is
``resnet56`` with b2 = -1, built the way the ``hb-net20`` preset is built from ``resnet20``)
trained by ``optinas.evaluator.evaluate`` with one recipe for all (Nesterov SGD, linear warm-up and
decay, label smoothing 0.1, pad-and-crop + flip; adder layers get AdderNet's l_p schedule
and eq. 27 scaling, so our adder row compares with the l_p-trained "v2"). The default is 40
epochs, not the papers' 300-800, so the table puts each paper's epochs beside ours and
compares the *gaps* to each table's baseline as well as the accuracies. Training uses the
45,000-image training split, the epoch-by-epoch score the 5,000-image validation split, and
the reported accuracy the 10,000 official test images, as in the papers.

The data are the user's: ``--data-dir`` (or ``$OPTINAS_DATA``) names a folder holding
torchvision's ``cifar-10-batches-py/``, an image folder with ``train/`` and ``test/``, a
folder with one ``cifar*10*.tar.gz`` archive of such a folder, or the archive itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from optinas.evaluator import Fidelity, TrialFailed, evaluate, load_task
from optinas.search_space import BlockSpec, Coefficient, build_model, count_cost
from optinas.search_space.errors import ConfigError, DataError
from optinas.search_space.presets import preset

__all__ = ["MODELS", "FAST", "CifarSettings", "find_cifar10", "load_cifar10", "genotype_for",
           "train_model", "run_models"]


@dataclass(frozen=True)
class PaperRow:
    """What a paper reports for one network: CIFAR-10 test accuracy (%) and its setting."""

    source: str
    accuracy: float | None
    epochs: int | None
    baseline: str  # the model its table compares it with (itself for a baseline)


#: Our model -> the paper row it reproduces.
MODELS = {
    "resnet20": PaperRow("AdderNet Table 2, ResNet-20 CNN", 92.93, 800, "resnet20"),
    "resnet20-adder": PaperRow("AdderNet Table 2, ResNet-20 l1-AddNN v2 (l1-AddNN: 91.84)", 92.31, 800,
                               "resnet20"),
    "resnet20-binary": PaperRow("AdderNet Table 2, ResNet-20 BNN", 84.87, 800, "resnet20"),
    "hb-net20": PaperRow("Li et al. Table 4 has no n = 3 row (HB-Net is shown at n = 9, 18)", None, None,
                         "resnet20"),
    "resnet56": PaperRow("Li et al. Table 4, ResNet n = 9, CIFAR-10+ (error 5.32 %)", 94.68, 300, "resnet56"),
    "hb-net56": PaperRow("Li et al. Table 4, HB-Net (16) n = 9, CIFAR-10+ (error 5.46 %)", 94.54, 300,
                         "resnet56"),
}


@dataclass(frozen=True)
class CifarSettings:
    """One run; the defaults are the full setting (the recipe of ``benchmarks/bench_cifar_gpu.py``)."""

    models: tuple[str, ...] = tuple(MODELS)
    epochs: int = 40
    batch_size: int = 256
    lr: float = 0.2
    warmup_epochs: float = 2.0
    train_images: int | None = None  # None: the whole training split
    scored_images: int | None = None  # None: the whole validation and test splits
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


#: ``--fast``: the four ResNet-20 models, 1 epoch on 128 training images (2 steps), scored on
#: 64 validation and 64 test images: a smoke test of the whole path (the adder network's CPU
#: step dominates: ~8 s per batch of 64 on one loaded core), not a measurement.
FAST = {"models": ("resnet20", "resnet20-adder", "resnet20-binary", "hb-net20"), "epochs": 1,
        "batch_size": 64, "warmup_epochs": 0.0, "train_images": 128, "scored_images": 64}


def find_cifar10(data_dir: str | None) -> tuple[str, str | None]:
    """Where CIFAR-10 is: ``(name or path for load_task, data_dir for load_task)``.

    Raises:
        ConfigError: If neither ``data_dir`` nor ``$OPTINAS_DATA`` is given.
        DataError: If the place given holds none of the accepted layouts.
    """
    given = data_dir or os.environ.get("OPTINAS_DATA")
    if not given:
        raise ConfigError("cifar10-compare needs CIFAR-10: pass --data-dir DIR (torchvision's "
                          "cifar-10-batches-py/ under DIR, an image folder with train/ and test/, or a "
                          ".tar.gz of one) or set OPTINAS_DATA")
    path = Path(given).expanduser()
    if path.is_file():
        return str(path), None
    if path.name == "cifar-10-batches-py" and (path / "test_batch").exists():
        return "cifar10", str(path.parent)
    if (path / "cifar-10-batches-py" / "test_batch").exists():
        return "cifar10", str(path)
    if (path / "train").is_dir():
        return str(path), None
    archives = sorted(path.glob("cifar*10*.tar.gz")) if path.is_dir() else []
    if len(archives) == 1:
        return str(archives[0]), None
    found = "several archives: " + ", ".join(a.name for a in archives) if archives else "none of them"
    raise DataError(f"--data-dir {given!r} must hold cifar-10-batches-py/, train/ and test/ image folders, "
                    f"or one cifar*10*.tar.gz archive; found {found}")


def load_cifar10(settings: CifarSettings, data_dir: str | None):
    """The CIFAR-10 task, its training split cut to ``train_images`` and its scored splits to
    ``scored_images`` (a seeded random sample of each, for ``--fast``: image folders store the
    images class by class, so the first ones would all be airplanes)."""

    name, root = find_cifar10(data_dir)
    task = load_task(name, seed=settings.seed, data_dir=root)
    if task.input_shape != (3, 32, 32) or task.num_classes != 10:
        raise DataError(f"{name} is not CIFAR-10: expected 10 classes of 3x32x32 images, got "
                        f"{task.num_classes} classes of {'x'.join(map(str, task.input_shape))}")
    cut, generator = {}, torch.Generator().manual_seed(settings.seed)
    for split, count in (("train", settings.train_images), ("val", settings.scored_images),
                         ("test", settings.scored_images)):
        labels = getattr(task, f"{split}_y")
        if count is not None and count < len(labels):
            sample = torch.randperm(len(labels), generator=generator)[:count].sort().values
            cut[f"{split}_x"] = getattr(task, f"{split}_x")[sample]
            cut[f"{split}_y"] = labels[sample]
    return dataclasses.replace(task, **cut) if cut else task


def genotype_for(name: str):
    """The preset ``name``; ``hb-net56`` is ``resnet56`` with every block's b2 set to -1."""

    if name != "hb-net56":
        return preset(name)
    genotype = preset("resnet56")
    block = BlockSpec("hb", (Coefficient("b1", 1.0), Coefficient("b2", -1.0)))
    return dataclasses.replace(genotype, stages=tuple(dataclasses.replace(stage, block=block)
                                                      for stage in genotype.stages))


def train_model(name: str, task, settings: CifarSettings) -> dict:
    """Builds and trains one model; its result row (``failed`` set where training failed)."""

    fidelity = Fidelity(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                        warmup_epochs=min(settings.warmup_epochs, settings.epochs))
    genotype = genotype_for(name)
    torch.manual_seed(settings.seed)
    model = build_model(genotype)
    curve: list[float] = []
    row = {"model": name, "epochs": settings.epochs, "curve": curve,
           "parameters": sum(p.numel() for p in model.parameters()), "cost": _cost_summary(count_cost(genotype))}
    try:
        result = evaluate(model, task, fidelity, device=settings.device, seed=settings.seed,
                          on_epoch=lambda epoch, accuracy: curve.append(accuracy))
    except TrialFailed as failure:
        return dict(row, failed=str(failure))
    return dict(row, test_accuracy=result.test_accuracy, val_accuracy=result.val_accuracy,
                seconds=round(result.wall_time_s, 1))


def _cost_summary(cost) -> dict:
    """Multiplications, additions and XNORs of the counted layers (AdderNet's convention)."""
    return {key: int(cost.paper[key]) for key in ("mul", "add", "xnor")}


def run_models(task, settings: CifarSettings, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Trains every model of ``settings`` on ``task``, in order; one row each."""
    rows = []
    for name in settings.models:
        rows.append(train_model(name, task, settings))
        if progress is not None:
            progress(rows[-1])
    return rows
