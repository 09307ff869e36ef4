"""The device-resident data path (after airbench): no DataLoader, no worker processes.

The whole task is copied to the device once, as uint8 (a quarter of the bytes of float32,
so the copy is quick and a CIFAR-sized set fits beside the model). A batch is an index
slice of that tensor; cropping, flipping and normalisation are whole-batch tensor ops on the
device. Random draws come from a seeded CPU ``torch.Generator`` and are sent over once per
epoch, so the shuffling and augmentation of a seed are the same on every device.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from optinas.search_space.errors import ConfigError

from .tasks import Task

__all__ = [
    "DeviceData", "to_device", "resolve_device", "batch_crop", "batch_flip_lr",
    "draw_augmentation", "resize_images",
]


def resolve_device(name: str) -> torch.device:
    """Turns a ``--device`` value into a ``torch.device``.

    Args:
        name: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``.

    Returns:
        The device.

    Raises:
        ConfigError: If ``name`` is not one of these, or asks for CUDA where there is none.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name} was requested but no CUDA device is available; "
                "use --device cpu or auto"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {name} was requested but only {torch.cuda.device_count()} CUDA "
                f"device(s) exist (cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
        return device
    raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")


@dataclass(frozen=True, eq=False)
class DeviceData:
    """A task's splits on one device, with the normalisation folded into scale and shift.

    ``(x / max_value - mean) / std`` equals ``x * scale + shift`` with
    ``scale = 1 / (max_value * std)`` and ``shift = -mean / std``: one fused multiply-add
    per pixel instead of three ops.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    scale: torch.Tensor  # (1, C, 1, 1) float32
    shift: torch.Tensor  # (1, C, 1, 1) float32

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float32) ``(N, C, H, W)`` inputs to normalised float32, on their device.

        One fused ``shift + x * scale`` into a new tensor: never in place, since for
        float32 inputs ``.float()`` is the stored data set itself.
        """
        return torch.addcmul(self.shift, images.float(), self.scale)


# One device copy per (task, device, resolution), dropped with the task: a search evaluates
# hundreds of candidates on the same Task object and should copy the data set to the GPU once.
_CACHE: weakref.WeakKeyDictionary[Task, dict[tuple, DeviceData]] = weakref.WeakKeyDictionary()
#: Images resized per call of ``F.interpolate`` (bounds the float32 temporary to ~200 MB
#: for 224x224 RGB, ~50 MB for CIFAR).
RESIZE_CHUNK = 4096


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W)`` inputs resized to ``size`` x ``size`` on their own device.

    Shrinking averages each output pixel's area (a 16x16 proxy of a CIFAR image is the
    mean of its 2x2 blocks, not an aliased sample); enlarging is bilinear. uint8 stays
    uint8 (rounded).
    """
    if tuple(images.shape[2:]) == (size, size):
        return images
    shrink = size <= min(images.shape[2:])
    out = torch.empty((*images.shape[:2], size, size), dtype=images.dtype, device=images.device)
    for first in range(0, len(images), RESIZE_CHUNK):
        chunk = images[first: first + RESIZE_CHUNK].float()
        if shrink:
            resized = F.interpolate(chunk, size=(size, size), mode="area")
        else:
            resized = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False)
        if images.dtype == torch.uint8:
            resized = resized.round_().clamp_(0, 255)
        out[first: first + RESIZE_CHUNK] = resized.to(images.dtype)
    return out


def to_device(task: Task, device: torch.device, resolution: int | None = None) -> DeviceData:
    """Copies a task's inputs and labels to ``device``, resized there to ``resolution``.

    Done once per (task, device, resolution): the resize runs on the device, right after
    the uint8 copy, and is kept for every later candidate.
    """
    per_device = _CACHE.setdefault(task, {})
    key = (device, resolution)
    cached = per_device.get(key)
    if cached is not None:
        return cached
    mean = torch.tensor(task.mean, dtype=torch.float64)
    std = torch.tensor(task.std, dtype=torch.float64)
    scale = (1.0 / (task.max_value * std)).float().view(1, -1, 1, 1).to(device)
    shift = (-mean / std).float().view(1, -1, 1, 1).to(device)

    def inputs(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        return x if resolution is None else resize_images(x, resolution)

    data = DeviceData(
        train_x=inputs(task.train_x), train_y=task.train_y.to(device),
        val_x=inputs(task.val_x), val_y=task.val_y.to(device),
        test_x=inputs(task.test_x), test_y=task.test_y.to(device),
        scale=scale, shift=shift,
    )
    per_device[key] = data
    return data


def draw_augmentation(
    num_images: int, max_shift: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws one epoch of random crop offsets and flip decisions on the CPU.

    Args:
        num_images: How many to draw.
        max_shift: Largest translation in pixels (the padding of a pad-and-crop).
        generator: Seeded CPU generator.

    Returns:
        ``shifts``, int64 ``(N, 2)`` of (row, column) offsets in ``-max_shift..max_shift``,
        and ``flips``, bool ``(N,)``, each True with probability 1/2.
    """
    shifts = torch.randint(-max_shift, max_shift + 1, (num_images, 2), generator=generator)
    flips = torch.rand(num_images, generator=generator) < 0.5
    return shifts, flips


