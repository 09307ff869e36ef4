"""Proxy fidelity: width multiplier, resolution, recipes in the loop, determinism, CUDA graphs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import optinas.evaluator.train as train_module
from optinas.evaluator import Fidelity, evaluate, proxy_genotype, resize_images, scale_widths
from optinas.evaluator.graphs import graph_eligible
from optinas.search_space import (
    BlockSpec,
    Genotype,
    InputSpec,
    LayerSpec,
    StageSpec,
    StemSpec,
    build_model,
    count_cost,
)
from optinas.search_space.presets import preset

DIGITS = InputSpec(1, 8, 8, 10)


def _small(layer: str = "conv", width: int = 8) -> Genotype:
    return Genotype(DIGITS, StemSpec(width), (
        StageSpec(1, width, block=BlockSpec("hb"), layer=LayerSpec(layer)),
        StageSpec(1, 2 * width, stride=2, layer=LayerSpec(layer)),
    ))


# ---------------------------------------------------------------- scale_widths

def test_scale_widths_halves_resnet20_and_keeps_everything_else():
    full = preset("resnet20")
    half = scale_widths(full, 0.5)
    assert (half.stem.width, *(s.width for s in half.stages)) == (8, 8, 16, 32)
    for before, after in zip(full.stages, half.stages):
        assert dataclasses.replace(after, width=before.width) == before
    assert half.input == full.input and half.head == full.head
    # About a quarter of the multiplications: conv cost grows with width squared.
    assert 0.2 < count_cost(half).mults / count_cost(full).mults < 0.3
    assert scale_widths(full, 1) is full


def test_scale_widths_rounds_keeps_one_and_bottleneck_multiples_of_four():
    assert scale_widths(_small(width=8), 0.01).stem.width == 1
    assert [s.width for s in scale_widths(_small(width=8), 0.3).stages] == [2, 5]
    resnet50 = preset("resnet50")
    assert all(s.width % 4 == 0 for s in scale_widths(resnet50, 0.37).stages)
    with pytest.raises(ValueError, match="width factor must be a positive number"):
        scale_widths(resnet50, 0)


def test_proxy_genotype_applies_width_and_resolution():
    full = preset("resnet20")
    proxy = proxy_genotype(full, Fidelity(width_multiplier=0.5, resolution=16))
    assert proxy.input == InputSpec(3, 16, 16, 10) and proxy.stem.width == 8
    assert proxy_genotype(full, Fidelity()) is full


# ---------------------------------------------------------------- resolution

def test_resize_images_averages_when_shrinking_and_keeps_uint8():
    images = torch.zeros((2, 1, 4, 4), dtype=torch.uint8)
    images[0, 0, :2, :2] = 200  # top-left 2x2 block
    images[1] = 90
    small = resize_images(images, 2)
    assert small.dtype == torch.uint8 and small.shape == (2, 1, 2, 2)
    assert small[0, 0].tolist() == [[200, 0], [0, 0]] and small[1].unique().tolist() == [90]
    assert resize_images(images, 4) is images


def test_evaluate_at_a_proxy_resolution(digits):
    fidelity = Fidelity(epochs=1, resolution=6)
    torch.manual_seed(0)
    model = build_model(proxy_genotype(_small(), fidelity))
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[2:])))
    evaluate(model, digits, fidelity, seed=0)
    assert set(seen) == {(6, 6)}


# ---------------------------------------------------------------- determinism

def test_cpu_training_is_deterministic_for_a_seed(digits):
    fidelity = Fidelity(epochs=2, width_multiplier=0.5, resolution=7)
    augmented = dataclasses.replace(digits, augment=True)  # exercise crop and flip too
    runs = []
    for _ in range(2):
        torch.manual_seed(4)
        model = build_model(proxy_genotype(_small(), fidelity))
        result = evaluate(model, augmented, fidelity, seed=11).to_dict()
        result.pop("wall_time_s")
        runs.append((result, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1].values(), runs[1][1].values()))


# ---------------------------------------------------------------- recipes in the loop

class SpyRecipe:
    def __init__(self):
        self.calls = []

    def before_step(self, model, progress):
        self.calls.append(("step", progress, model.training))

    def after_backward(self, model):
        grads = [p.grad is not None for p in model.parameters()]
        self.calls.append(("backward", all(grads)))

    def for_inference(self, model):
        self.calls.append(("inference",))


def test_recipe_hooks_run_around_every_step_and_before_every_scoring(digits, monkeypatch):
    spy = SpyRecipe()
    monkeypatch.setattr(train_module, "recipes_for", lambda model: [spy])
    scored = []
    real_score = train_module.score_split
    monkeypatch.setattr(train_module, "score_split", lambda model, data, split, *rest: (
        scored.append((split, spy.calls[-1])), real_score(model, data, split, *rest))[1])
    torch.manual_seed(0)
    evaluate(build_model(_small()), digits, Fidelity(epochs=2, batch_size=128), seed=0)
    steps = [call for call in spy.calls if call[0] == "step"]
    assert len(steps) == 2 * (digits.num_train // 128)
    assert [p for _, p, _ in steps] == [i / len(steps) for i in range(len(steps))]
    assert all(training for _, _, training in steps)
    assert spy.calls.count(("backward", True)) == len(steps)
    # Inference state before each validation pass and before the final test pass.
    assert [split for split, _ in scored] == ["val", "val", "test"]
    assert all(last == ("inference",) for _, last in scored)


def test_adder_genotype_gets_the_addernet_recipe_automatically(digits):
    from optinas.search_space.layers.adder_kind import AdderConv2d

    torch.manual_seed(0)
    model = build_model(_small("adder"))
    adders = [m for m in model.modules() if isinstance(m, AdderConv2d)]
    assert adders
    exponents = []
    adders[0].register_forward_pre_hook(
        lambda module, args: exponents.append(module.p) if module.training else None)
    evaluate(model, digits, Fidelity(epochs=2, batch_size=128), seed=0)
    # p falls linearly from 2 (eq. 20) to 1 at p_decay = 0.75 of training, then stays 1 ...
    assert exponents[0] == 2.0 and exponents[-1] == 1.0
    assert all(a >= b for a, b in zip(exponents, exponents[1:]))
    assert 1.0 < exponents[len(exponents) // 2] < 2.0
    # ... and the trained model is left at inference p = 1 in every adder layer.
    assert all(layer.p == 1.0 for layer in adders)


# ---------------------------------------------------------------- CUDA graphs

def test_graph_capture_only_on_cuda_without_recipes():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert graph_eligible(cuda, True, []) and not graph_eligible(cpu, True, [])
    assert not graph_eligible(cuda, False, []) and not graph_eligible(cuda, True, [object()])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_training_matches_eager(digits):
    results = {}
    for graphs in (False, True):
        torch.manual_seed(0)
        model = build_model(_small())
        fidelity = Fidelity(epochs=6, lr=0.2, cuda_graphs=graphs)
        results[graphs] = evaluate(model, digits, fidelity, device="cuda", seed=0)
        # bf16 autocast leaves BatchNorm's parameters and statistics in fp32.
        assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())
    assert results[True].val_accuracy > 0.85
    assert abs(results[True].val_accuracy - results[False].val_accuracy) < 0.05


def test_tensor_lr_optimizer_follows_the_schedule_like_the_float_one():
    # The graph path's optimizer: fused SGD reading a learning-rate tensor filled each step.
    from optinas.evaluator.train import make_optimizer

    torch.manual_seed(0)
    model = build_model(_small())
    twin_model = build_model(_small())
    twin_model.load_state_dict(model.state_dict())
    fidelity = Fidelity(weight_decay=1e-3)
    lr = torch.tensor(0.0)
    fused, plain = make_optimizer(model, fidelity, lr), make_optimizer(twin_model, fidelity)
    for value in (0.05, 0.0, 0.2):
        lr.fill_(value)
        for group in plain.param_groups:
            group["lr"] = value
        for net in (model, twin_model):
            for parameter in net.parameters():
                parameter.grad = torch.ones_like(parameter)
        fused.step()
        plain.step()
    for a, b in zip(model.parameters(), twin_model.parameters()):
        torch.testing.assert_close(a, b)
