"""CIFAR-10/100, MNIST and Fashion-MNIST in torchvision's on-disk formats.

Users already have these under a data root in the layout torchvision writes
(``cifar-10-batches-py/``, ``cifar-100-python/``, ``MNIST/raw/``, ``FashionMNIST/raw/``).
The files are read here directly (pickled uint8 batches; IDX files, gzipped or not), so
loading needs no torchvision and no image decoding: CIFAR-10 loads in a fraction of a second.
torchvision is imported only for ``download=True``, to fetch a missing set into the root
(it needs internet). The validation split is carved out of the training set; the official
test split stays the test split.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from optinas.evaluator.tasks import Task, task_from_splits
from optinas.search_space.errors import DataError

__all__ = ["LOADERS", "DEFAULT_DATA_DIR", "VISION_VAL_FRACTION"]

#: Where data sets are looked for when no ``data_dir`` is given (torchvision's usual root).
DEFAULT_DATA_DIR = Path("data")
#: Share of the official training set held out for validation (5,000 CIFAR images).
VISION_VAL_FRACTION = 0.1

# name -> (folder under the root, torchvision class name, number of classes)
_SETS = {
    "cifar10": ("cifar-10-batches-py", "CIFAR10", 10),
    "cifar100": ("cifar-100-python", "CIFAR100", 100),
    "mnist": ("MNIST/raw", "MNIST", 10),
    "fashion-mnist": ("FashionMNIST/raw", "FashionMNIST", 10),
}
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot")


def _unpickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        return pickle.load(file, encoding="latin1")


def _read_cifar(folder: Path, hundred: bool) -> tuple[np.ndarray, ...]:
    """CIFAR python batches: ``data`` is (N, 3072) uint8 in CHW order."""
    label_key = "fine_labels" if hundred else "labels"
    train_files = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    batches = [_unpickle(folder / name) for name in train_files]
    test = _unpickle(folder / "test" if hundred else folder / "test_batch")
    meta = _unpickle(folder / ("meta" if hundred else "batches.meta"))
    classes = tuple(meta["fine_label_names" if hundred else "label_names"])

    def images(batch_list):
        data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batch_list])
        return data.reshape(-1, 3, 32, 32)

    def labels(batch_list):
        return np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batch_list])

    return images(batches), labels(batches), images([test]), labels([test]), classes


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): magic, dimension sizes, then big-endian uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        raw = file.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (MNIST format)")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(shape))} values, got {data.size}")
    return data.reshape(shape)


def _idx_path(folder: Path, stem: str) -> Path:
    plain = folder / stem
    return plain if plain.exists() else folder / f"{stem}.gz"


def _read_mnist(folder: Path, classes: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    train_x, train_y, test_x, test_y = (_read_idx(_idx_path(folder, f)) for f in _MNIST_FILES)
    return (train_x[:, None], train_y.astype(np.int64), test_x[:, None],
            test_y.astype(np.int64), classes)


def _present(folder: Path, name: str) -> bool:
    if name.startswith("cifar"):
        return (folder / ("test" if name == "cifar100" else "test_batch")).exists()
    return all(_idx_path(folder, stem).exists() for stem in _MNIST_FILES)


def _download(name: str, root: Path) -> None:
    """Fetches the set with torchvision into ``root`` (train and test)."""
    try:
        import torchvision.datasets as datasets
    except Exception as error:  # a broken install raises RuntimeError, not ImportError
        raise DataError(
            f"--download needs torchvision, which could not be imported ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no message'}); download {name} "
            f"another way into {root}"
        ) from None
    cls = getattr(datasets, _SETS[name][1])
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as error:  # no network, a full disk, a changed mirror
        raise DataError(f"could not download {name} into {root}: {error}") from None


def _loader(name: str):
    folder_name, _, num_classes = _SETS[name]

    def load(seed: int, val_fraction: float | None, data_dir=None, download=False) -> Task:
        root = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
        folder = root / folder_name
        if not _present(folder, name):
            if not download:
                raise DataError(
                    f"{name} not found: looked for torchvision's files in {folder.resolve()}; "
                    "pass --download to fetch them (needs internet) or --data-dir to point at "
                    "the folder that holds them"
                )
            _download(name, root)
        try:
            if name.startswith("cifar"):
                arrays = _read_cifar(folder, hundred=name == "cifar100")
            else:
                classes = _FASHION_CLASSES if name == "fashion-mnist" else tuple(map(str, range(10)))
                arrays = _read_mnist(folder, classes)
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as error:
            raise DataError(f"could not read {name} from {folder}: {error}") from None
        train_x, train_y, test_x, test_y, classes = arrays
        return task_from_splits(
            name, train_x, train_y, test_x, test_y, seed=seed,
            val_fraction=val_fraction or VISION_VAL_FRACTION, max_value=255.0,
            # Mirrored or shifted digits are other digits (or none); objects are not.
            augment=name.startswith("cifar"), num_classes=num_classes, classes=classes,
            source=str(folder),
        )

    load.__doc__ = f"{name} from torchvision's files under ``data_dir/{folder_name}``."
    return load


#: Task name -> loader, merged into ``tasks.load_task``'s table.
LOADERS = {name: _loader(name) for name in _SETS}
