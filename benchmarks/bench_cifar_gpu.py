"""CIFAR-10 on the GPU: time for the conv ResNet-20 preset to reach 90 % test accuracy, and
the adder, binary and 4-bit variants and HB-Net-20 under the same budget.

Every model is a preset genotype (``optinas.search_space.presets``) built by ``build_model`` and
trained by ``optinas.evaluator.evaluate`` with one recipe (Nesterov SGD, linear warm-up and decay,
label smoothing, bf16 autocast, channels-last, pad-and-crop + flip on the device). Layer
kinds bring their own recipes: adder layers get AdderNet's p schedule and eq. 27 scaling,
binary and quant layers train through their straight-through estimators.

To time "reach 90 %", the test split is scored after every epoch (the benchmark's task
uses the 10,000 official test images as its validation split and trains on all 50,000
training images; a search never does this). Printed per model: test accuracy after the
budget, seconds (training plus that per-epoch scoring, which costs a few per cent), seconds
until the first epoch at >= 90 %, and the accuracy gap to resnet20 next to the paper's gap:

- AdderNet, Table 2, ResNet-20 on CIFAR-10: CNN 92.93 %, BNN 84.87 % (gap 8.06), l1-AddNN
  91.84 % (gap 1.09); the table has no 4-bit row;
- Li et al., Table 4 (n = 9, CIFAR-10+ error): ResNet 5.32 %, HB-Net 5.46 % (gap 0.14).

Run (on a CUDA machine; needs torch and this repository only):
    OPTINAS_DATA=/path/to/shared/data python benchmarks/bench_cifar_gpu.py
    python benchmarks/bench_cifar_gpu.py --data cifar10-jpeg.tar.gz --epochs 40 --models resnet20,hb-net20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optinas.evaluator import Fidelity, TrialFailed, evaluate, load_task, resolve_device  # noqa: E402
from optinas.evaluator.tasks import Task  # noqa: E402
from optinas.search_space import InputSpec, build_model  # noqa: E402
from optinas.search_space.presets import preset  # noqa: E402

MODELS = ("resnet20", "resnet20-adder", "resnet20-binary", "resnet20-quant4", "hb-net20")
PAPER_GAP = {"resnet20-adder": 92.93 - 91.84, "resnet20-binary": 92.93 - 84.87, "hb-net20": 5.46 - 5.32}
TARGET = 0.90


def load_cifar(data: str | None, data_dir: str | None) -> Task:
    """CIFAR-10 with all 50,000 training images and the test images as the scored split."""
    if data is None and data_dir is None and os.environ.get("OPTINAS_DATA"):
        data = str(Path(os.environ["OPTINAS_DATA"]) / "cifar10-jpeg.tar.gz")
    task = load_task(data or "cifar10", seed=0, data_dir=data_dir)
    return dataclasses.replace(
        task, train_x=torch.cat([task.train_x, task.val_x]), train_y=torch.cat([task.train_y, task.val_y]),
        val_x=task.test_x, val_y=task.test_y,
    )


def run(name: str, task: Task, fidelity: Fidelity, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(preset(name, InputSpec(3, 32, 32, 10)))
    curve: list[tuple[float, float]] = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()

    def record(epoch: int, accuracy: float) -> None:
        curve.append((time.perf_counter() - started, accuracy))

    try:
        result = evaluate(model, task, fidelity, device=device, seed=0, on_epoch=record)
    except TrialFailed as failure:
        return {"model": name, "failed": str(failure)}
    reached = next((seconds for seconds, accuracy in curve if accuracy >= TARGET), None)
    return {"model": name, "test_accuracy": result.test_accuracy, "seconds": result.wall_time_s,
            "seconds_to_90": reached, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="CIFAR-10 image folder or archive (default: $OPTINAS_DATA/cifar10-jpeg.tar.gz)")
    parser.add_argument("--data-dir", help="or: root of torchvision's cifar-10-batches-py/")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=40, help="the budget, the same for every model")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--warmup-epochs", type=float, default=2.0)
    parser.add_argument("--train-fraction", type=float, default=1.0, help="for quick smoke runs only")
    parser.add_argument("--cuda-graphs", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", help="also write the results (with per-epoch curves) here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    task = load_cifar(args.data, args.data_dir)
    fidelity = Fidelity(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        warmup_epochs=args.warmup_epochs, train_fraction=args.train_fraction,
                        cuda_graphs=args.cuda_graphs)
    # Warm-up: data copy to the device, cuDNN autotuning, Triton compilation of the adder kernels.
    for name in args.models.split(","):
        torch.manual_seed(0)
        evaluate(build_model(preset(name, InputSpec(3, 32, 32, 10))), task,
                 dataclasses.replace(fidelity, epochs=1, warmup_epochs=0.0, train_fraction=0.002), device=device)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; CIFAR-10 from {task.source}; {fidelity}")
    results = [run(name, task, fidelity, device) for name in args.models.split(",")]
    base = next((r for r in results if r["model"] == "resnet20" and "failed" not in r), None)
    print(f"{'model':18s} {'test acc':>8s} {'seconds':>8s} {'s to 90%':>9s} {'gap':>6s} {'paper gap':>9s}")
    for r in results:
        if "failed" in r:
            print(f"{r['model']:18s} failed: {r['failed']}")
            continue
        gap = 100 * (base["test_accuracy"] - r["test_accuracy"]) if base else float("nan")
        paper = PAPER_GAP.get(r["model"])
        print(f"{r['model']:18s} {100 * r['test_accuracy']:7.2f}% {r['seconds']:8.1f} "
              f"{r['seconds_to_90'] if r['seconds_to_90'] is not None else float('nan'):9.1f} "
              f"{gap:6.2f} {paper if paper is not None else float('nan'):9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"fidelity": fidelity.to_dict(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
