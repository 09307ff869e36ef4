"""Full-fidelity training (evaluator.full_training): schedule, recipe hooks, exact resume."""

from __future__ import annotations

import io
import math

import pytest
import torch

from optinas.evaluator import load_task
from optinas.evaluator.distributed import World
from optinas.evaluator.full_training import FullTraining, TrainingPlan, schedule_factor
from optinas.evaluator.proxy import scale_widths
from optinas.search_space import Genotype, InputSpec, build_model
from optinas.search_space.errors import ConfigError
from optinas.search_space.presets import preset
from optinas.search_space.recipes import TrainingRecipe


@pytest.fixture(scope="module")
def digits():
    return load_task("digits", seed=0)


def _tiny(task, name="resnet20") -> Genotype:
    """A one-block-per-stage, quarter-width ResNet for the digits task (trains in ~1 s)."""
    genotype = scale_widths(preset(name, InputSpec(*task.input_shape, task.num_classes)), 0.25)
    data = genotype.to_dict()
    for stage in data["stages"]:
        stage["depth"] = 1
    return Genotype.from_dict(data)


def _trainer(task, epochs=3, seed=0, **plan) -> FullTraining:
    torch.manual_seed(seed)
    return FullTraining(build_model(_tiny(task)), task, TrainingPlan(epochs=epochs, **plan),
                        torch.device("cpu"), seed=seed)


def test_schedule_warms_up_linearly_then_follows_the_half_cosine():
    # 4 warm-up steps of 104: 1/4, 2/4, 3/4, 1, then SGDR's 0.5 (1 + cos(pi t)).
    assert [schedule_factor(s, 4, 104, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule_factor(4, 4, 104, "cosine") == 1.0
    assert schedule_factor(54, 4, 104, "cosine") == pytest.approx(0.5)
    assert schedule_factor(29, 4, 104, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert 0 < schedule_factor(103, 4, 104, "cosine") < 1e-3


def test_linear_decay_falls_by_equal_steps_and_ends_above_zero():
    values = [schedule_factor(s, 0, 10, "linear") for s in range(10)]
    assert values == pytest.approx([1.0 - 0.1 * s for s in range(10)])
    assert values[-1] > 0


def test_the_optimizer_follows_the_schedule_every_step(digits):
    trainer = _trainer(digits, epochs=2, warmup_epochs=1.0, lr=0.2)
    seen = []
    trainer.train_epoch(on_step=lambda step, loss: seen.append(trainer.optimizer.param_groups[0]["lr"]))
    steps = trainer.steps_per_epoch
    # After step k (1-based) the schedule has advanced to step k: lr = 0.2 * factor(k).
    expected = [0.2 * schedule_factor(min(k, 2 * steps - 1), steps, 2 * steps, "cosine")
                for k in range(1, steps + 1)]
    assert seen == pytest.approx(expected)


class _Spy(TrainingRecipe):
    def __init__(self):
        self.progress, self.backwards, self.inference = [], 0, 0

    def before_step(self, model, progress):
        self.progress.append(progress)

    def after_backward(self, model):
        self.backwards += 1

    def for_inference(self, model):
        self.inference += 1


def test_recipe_hooks_run_around_every_step_with_the_run_progress(digits):
    trainer = _trainer(digits, epochs=2)
    spy = _Spy()
    trainer.recipes = [spy]
    trainer.train_epoch()
    trainer.train_epoch()
    total = trainer.total_steps
    assert spy.progress == pytest.approx([step / total for step in range(total)])
    assert spy.backwards == total
    assert spy.inference == 2  # before each validation pass


def test_an_adder_model_gets_the_adder_recipe(digits):
    torch.manual_seed(0)
    model = build_model(_tiny(digits, "resnet20-adder"))
    trainer = FullTraining(model, digits, TrainingPlan(epochs=1), torch.device("cpu"))
    assert [type(recipe).__name__ for recipe in trainer.recipes] == ["AdderRecipe"]
    state = trainer.state_dict()
    assert state["recipes"] == {"kinds": ["AdderRecipe"], "progress": 0.0}


def test_resuming_from_a_state_dict_repeats_the_uninterrupted_run_exactly(digits):
    straight = _trainer(digits, epochs=3)
    straight.train_epoch()
    buffer = io.BytesIO()
    torch.save(straight.state_dict(), buffer)  # as a checkpoint: a snapshot, not live tensors
    buffer.seek(0)
    state = torch.load(buffer, weights_only=False)
    torch.manual_seed(123)  # a different global generator state, restored by load_state_dict
    records = [straight.train_epoch(), straight.train_epoch()]

    resumed = _trainer(digits, epochs=3, seed=0)
    resumed.load_state_dict(state)
    assert resumed.epochs_done == 1
    again = [resumed.train_epoch(), resumed.train_epoch()]
    assert [r.train_loss for r in again] == [r.train_loss for r in records]
    assert [r.epoch for r in again] == [2, 3] and resumed.finished
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_a_checkpoint_of_other_layer_kinds_is_refused(digits):
    state = _trainer(digits).state_dict()
    state["recipes"]["kinds"] = ["AdderRecipe"]
    with pytest.raises(ConfigError, match="layer recipes"):
        _trainer(digits).load_state_dict(state)


def test_a_batch_that_does_not_split_evenly_across_ranks_is_refused(digits):
    with pytest.raises(ConfigError, match="multiple of the 2 torchrun processes"):
        FullTraining(build_model(_tiny(digits)), digits, TrainingPlan(epochs=1, batch_size=63),
                     torch.device("cpu"), world=World(rank=0, size=2))


def test_the_plan_rejects_an_unknown_decay():
    with pytest.raises(ConfigError, match="decay must be one of cosine, linear"):
        TrainingPlan(decay="step")
