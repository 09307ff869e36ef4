"""Is a genotype a point of a search space? Answer by replaying it through the space.

``SearchSpace.sample`` asks a trial one named question per choice (``stage0.width``,
``stage1.layer.quant.w_bits``, ...). ``genotype_answers`` reads, for every question the
space could ask, the answer the genotype implies; a strict trial then replays them through
``sample``. The genotype is a point of the space exactly when every question asked finds its
answer among the offered choices and the replay returns the genotype itself, so the test can
neither accept a genotype the space cannot draw nor drift from how the space samples.
"""

from __future__ import annotations

from typing import Any, Sequence

from .errors import GenotypeError
from .genotype import Genotype
from .genotype_specs import LayerSpec

__all__ = ["genotype_answers", "sampling_params", "ReplayTrial", "NotInSpace"]


class NotInSpace(Exception):
    """A question whose answer the space does not offer (the genotype is not a point of it)."""


def _same(value: Any, choice: Any) -> bool:
    # True == 1 in Python; a flag must not match a number (an int option may match a float one,
    # as the layer registry turns an integer given for a float option into that float).
    if isinstance(value, bool) or isinstance(choice, bool):
        return type(value) is type(choice) and value == choice
    return value == choice


class ReplayTrial:
    """Answers each question from ``answers`` and records the ones asked in ``params``.

    Unlike ``optuna.trial.FixedTrial``, an answer outside the offered choices (or a question
    without an answer) raises ``NotInSpace`` instead of being taken as given.
    """

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self.params: dict[str, Any] = {}

    def _answer(self, name: str) -> Any:
        if name not in self.answers:
            raise NotInSpace(name)
        return self.answers[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._answer(name)
        if not any(_same(value, choice) for choice in choices):
            raise NotInSpace(name)
        self.params[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int) -> int:
        value = self._answer(name)
        if type(value) is not int or not low <= value <= high:
            raise NotInSpace(name)
        self.params[name] = value
        return value


def _layer_answers(answers: dict[str, Any], prefix: str, layer: LayerSpec, ask_kind: bool = True) -> None:
    if ask_kind:
        answers[f"{prefix}.layer"] = layer.kind
    for name, value in layer.options:
        answers[f"{prefix}.layer.{layer.kind}.{name}"] = value


def genotype_answers(genotype: Genotype) -> dict[str, Any]:
    """For each question ``SearchSpace.sample`` may ask, the answer that leads to ``genotype``."""
    answers: dict[str, Any] = {"stem.width": genotype.stem.width, "stem.kernel_size": genotype.stem.kernel_size}
    _layer_answers(answers, "stem", genotype.stem.layer)
    # A projection shortcut where a pad-only stage narrows is the space's fallback: the
    # shortcut is then not asked (one choice), so the genotype's own value answers everywhere.
    for index, stage in enumerate(genotype.stages):
        prefix = f"stage{index}"
        answers.update({f"{prefix}.depth": stage.depth, f"{prefix}.width": stage.width,
                        f"{prefix}.kernel_size": stage.kernel_size, f"{prefix}.pattern": stage.block.pattern,
                        f"{prefix}.body": stage.body, f"{prefix}.downsample": stage.downsample,
                        f"{prefix}.shortcut": stage.shortcut})
        for coefficient in stage.block.coefficients:
            where = f"{prefix}.{stage.block.pattern}.{coefficient.name}"
            mode = "learnable-paper" if coefficient.init == "paper" else coefficient.mode
            answers[f"{where}.mode"] = mode
            if mode in ("fixed", "learnable"):
                answers[where] = coefficient.value
        _layer_answers(answers, prefix, stage.layer)
        for block in range(stage.depth):
            own = stage.layer_of(block)
            answers[f"{prefix}.block{block}.layer"] = "stage" if own == stage.layer else own.kind
            if own != stage.layer:
                _layer_answers(answers, f"{prefix}.block{block}", own, ask_kind=False)
    _layer_answers(answers, "head", genotype.head.layer)
    return answers


def sampling_params(space: Any, genotype: Genotype) -> dict[str, Any] | None:
    """The parameters ``space.sample`` asks to produce ``genotype``; None where it cannot."""
    trial = ReplayTrial(genotype_answers(genotype))
    try:
        replayed = space.sample(trial)
    except (NotInSpace, GenotypeError):
        return None
    return trial.params if replayed == genotype else None
