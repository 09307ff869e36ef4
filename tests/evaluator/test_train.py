"""Proxy training: recipe validation, batch augmentation, learning, determinism, failures."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optinas.evaluator import (
    EvalResult,
    Fidelity,
    TrialFailed,
    batch_crop,
    batch_flip_lr,
    evaluate,
    resolve_device,
)
from optinas.evaluator.failures import DivergenceWatch
from optinas.evaluator.train import make_optimizer, lr_factor
from optinas.search_space.errors import ConfigError

# Short recipes keep the file well under 40 s on 2 CPU cores; LEARN is the one that must
# reach > 90 % validation accuracy (lr 0.2 suits this small CNN on 1149 images).
QUICK = Fidelity(epochs=2)
LEARN = Fidelity(epochs=8, lr=0.2)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


class TimesNan(nn.Module):
    """Multiplies its input by nan: every output, and so the loss, is nan."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class NanWhenEvaluating(nn.Module):
    """Trains normally but returns inf logits in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.training else x * float("inf")


# ---------------------------------------------------------------- recipe and device

def test_default_fidelity_matches_the_contract():
    assert Fidelity().to_dict() == {
        "epochs": 8, "batch_size": 64, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
        "warmup_epochs": 1.0, "label_smoothing": 0.1, "train_fraction": 1.0,
        "time_limit_s": None, "width_multiplier": 1.0, "resolution": None,
        "cuda_graphs": False,
    }


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0), ("epochs", 2.5), ("epochs", True), ("batch_size", 0), ("lr", 0.0),
        ("lr", float("nan")), ("momentum", 1.0), ("momentum", -0.1), ("weight_decay", -1e-4),
        ("warmup_epochs", -1.0), ("warmup_epochs", 9.0), ("label_smoothing", 1.0),
        ("train_fraction", 0.0), ("train_fraction", 1.5), ("time_limit_s", 0.0),
        ("time_limit_s", "10"), ("width_multiplier", 0.0), ("width_multiplier", 32.0),
        ("resolution", 0), ("resolution", 16.0), ("cuda_graphs", 1),
    ],
)
def test_bad_fidelity_field_names_field_and_value(field, value):
    with pytest.raises(ConfigError) as excinfo:
        Fidelity(**{field: value})
    assert f"Fidelity.{field} must be" in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


def test_fidelity_from_dict_round_trips_and_refuses_unknown_keys():
    fidelity = Fidelity(epochs=3, lr=0.1, time_limit_s=60.0)
    assert Fidelity.from_dict(fidelity.to_dict()) == fidelity
    with pytest.raises(ConfigError, match="unknown Fidelity field.*'epoch'"):
        Fidelity.from_dict({"epoch": 3})


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="device must be 'auto', 'cpu'"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError) as excinfo:
        resolve_device("cuda")
    assert str(excinfo.value) == (
        "--device cuda was requested but no CUDA device is available; use --device cpu or auto"
    )


def test_lr_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, 4, 20) for step in range(20)]
    assert factors[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]  # the decay starts from the peak
    assert all(a > b for a, b in zip(factors[4:], factors[5:]))
    assert factors[-1] == pytest.approx(1 / 16)
    assert lr_factor(0, 0, 10) == 1.0


def test_weight_decay_skips_batchnorm_and_biases():
    model = small_cnn()
    optimizer = make_optimizer(model, Fidelity(weight_decay=1e-3))
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert names == {"0.weight", "3.weight", "8.weight"}
    assert all(g["nesterov"] for g in optimizer.param_groups)


# ---------------------------------------------------------------- batch augmentation

def _crop_reference(images: torch.Tensor, shifts: torch.Tensor, mode: str) -> torch.Tensor:
    pad = int(shifts.abs().max())
    out = torch.empty_like(images)
    height, width = images.shape[2:]
    for n, (dy, dx) in enumerate(shifts.tolist()):
        padded = F.pad(
            images[n : n + 1].float(), (pad, pad, pad, pad),
            mode="reflect" if mode == "reflect" else "constant",
        )
        window = padded[0, :, pad + dy : pad + dy + height, pad + dx : pad + dx + width]
        out[n] = window.to(images.dtype)
    return out


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_batch_crop_matches_per_image_reference(mode):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 7, 9), dtype=torch.uint8, generator=generator)
    shifts = torch.randint(-3, 4, (6, 2), generator=generator)
    shifts[0] = torch.tensor([3, -3])  # make sure the extreme offsets are covered
    assert torch.equal(batch_crop(images, shifts, mode), _crop_reference(images, shifts, mode))


def test_batch_crop_with_zero_shift_is_identity():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    for mode in ("reflect", "zeros"):
        assert torch.equal(batch_crop(images, torch.zeros(4, 2, dtype=torch.int64), mode), images)


def test_batch_flip_lr_matches_reference_and_undoes_itself():
    images = torch.randn(6, 2, 5, 7)
    flips = torch.tensor([True, False, True, True, False, False])
    expected = torch.stack([img.flip(-1) if f else img for img, f in zip(images, flips)])
    flipped = batch_flip_lr(images, flips)
    assert torch.equal(flipped, expected)
    assert torch.equal(batch_flip_lr(flipped, flips), images)


# ---------------------------------------------------------------- training

def test_small_cnn_learns_digits(digits):
    result = evaluate(small_cnn(), digits, LEARN, seed=0)
    assert isinstance(result, EvalResult)
    assert result.val_accuracy > 0.9
    assert result.test_accuracy > 0.85
    assert result.epochs == 8
    assert result.wall_time_s > 0
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()


def test_same_seed_same_result(digits):
    model = small_cnn(seed=5)
    twin = copy.deepcopy(model)
    first = evaluate(model, digits, QUICK, seed=3).to_dict()
    second = evaluate(twin, digits, QUICK, seed=3).to_dict()
    first.pop("wall_time_s"), second.pop("wall_time_s")
    assert first == second


def test_on_epoch_is_called_once_per_epoch(digits):
    calls = []
    result = evaluate(small_cnn(), digits, Fidelity(epochs=3), on_epoch=lambda *a: calls.append(a))
    assert [epoch for epoch, _ in calls] == [0, 1, 2]
    assert calls[-1][1] == result.val_accuracy


def test_on_epoch_exception_propagates(digits):
    class Pruned(Exception):
        pass

    calls = []

    def prune_at_second(epoch: int, accuracy: float) -> None:
        calls.append(epoch)
        if epoch == 1:
            raise Pruned

    with pytest.raises(Pruned):
        evaluate(small_cnn(), digits, Fidelity(epochs=4), on_epoch=prune_at_second)
    assert calls == [0, 1]


def test_augmented_task_trains(digits):
    # Exercises the crop-and-flip path of the loop (digits itself is not augmented).
    augmented = dataclasses.replace(digits, augment=True)
    result = evaluate(small_cnn(), augmented, QUICK, seed=1)
    assert 0.0 <= result.val_accuracy <= 1.0


def test_train_fraction_trains_on_a_subset(digits):
    result = evaluate(small_cnn(), digits, Fidelity(epochs=1, train_fraction=0.1), seed=0)
    assert result.epochs == 1


# ---------------------------------------------------------------- failures

def test_nan_loss_fails_the_trial(digits):
    model = nn.Sequential(small_cnn(), TimesNan())
    with pytest.raises(TrialFailed) as excinfo:
        evaluate(model, digits, QUICK)
    assert "nan" in str(excinfo.value)
    assert "epoch 1 of 2, step 1 of 17" in str(excinfo.value)
    assert excinfo.value.kind == "diverged"


def test_huge_learning_rate_without_batchnorm_fails_the_trial(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with pytest.raises(TrialFailed, match=r"training diverged: loss became (nan|inf|-inf)"):
        evaluate(model, digits, Fidelity(epochs=2, lr=1e8, warmup_epochs=0.0))


def test_nonfinite_outputs_at_evaluation_fail_the_trial(digits):
    model = nn.Sequential(small_cnn(), NanWhenEvaluating())
    with pytest.raises(TrialFailed, match="outputs became inf on the validation split"):
        evaluate(model, digits, Fidelity(epochs=1))


def test_deferred_divergence_check_reports_first_bad_step():
    # The CUDA path: losses are recorded on the device and checked once per epoch.
    watch = DivergenceWatch(
        torch.device("cpu"), epochs=3, steps_per_epoch=17, check_every_step=False
    )
    for step, value in enumerate([1.0, 2.0, float("inf"), float("nan")], start=18):
        watch.update(torch.tensor(value), step)
    with pytest.raises(TrialFailed, match="loss became inf at epoch 2 of 3, step 4 of 17"):
        watch.check()


def test_time_limit_fails_the_trial(digits):
    with pytest.raises(TrialFailed, match=r"time limit of 1e-06 s exceeded at epoch 1 of 2") as e:
        evaluate(small_cnn(), digits, Fidelity(epochs=2, time_limit_s=1e-6))
    assert e.value.kind == "time_limit"


def test_out_of_memory_fails_the_trial(digits):
    class Greedy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    model = nn.Sequential(small_cnn(), Greedy())
    with pytest.raises(TrialFailed, match="out of GPU memory: CUDA out of memory") as e:
        evaluate(model, digits, QUICK)
    assert e.value.kind == "out_of_memory"


def test_trial_failed_survives_pickling():
    original = TrialFailed("time limit of 5 s exceeded", kind="time_limit")
    error = pickle.loads(pickle.dumps(original))
    assert (str(error), error.reason, error.kind) == (str(original), original.reason, "time_limit")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_learns_digits(digits):
    # bf16 autocast and channels-last: same recipe, close to the CPU's accuracy.
    result = evaluate(small_cnn(), digits, LEARN, device="cuda")
    assert result.val_accuracy > 0.9
