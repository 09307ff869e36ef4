"""AdderNet's toy experiments (section 5.3, Figs. 4-6): two-layer AdderNets vs multiplication nets.

Chen et al., "Adder Neural Networks" (the journal version of AdderNet).
Section 5.3 trains, on three 2-D toy sets, a two-layer fully connected network with ``n``
hidden units and ReLU ("traditional", multiply-accumulate) and the same network with adder
layers, and shows their decision boundaries (top row: traditional, bottom row: AdderNet):

| toy | eq. | figure | n | what the paper reads off the figure |
|---|---|---|---|---|
| ``unit-ball`` | 46 | 4 | 1, 2, 3 | FC fails at n = 1, 2 and succeeds at 3; AdderNet succeeds even at n = 1 |
| ``two-balls`` | 47 | 5 | 3, 5, 10 | FC makes mistakes at 3, 5, succeeds at 10; AdderNet: few mistakes at 3, all right at 5, 10 |
| ``xy-sign`` | 48 | 6 | 1, 2, 3 | neither succeeds at n = 1, 2; both succeed at n = 3 |

The paper gives figures, not numbers, so the table here reports training and held-out test
accuracy per network, data set and n, and checks each of the readings above with "separates
the training points" meaning a training accuracy of at least ``SEPARATES`` (99 %).

Training follows the section: SGD with Nesterov momentum 0.9, weight decay 5e-4, initial
learning rate 0.1, 10,000 iterations, the binary cross-entropy of a sigmoid output, class 1
where the sigmoid exceeds 0.5. It runs through ``optinas.evaluator.evaluate`` (the training loop of
every search), so the adder layers get AdderNet's own recipe (Algorithm 1: p from 2 to 1,
eq. 20; adaptive learning rate, eq. 27). Where this differs from the paper, and why:

- the data are the evaluator's toys (``evaluator/datasets/synthetic.py``: the paper's "variance" of 10
  and 15 is read as the standard deviation, or the unit ball would have no outer class), and
  the network sees them normalised per coordinate like any task's inputs;
- the learning rate decays linearly to 0 (the evaluator's one schedule), not by a cosine;
- one output o is trained by cross-entropy over the logits (0, o), which is exactly the
  binary cross-entropy of sigmoid(o), and the prediction argmax(0, o) is sigmoid(o) > 0.5;
- BatchNorm follows both layers of both networks: an adder layer's outputs are all <= 0
  (eq. 2), so a ReLU straight after it is dead from the first step, and the paper's networks
  put BatchNorm after every adder layer, the classifier included (section 3; the official
  ResNet-20 normalises its logits). Without the output BatchNorm the n = 1 AdderNet lost its
  hidden unit to the ReLU in 2 of 4 seeds on the unit ball (1 of 6 with it; 1,400-iteration
  runs at eta = 0.1, measured). The FC
  net gets the same BatchNorms, so the two networks differ only in the operator;
- eq. 27 rescales each adder layer's weight gradient to the length eta sqrt(k), whatever
  the gradient, so every step moves a layer's weights the same distance. With the paper's
  CIFAR eta = 0.1 and k = 2 the single hidden centre of the n = 1 unit-ball AdderNet
  random-walked to (7.2, -3.1), seven standard deviations from the data, where an l1 distance
  is nearly linear, and the net ended at 84 % (measured, 10,000 iterations, seed 0); with
  eta = 0.01 it ends on the origin and separates the ball. The toys use ``eta`` = 0.01 (the
  seed does not give one for them); the p schedule is the project default (p = 1 after 75 %);
- the paper's initialisation is not given and one run per cell can be unlucky, so
  ``restarts`` > 1 trains each network from that many seeds and reports (and draws) the one
  with the lowest final training loss (training data only); the table says how many of them
  separated. The default is the paper's one run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from optinas.evaluator import Fidelity, evaluate, load_task
from optinas.search_space.errors import ConfigError
from optinas.search_space.layers.adder_kind import AdderLinear
from optinas.strategies.reproduce.common import one_cpu_thread

__all__ = ["TOYS", "NETWORKS", "PAPER_READING", "SEPARATES", "ToySettings", "ToyNet", "FAST",
           "train_network", "run_toys", "paper_claims", "comparative_claims"]

#: toy -> (equation, figure, hidden-unit counts n) of AdderNet section 5.3.
TOYS = {"unit-ball": (46, 4, (1, 2, 3)), "two-balls": (47, 5, (3, 5, 10)), "xy-sign": (48, 6, (1, 2, 3))}
#: network -> how the table and the figure name it.
NETWORKS = {"fc": "FC (multiplications)", "adder": "AdderNet"}
#: (toy, network, n) -> whether section 5.3 says the network separates the points.
PAPER_READING = {
    **{("unit-ball", "fc", n): n == 3 for n in (1, 2, 3)},
    **{("unit-ball", "adder", n): True for n in (1, 2, 3)},
    **{("two-balls", "fc", n): n == 10 for n in (3, 5, 10)},
    **{("two-balls", "adder", n): n in (5, 10) for n in (3, 5, 10)},
    **{("xy-sign", network, n): n == 3 for network in NETWORKS for n in (1, 2, 3)},
}
#: Training accuracy from which a network counts as separating the points.
SEPARATES = 0.99


@dataclass(frozen=True)
class ToySettings:
    """One run of section 5.3; the defaults are the paper's setting (plus ``restarts``)."""

    toys: tuple[str, ...] = tuple(TOYS)
    iterations: int = 10_000
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    restarts: int = 1
    eta: float = 0.01
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


