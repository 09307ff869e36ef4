"""Any image folder, or a ``.tar.gz`` of one, as a task; decoded once, then cached as uint8.

Layout (the usual image-folder convention, as in ``shared/data/cifar10-jpeg.tar.gz``)::

    [top/]train/<class>/<image>     [top/]test/<class>/<image>

or class folders with no ``train/``/``test/`` level, in which case ``TEST_FRACTION`` of the
images becomes the test split. Classes are the sorted folder names of the training split.
All images are converted to the mode of the first one (``L`` -> 1 channel, else RGB) and,
where their sizes differ, resized to the first image's size. RGB sets are augmented (random
crop and flip), single-channel ones are not. The validation split is 10 % of the training
images, stratified.

Decoding JPEGs is the slow part (60,000 CIFAR-10 images: ~6 s on one core), so the decoded
arrays are stored as uncompressed ``.npy`` files in one cache folder and the next load
memory-maps them. The cache key is the content:

- an archive: SHA-256 of its bytes (~0.1 s for 19 MB; a copied or moved archive still hits);
- a folder: SHA-256 of every image's relative path, size and modification time (reading
  every file would cost as much as decoding it).

The cache goes next to the source (``<parent>/.optinas-cache/``); where that folder is not
writable (a read-only data mount) it goes to ``$OPTINAS_CACHE`` or ``~/.cache/optinas``.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from optinas.evaluator.tasks import Task, stratified_split, task_from_splits, task_without_test_split
from optinas.search_space.errors import DataError, shown

__all__ = ["load_image_folder", "cache_path", "IMAGE_SUFFIXES", "CACHE_VERSION"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
#: Share of the training images held out for validation (5,000 of CIFAR-10's 50,000).
FOLDER_VAL_FRACTION = 0.1
#: Part of every cache key: bump it when decoding changes, so stale caches are not read.
CACHE_VERSION = 1
_SPLITS = ("train", "test")


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def content_key(source: Path) -> str:
    """16 hex digits identifying the source's content (see the module docstring)."""
    digest = hashlib.sha256(f"optinas-images-v{CACHE_VERSION}".encode())
    if source.is_file():
        with open(source, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    else:
        for path in sorted(_image_files(source)):
            stat = path.stat()
            digest.update(f"{path.relative_to(source).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _user_cache_dir() -> Path:
    return Path(os.environ.get("OPTINAS_CACHE") or Path.home() / ".cache" / "optinas")


def _writable(folder: Path) -> bool:
    # The permission bits too: root passes os.access on a folder marked read-only
    # (r-x for all), and such a mark means "do not write here" to everyone.
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def cache_path(source: Path, key: str) -> Path:
    """Where the decoded arrays of ``source`` are cached: beside it if writable, else per user."""
    name = f"{_archive_stem(source)}-{key}"
    beside = source.parent / ".optinas-cache"
    if _writable(beside if beside.exists() else source.parent):
        return beside / name
    return _user_cache_dir() / name


def _image_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            and ".optinas-cache" not in p.parts]


def _split_and_class(relative: str) -> tuple[str, str] | None:
    """``(split, class)`` of an image at ``relative`` path, or None if it is not an image."""
    parts = [p for p in relative.replace("\\", "/").split("/") if p and p != "."]
    if len(parts) < 2 or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    if len(parts) >= 3 and parts[-3] in _SPLITS:
        return parts[-3], parts[-2]
    return "all", parts[-2]


def _read_entries(source: Path) -> list[tuple[str, str, bytes | Path]]:
    """(split, class, bytes or file path) of every image, sorted by path."""
    entries = []
    if source.is_file():
        try:
            with tarfile.open(source, "r:*") as archive:
                for member in archive:
                    found = _split_and_class(member.name) if member.isfile() else None
                    if found is not None:
                        entries.append((member.name, *found, archive.extractfile(member).read()))
        except (tarfile.TarError, OSError, EOFError) as error:
            # tarfile lists what each decompressor said, one per line: the first line is the gist.
            first = str(error).strip().splitlines()[0].rstrip(":") if str(error).strip() else type(error).__name__
            raise DataError(f"could not read the archive {source}: it is damaged or not a tar archive "
                            f"(plain, .gz, .bz2 or .xz): {first}") from None
    else:
        for path in _image_files(source):
            found = _split_and_class(path.relative_to(source).as_posix())
            if found is not None:
                entries.append((path.as_posix(), *found, path))
    entries.sort(key=lambda entry: entry[0])
    return [entry[1:] for entry in entries]


def _decode_all(blobs: list[bytes | Path]) -> np.ndarray:
    """Decodes images to one uint8 ``(N, C, H, W)`` array, in parallel threads."""

    def open_image(blob):
        return Image.open(io.BytesIO(blob) if isinstance(blob, bytes) else blob)

    with open_image(blobs[0]) as first:
        mode = "L" if first.mode in ("L", "1", "I;16", "I", "F") else "RGB"
        size = first.size

    def decode(blob) -> np.ndarray:
        with open_image(blob) as image:
            image = image.convert(mode)
            if image.size != size:
                image = image.resize(size, Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    # Pillow releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return np.stack(list(pool.map(decode, blobs, chunksize=256)))


def _decode_source(source: Path, check) -> dict[str, np.ndarray]:
    entries = _read_entries(source)
    if not entries:
        raise DataError(
            f"no images found in {source}; expected class folders (optionally under train/ and "
            f"test/) holding files ending in {', '.join(IMAGE_SUFFIXES[:3])}, ..."
        )
    splits = {split for split, _, _ in entries}
    if "all" in splits and len(splits) > 1:
        raise DataError(f"{source} mixes class folders at the top with train/ or test/ folders")
    train_split = "all" if "all" in splits else "train"
    if train_split not in splits:
        raise DataError(f"{source} has a test/ folder but no train/ folder")
    classes = sorted({cls for split, cls, _ in entries if split == train_split})
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({cls for _, cls, _ in entries} - set(index))
    if unknown:
        raise DataError(f"{source}: test classes {', '.join(unknown[:3])} do not occur in train/")
    # Before decoding, so that nothing (the cache beside the source) is written for a set that
    # cannot be split.
    check(collections.Counter(cls for split, cls, _ in entries if split == train_split), "test" in splits)
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that: both mean a
            # decompression bomb (a small file that decodes to gigabytes), refused here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            images = _decode_all([blob for _, _, blob in entries])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"an image in {source} is too large to decode safely ({error})") from None
    except (OSError, ValueError) as error:
        raise DataError(f"could not decode an image in {source}: {error}") from None
    labels = np.array([index[cls] for _, cls, _ in entries], dtype=np.int64)
    in_test = np.array([split == "test" for split, _, _ in entries])
    return {"train_x": images[~in_test], "train_y": labels[~in_test],
            "test_x": images[in_test], "test_y": labels[in_test], "classes": np.array(classes)}


_ARRAYS = ("train_x", "train_y", "test_x", "test_y", "classes")


def _check_classes(source: Path, counts: dict[str, int], has_test: bool, val_fraction: float, seed: int) -> None:
    """At least two classes, and enough images in each for the splits (else one DataError).

    With a test/ folder, validation takes ``val_fraction`` of each class but leaves one image
    to train on, so every class needs 2. Without one, the stratified test and validation
    splits (``evaluator.tasks.stratified_split``) are tried on the labels alone, before any
    image is decoded: scikit-learn refuses a class of one image, or a split with fewer images
    than classes.
    """
    if len(counts) < 2:
        raise DataError(f"{source} has one class folder ({shown(next(iter(counts)))}); a classifier needs "
                        "at least 2")
    smallest = min(counts, key=lambda name: counts[name])
    if has_test and counts[smallest] < 2:
        raise DataError(f"{source}: class {shown(smallest)} has {counts[smallest]} training image; every class "
                        "needs at least 2, since validation images are held out from each class")
    if not has_test:
        labels = np.repeat(np.arange(len(counts)), list(counts.values()))
        try:
            stratified_split(labels, seed, val_size=val_fraction)
        except ValueError:
            raise DataError(f"{source}: too few images to hold out test and validation images from every class "
                            f"({len(labels)} images in {len(counts)} classes; class {shown(smallest)} has "
                            f"{counts[smallest]}); add images, or train/ and test/ folders") from None


def _write_atomic(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes one ``.npy`` per array into ``folder``, all or nothing (rename of a temp dir)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        for name in _ARRAYS:
            np.save(temp / f"{name}.npy", arrays[name], allow_pickle=False)
        os.replace(temp, folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _no_check(counts: dict[str, int], has_test: bool) -> None:
    return None


def decoded_arrays(source: Path, check=_no_check) -> tuple[dict[str, np.ndarray], Path]:
    """The decoded arrays of ``source``, from its cache when present; and the cache folder.

    Cached arrays are memory-mapped: the loader copies each split once, straight out of
    the page cache, instead of reading the file into memory and then copying it.
    ``check(training images per class, has a test split)`` runs first either way: on a cache
    miss before any image is decoded or anything is written.
    """
    key = content_key(source)
    folder = cache_path(source, key)
    if folder.is_dir():
        try:
            arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _ARRAYS}
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)  # damaged: rebuilt below
        else:
            counts = np.bincount(np.asarray(arrays["train_y"]), minlength=len(arrays["classes"]))
            check(dict(zip((str(name) for name in arrays["classes"]), counts.tolist())), len(arrays["test_y"]) > 0)
            return arrays, folder
    arrays = _decode_source(source, check)
    try:
        _write_atomic(folder, arrays)
    except OSError:
        pass  # a cache that cannot be written only costs the next run the decoding time
    return arrays, folder


def load_image_folder(source: Path, seed: int, val_fraction: float | None) -> Task:
    """A task from an image folder or archive (see the module docstring).

    Raises:
        DataError: If the path does not exist, holds no images, or an image cannot be read.
    """
    if not source.exists():
        raise DataError(f"task path {source} does not exist; give an image folder or a .tar.gz of one")
    source = source.resolve()
    arrays, _ = decoded_arrays(source, lambda counts, has_test: _check_classes(
        source, counts, has_test, val_fraction or FOLDER_VAL_FRACTION, seed))
    classes = tuple(str(name) for name in arrays["classes"])
    # Colour photographs keep their label under crops and mirror images; single-channel
    # sets are usually scanned characters (MNIST-like), which do not, so they are not augmented.
    augment = arrays["train_x"].shape[1] == 3
    options = dict(seed=seed, val_fraction=val_fraction or FOLDER_VAL_FRACTION, max_value=255.0,
                   augment=augment, num_classes=len(classes), classes=classes, source=str(source))
    name = _archive_stem(source)
    if len(arrays["test_y"]):
        return task_from_splits(name, arrays["train_x"], arrays["train_y"], arrays["test_x"],
                                arrays["test_y"], **options)
    return task_without_test_split(name, arrays["train_x"], arrays["train_y"], **options)
