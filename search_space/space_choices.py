"""What a search space chooses among, and the trial interface it asks.

Shared by the space (``optinas.search_space.space``), its TOML reader and validator
(``optinas.search_space.space_toml``) and its membership test
(``optinas.search_space.space_membership``): the coefficient modes, the per-stage settings, the
default coefficient table, and the duck-typed trial (an Optuna trial, ``FixedTrial``, or the
seeded ``RandomTrial`` here).
"""

from __future__ import annotations

import random
from typing import Any, Protocol, Sequence

__all__ = ["COEFFICIENT_MODES", "STAGE_KEYS", "TrialLike", "RandomTrial", "default_coefficients", "pick"]

#: How a coefficient may be searched: "learnable-paper" trains it from the paper's formula.
COEFFICIENT_MODES = ("fixed", "paper", "learnable", "learnable-paper")
#: The per-stage choices; a ``[stageN]`` table of the TOML file may change any of them.
STAGE_KEYS = ("depths", "widths", "kernel_sizes", "patterns", "bodies", "shortcuts", "downsamples",
              "layers", "overrides")


class TrialLike(Protocol):
    """The two ``suggest_*`` methods of an Optuna trial that a space asks."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int) -> int: ...


class RandomTrial:
    """A seeded stand-in for an Optuna trial: uniform choices, recorded in ``params``."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.params[name] = self.rng.choice(list(choices))
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        self.params[name] = self.rng.randint(low, high)
        return self.params[name]


def pick(trial: TrialLike, name: str, choices: Sequence[Any]) -> Any:
    """Ask ``trial`` to choose among ``choices``; a single option is no decision and is not asked."""
    choices = list(choices)
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, choices)


def default_coefficients() -> dict[str, dict[str, dict[str, tuple]]]:
    """Per pattern and coefficient, the modes and values searched unless a space says otherwise.

    Li et al.: heavy ball (eq. 16) spans ResNet (b1 = 1, b2 = 0) and HB-Net (b2 = -1); the
    Nesterov forms take eq. 3 and eq. 5's formulas; ADMM (eq. 20) is DMRNet's a = c = 1/2.
    """
    return {
        "hb": {"b1": {"modes": ("fixed",), "values": (0.0, 0.5, 1.0)},
               "b2": {"modes": ("fixed",), "values": (-1.0, -0.5, 0.0)}},
        "agd": {"b1": {"modes": ("paper", "learnable-paper")}, "b2": {"modes": ("paper", "learnable-paper")}},
        "agd_dense": {"alpha": {"modes": ("paper", "learnable-paper")},
                      "beta": {"modes": ("paper", "fixed"), "values": (1.0,)}},
        "agd2": {"beta": {"modes": ("paper", "learnable-paper")}},
        "admm": {"a": {"modes": ("fixed",), "values": (0.5,)}, "c": {"modes": ("fixed",), "values": (0.5,)}},
    }