class ToyNet(nn.Module):
    """Two layers with ``hidden`` units: layer(2, n) -> BN -> ReLU -> layer(n, 1) -> BN.

    ``kind`` ``fc`` uses ``nn.Linear`` (o = b + sum_i w_i h_i), ``adder`` the project's
    ``AdderLinear`` (o = b - sum_i |h_i - w_i|^p, AdderNet eq. 20). The forward returns the
    logits (0, o), so softmax cross-entropy is the binary cross-entropy of sigmoid(o).
    """

    def __init__(self, kind: str, hidden: int, eta: float = ToySettings.eta):
        super().__init__()
        if kind not in NETWORKS:
            raise ConfigError(f"toy network kind must be one of {', '.join(NETWORKS)}, got {kind!r}")
        # eta: the adder layers' eq. 27 coefficient (see the module docstring for 0.01).
        layer = (lambda i, o: AdderLinear(i, o, eta=eta)) if kind == "adder" else nn.Linear
        self.kind = kind
        self.hidden = layer(2, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.output = layer(hidden, 1)
        self.output_norm = nn.BatchNorm1d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.output_norm(self.output(torch.relu(self.norm(self.hidden(x.flatten(1))))))
        return torch.cat([torch.zeros_like(o), o], dim=1)


def _normalised(task, points: torch.Tensor) -> torch.Tensor:
    """Raw (M, 2) points as the network sees them: (M, 2, 1, 1), normalised like the task."""
    mean, std = torch.tensor(task.mean), torch.tensor(task.std)
    return ((points - mean) / std)[:, :, None, None]


@torch.no_grad()
def predict(model: nn.Module, task, points: torch.Tensor) -> torch.Tensor:
    """0/1 predictions of a trained ``model`` (in its inference state) for raw (M, 2) points."""
    device = next(model.parameters()).device
    model.eval()
    return model(_normalised(task, points).to(device)).argmax(dim=1).cpu()


def train_network(task, kind: str, hidden: int, settings: ToySettings, seed: int) -> tuple[dict, nn.Module]:
    """Trains one ToyNet from ``seed``; returns its result row and the trained model."""

    steps_per_epoch = task.num_train // min(settings.batch_size, task.num_train)
    epochs = max(1, math.ceil(settings.iterations / steps_per_epoch))
    fidelity = Fidelity(epochs=epochs, batch_size=settings.batch_size, lr=settings.lr,
                        momentum=settings.momentum, weight_decay=settings.weight_decay,
                        warmup_epochs=0.0, label_smoothing=0.0)
    torch.manual_seed(seed)
    model = ToyNet(kind, hidden, settings.eta)
    result = evaluate(model, task, fidelity, device=settings.device, seed=seed)
    # The task stores the raw points (the evaluator normalises each batch on the device).
    train_accuracy = (predict(model, task, task.train_x.flatten(1)) == task.train_y).float().mean().item()
    return {"toy": task.name, "network": kind, "hidden": hidden, "seed": seed,
            "iterations": epochs * steps_per_epoch, "train_loss": result.train_loss,
            "train_accuracy": train_accuracy, "test_accuracy": result.test_accuracy,
            "seconds": round(result.wall_time_s, 2)}, model


def run_toys(settings: ToySettings, progress: Callable[[dict], None] | None = None
             ) -> tuple[list[dict], dict[tuple[str, str, int], nn.Module], dict]:
    """Trains both networks at every n of every toy, ``restarts`` seeds each.

    Returns:
        One row per (toy, network, n): the restart with the lowest final training loss, with
        ``separated`` = how many restarts reached ``SEPARATES``; the chosen models by
        (toy, network, n); and the loaded tasks by name (for the figure).
    """

    rows, models, tasks = [], {}, {}
    with one_cpu_thread(settings.device):
        for toy in settings.toys:
            task = tasks[toy] = load_task(toy, seed=settings.seed)
            chance = task.test_y.bincount().max().item() / len(task.test_y)
            for network in NETWORKS:
                for hidden in TOYS[toy][2]:
                    tries = [train_network(task, network, hidden, settings, settings.seed + restart)
                             for restart in range(settings.restarts)]
                    best, model = min(tries, key=lambda pair: pair[0]["train_loss"])
                    row = dict(best, restarts=settings.restarts, chance=chance,
                               separated=sum(r["train_accuracy"] >= SEPARATES for r, _ in tries),
                               paper_separates=PAPER_READING[toy, network, hidden],
                               seconds=round(sum(r["seconds"] for r, _ in tries), 2))
                    rows.append(row)
                    models[toy, network, hidden] = model
                    if progress is not None:
                        progress(row)
    return rows, models, tasks


def paper_claims(rows: list[dict]) -> list[dict]:
    """Section 5.3's reading of each figure cell, checked: does the network separate the points?"""
    claims = []
    for row in rows:
        ours = row["train_accuracy"] >= SEPARATES
        claims.append({"toy": row["toy"], "network": row["network"], "hidden": row["hidden"],
                       "paper_separates": row["paper_separates"], "separates": ours,
                       "agrees": ours == row["paper_separates"]})
    return claims


def comparative_claims(rows: list[dict]) -> list[dict]:
    """The comparisons section 5.3 draws between the two networks, checked on training accuracy.

    ``holds`` is None where the run lacks a cell the claim needs.
    """
    accuracy = {(row["toy"], row["network"], row["hidden"]): row["train_accuracy"] for row in rows}

    def check(keys: list[tuple[str, str, int]], test) -> bool | None:
        return test(*(accuracy[key] for key in keys)) if all(key in accuracy for key in keys) else None

    def separates(value: float) -> bool:
        return value >= SEPARATES

    return [
        {"claim": "unit ball: the AdderNet separates with n = 1, the FC net needs n = 3",
         "holds": check([("unit-ball", "adder", 1), ("unit-ball", "fc", 1), ("unit-ball", "fc", 2),
                         ("unit-ball", "fc", 3)],
                        lambda a1, f1, f2, f3: separates(a1) and not separates(f1) and not separates(f2)
                        and separates(f3))},
        {"claim": "two balls: the AdderNet beats the FC net at n = 3 and n = 5",
         "holds": check([("two-balls", "adder", 3), ("two-balls", "fc", 3), ("two-balls", "adder", 5),
                         ("two-balls", "fc", 5)], lambda a3, f3, a5, f5: a3 > f3 and a5 > f5)},
        {"claim": "x*y sign: neither network separates with n = 1, 2; both do best with n = 3",
         "holds": check([("xy-sign", net, n) for net in NETWORKS for n in (1, 2, 3)],
                        lambda f1, f2, f3, a1, a2, a3: not any(map(separates, (f1, f2, a1, a2)))
                        and f3 > max(f1, f2) and a3 > max(a1, a2))},
    ]


#: ``--fast``: one restart of 200 iterations per network (about 20 s on one core), for tests.
FAST = {"iterations": 200, "restarts": 1}