def batch_flip_lr(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirrors left-right the images of a batch where ``flips`` is True.

    Args:
        images: ``(N, C, H, W)``, any dtype.
        flips: bool ``(N,)``, on the same device.

    Returns:
        A new ``(N, C, H, W)`` tensor.
    """
    return torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    # Mirror about the first and last pixel without repeating it (``F.pad`` "reflect"):
    # -1 -> 1 and size -> size - 2. Valid for offsets of at most size - 1.
    index = index.abs()
    return (size - 1) - ((size - 1) - index).abs()


def batch_crop(
    images: torch.Tensor, shifts: torch.Tensor, padding_mode: str = "reflect"
) -> torch.Tensor:
    """Translates each image of a batch, as a pad-and-random-crop does, in one gather.

    Output pixel ``(i, j)`` of image ``n`` is input pixel ``(i + dy, j + dx)`` with
    ``(dy, dx) = shifts[n]``; pixels from outside the image are mirrored (``"reflect"``)
    or zero (``"zeros"``). This equals padding by ``p >= max |shift|`` and cropping the
    original size at offset ``(p + dy, p + dx)``, without building the padded batch.

    Args:
        images: ``(N, C, H, W)``, any dtype (uint8 keeps the gather cheap).
        shifts: int64 ``(N, 2)`` row and column offsets, on the same device; with
            ``"reflect"`` each must be smaller in size than the image height/width.
        padding_mode: ``"reflect"`` or ``"zeros"``.

    Returns:
        A new ``(N, C, H, W)`` tensor (laid out channels-last in memory).
    """
    if padding_mode not in ("reflect", "zeros"):
        raise ValueError(f"padding_mode must be 'reflect' or 'zeros', got {padding_mode!r}")
    n, _, height, width = images.shape
    device = images.device
    rows = torch.arange(height, device=device) + shifts[:, :1]  # (N, H)
    cols = torch.arange(width, device=device) + shifts[:, 1:]  # (N, W)
    if padding_mode == "reflect":
        # Checked on the CPU only: on a GPU reading the maximum back would stall every
        # step, and the training loop draws shifts below the image size by construction.
        on_cpu = shifts.device.type == "cpu"
        if on_cpu and shifts.numel() and int(shifts.abs().max()) >= min(height, width):
            raise ValueError(
                f"reflect crop needs shifts smaller than the image ({height}x{width}), "
                f"got {int(shifts.abs().max())}"
            )
        inside = None
        rows, cols = _reflect(rows, height), _reflect(cols, width)
    else:
        rows_inside = (rows >= 0) & (rows < height)
        cols_inside = (cols >= 0) & (cols < width)
        inside = rows_inside[:, :, None] & cols_inside[:, None, :]  # (N, H, W)
        rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    batch = torch.arange(n, device=device).view(n, 1, 1)
    # Advanced indices around a slice put the broadcast dims first: (N, H, W, C).
    out = images[batch, :, rows[:, :, None], cols[:, None, :]]
    if inside is not None:
        out = out * inside[..., None].to(out.dtype)
    return out.permute(0, 3, 1, 2)
