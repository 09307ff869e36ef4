"""One training epoch: optinas' device-resident pipeline vs a torchvision DataLoader pipeline.

Same model (the conv ResNet-20 preset, built from its genotype), same data, same optimizer,
same batch size and the same augmentation (pad-4 reflect crop + horizontal flip +
normalisation), timed side by side in one run:

- optinas: ``optinas.evaluator.evaluate`` -- the uint8 data set on the device, whole-batch crop,
  flip and normalisation there, no worker processes (validation and test splits shrunk to
  two images so that only the training epoch is timed);
- baseline: a ``torch.utils.data.DataLoader`` over the same uint8 images with worker
  processes and pinned memory, per-image ``RandomCrop(32, padding=4,
  padding_mode="reflect")``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` from
  ``torchvision.transforms``, batches copied to the device each step (``non_blocking``).
  Where torchvision cannot be imported (the CPU-only sandbox has no CPU build of it), the
  same four per-image transforms are written in torch in the Dataset instead, and the
  output says so.

Data: CIFAR-10 from ``$OPTINAS_DATA/cifar10-jpeg.tar.gz`` (or ``--data PATH``: an image
folder or archive) when present, else a random uint8 stand-in of the same shape (50,000 x
3 x 32 x 32, 10 classes); the output says which.

Run:  python benchmarks/bench_pipeline.py [--device cuda] [--images 50000] [--workers 8]
Prints images/s both ways and the optinas/baseline ratio.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optinas.evaluator import Fidelity, evaluate, load_task, resolve_device  # noqa: E402
from optinas.evaluator.tasks import Task  # noqa: E402
from optinas.search_space import build_model  # noqa: E402
from optinas.search_space.presets import preset  # noqa: E402


def cifar_task(path: str | None, images: int) -> tuple[Task, str]:
    """CIFAR-10 (first ``images`` training images) or a same-shaped random stand-in."""
    candidates = [Path(path)] if path else []
    if os.environ.get("OPTINAS_DATA"):
        candidates.append(Path(os.environ["OPTINAS_DATA"]) / "cifar10-jpeg.tar.gz")
    for candidate in candidates:
        if candidate.exists():
            task = load_task(str(candidate), seed=0)
            return _shrink(task, images), f"CIFAR-10 from {candidate}"
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (images,), generator=generator)
    task = Task("cifar-stand-in", (3, 32, 32), 10, x, x[:2], x[:2], y, y[:2], y[:2],
                (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), 255.0, True)
    return task, f"random uint8 stand-in, {images} x 3 x 32 x 32 (no CIFAR-10 found: set OPTINAS_DATA)"


def _shrink(task: Task, images: int) -> Task:
    # Only the training epoch is timed: two validation and test images keep scoring free.
    return dataclasses.replace(task, train_x=task.train_x[:images], train_y=task.train_y[:images],
                               val_x=task.val_x[:2], val_y=task.val_y[:2],
                               test_x=task.test_x[:2], test_y=task.test_y[:2])


def optinas_epoch(model: nn.Module, task: Task, fidelity: Fidelity, device: torch.device) -> float:
    """Seconds for one evaluator epoch (after a warm-up run that copies the data)."""
    warm = copy.deepcopy(model)
    evaluate(warm, task, dataclasses.replace(fidelity, train_fraction=min(1.0, 4 * fidelity.batch_size / task.num_train)),
             device=device)
    _sync(device)
    started = time.perf_counter()
    evaluate(model, task, fidelity, device=device)
    _sync(device)
    return time.perf_counter() - started


class TorchTransforms:
    """The torchvision pipeline's per-image ops, in torch (used only without torchvision)."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:  # uint8 (C, H, W)
        padded = F.pad(image[None].float(), (4, 4, 4, 4), mode="reflect")[0]
        top, left = torch.randint(0, 9, (2,)).tolist()
        image = padded[:, top: top + 32, left: left + 32]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return (image / 255 - self.mean) / self.std


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform, use_pil: bool):
        self.x, self.y, self.transform, self.use_pil = x, y, transform, use_pil

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        image = self.x[index]
        if self.use_pil:  # torchvision's usual input: a PIL image (HWC uint8)
            from PIL import Image

            image = Image.fromarray(image.permute(1, 2, 0).numpy())
        return self.transform(image), self.y[index]


def make_loader(task: Task, batch_size: int, workers: int, pin: bool):
    try:
        import torchvision.transforms as T

        transform = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"),
                               T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(task.mean, task.std)])
        kind, use_pil = "torchvision.transforms", True
    except Exception as error:  # the CPU-only sandbox: torchvision's CUDA build cannot load
        transform = TorchTransforms(task.mean, task.std)
        kind = f"per-image torch ops (torchvision unavailable: {type(error).__name__})"
        use_pil = False
    dataset = ImageDataset(task.train_x, task.train_y, transform, use_pil)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=pin,
                                         persistent_workers=workers > 0)
    return loader, kind


def baseline_epoch(model: nn.Module, loader, fidelity: Fidelity, device: torch.device) -> float:
    """Seconds for one DataLoader epoch, same optimizer, autocast and memory format."""
    is_cuda = device.type == "cuda"
    fmt = torch.channels_last if is_cuda else torch.contiguous_format
    model.to(device=device, memory_format=fmt).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=fidelity.lr, momentum=fidelity.momentum,
                                nesterov=True, weight_decay=fidelity.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=fidelity.label_smoothing)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_cuda)
    iter(loader).__next__()  # start the workers before timing, as the optinas warm-up does
    _sync(device)
    started = time.perf_counter()
    for images, labels in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=fmt)
        labels = labels.to(device, non_blocking=True)
        with autocast:
            logits = model(images)
        loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return time.perf_counter() - started


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=50_000, help="training images in the epoch")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, help="CPU intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best counts")
    parser.add_argument("--data", help="CIFAR-10 image folder or archive (default: $OPTINAS_DATA)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    task, source = cifar_task(args.data, args.images)
    task = _shrink(task, args.images)
    fidelity = Fidelity(epochs=1, batch_size=args.batch_size, lr=0.1, warmup_epochs=0.0)
    torch.manual_seed(0)
    model = build_model(preset("resnet20"))
    baseline_model = copy.deepcopy(model)
    images = (task.num_train // args.batch_size) * args.batch_size

    loader, kind = make_loader(task, args.batch_size, args.workers, pin=device.type == "cuda")
    # Alternate the two and keep each one's best epoch: on a shared machine other jobs slow
    # single runs by up to 5x (measured on the 2-core sandbox), and they only ever add time.
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(optinas_epoch(copy.deepcopy(model), task, fidelity, device))
        theirs.append(baseline_epoch(copy.deepcopy(baseline_model), loader, fidelity, device))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); model: resnet20 preset; batch {args.batch_size}; data: {source}")
    print(f"epochs of {images} images, best of {args.repeats} alternating runs "
          f"(all: optinas {', '.join(f'{t:.1f}' for t in ours)} s; baseline {', '.join(f'{t:.1f}' for t in theirs)} s)")
    print(f"optinas device-resident : {images / min(ours):9.1f} images/s")
    print(f"DataLoader baseline     : {images / min(theirs):9.1f} images/s ({args.workers} workers, "
          f"pin_memory={device.type == 'cuda'}, {kind})")
    print(f"ratio optinas/baseline  : {min(theirs) / min(ours):.2f}x")


if __name__ == "__main__":
    main()
