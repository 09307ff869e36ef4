"""Li et al.'s simulation (section 5.3, Table 2): optimizer-inspired structures on random regression.

Li, Yang, Chen, Lin, "Optimization Algorithm Inspired Deep Neural Network Structure Design".
Each structure stacks ``depth`` layers; layer k owns its full connection W_k (model (15):
every layer learns its own U_k), T_k(x) = sigmoid(W_k x), and the layers are wired as

- ``gd``   (eq. 7):  x_{k+1} = T_k(x_k)
- ``hb``   (eq. 11): x_{k+1} = T_k(x_k) + beta (x_k - x_{k-1}),  beta = 0.3
- ``agd``  (eq. 12): x_{k+1} = T_k(x_k + beta_k (x_k - x_{k-1})),  beta_k of eq. 3
- ``agd2`` (eq. 13): x_{k+1} = sum_j h_{k+1,j} T_j(x_j) + x_k - sum_j h_{k+1,j} x_j,  h of eq. 5
- ``admm`` (eq. 14): two paths x', x sharing T_k, coupled by the running sum of x'_t - x_t

with x_{-1} = x_0 (the usual start of a momentum method). 10,000 pairs (x_0, f) are drawn from
N(0, I) in 100 dimensions, and each network is trained to map x_0 to f under the mean squared
error; the paper reports the training MSE after 1,000 epochs. Its footnote 9 leaves the training
algorithm open: we use Adam (lr 1e-3, mini-batches of 100), the same data and, per depth, the
same initial weights for every structure.

In eq. 13 the T_j(x_j) terms are computed once, at layer j with W_j, and reused by all later
layers: with shared W this is the paper's formula, and with per-layer W it keeps AGD2 the
re-expansion of AGD (eq. 4 from eq. 3) that section 5.3 calls "theoretically equivalent": in
exact arithmetic AGD2's x_n is AGD's extrapolated point x_n + beta_n (x_n - x_{n-1}) (tested).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

# The Nesterov coefficients (eqs. 3, 5, 12) are the blocks' own: the simulation and the
# agd/agd2 networks share one set of formulas (re-exported here for the tests).
from optinas.search_space.blocks.nesterov import nesterov_betas, nesterov_h, nesterov_thetas
from optinas.search_space.errors import ConfigError
from optinas.strategies.reproduce.common import one_cpu_thread

__all__ = [
    "STRUCTURES", "PAPER_TABLE2", "PAPER_ORDER", "Table2Settings", "nesterov_thetas", "nesterov_betas",
    "nesterov_h", "propagate", "OptNet", "make_data", "train_structure", "run_table2",
    "paper_claims", "constant_floor",
]

Transform = Callable[[torch.Tensor], torch.Tensor]

#: structure -> the equation of Li et al. it implements (Table 2's column heads).
STRUCTURES = {"gd": "GD (7)", "hb": "HB (11)", "agd": "AGD (12)", "agd2": "AGD2 (13)", "admm": "ADMM (14)"}
HB_BETA = 0.3  # section 5.3: "We set beta = 0.3 for (11)"

#: Li et al., Table 2: MSE after 1,000 epochs, by structure and depth.
PAPER_TABLE2 = {
    "admm": {10: 1.07576, 20: 1.07495, 30: 1.07665, 40: 1.07749},
    "gd": {10: 1.00644, 20: 1.00679, 30: 1.00652, 40: 1.00653},
    "hb": {10: 1.00443, 20: 1.00449, 30: 1.00455, 40: 1.00457},
    "agd": {10: 1.00270, 20: 1.00215, 30: 1.00204, 40: 1.00213},
    "agd2": {10: 1.00745, 20: 1.00227, 30: 1.00086, 40: 0.99964},
}


# ---------------------------------------------------------------- the five update rules

def _gd(x0: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    x = x0
    for transform in transforms:
        x = transform(x)
    return x


def _hb(x0: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    previous = x = x0
    for transform in transforms:
        x, previous = transform(x) + HB_BETA * (x - previous), x
    return x


def _agd(x0: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    betas = nesterov_betas(len(transforms))
    previous = x = x0
    for beta, transform in zip(betas, transforms):
        x, previous = transform(x + beta * (x - previous)), x
    return x


def _agd2(x0: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    # The explicit sum over all earlier layers, not AGD's two-term recursion: the two differ
    # only numerically, which is the effect Table 2's AGD2 column is about.
    h = nesterov_h(len(transforms))
    x, steps = x0, []  # steps[j] = T_j(x_j) - x_j
    for k, transform in enumerate(transforms):
        steps.append(transform(x) - x)
        weights = torch.tensor(h[k], dtype=x.dtype, device=x.device)
        x = x + torch.tensordot(weights, torch.stack(steps), dims=1)
    return x


def _admm(x0: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    x_dual = x = x0
    gap = torch.zeros_like(x0)  # sum_{t=1}^{k} (x'_t - x_t), the scaled multiplier of eq. 6
    for transform in transforms:
        x_dual = 0.5 * (transform(x_dual) + x - gap)
        x = 0.5 * (transform(x) + x_dual + gap)
        gap = gap + (x_dual - x)
    return x


_RULES = {"gd": _gd, "hb": _hb, "agd": _agd, "agd2": _agd2, "admm": _admm}


def propagate(structure: str, x0: torch.Tensor, transforms: Sequence[Transform]) -> torch.Tensor:
    """x_n of ``structure``'s update rule, with ``transforms[k]`` as T_k of layer k.

    Args:
        structure: One of :data:`STRUCTURES`.
        x0: The input, shape ``(batch, width)``.
        transforms: One callable per layer; its length is the depth.

    Returns:
        The last layer's output (for ``admm``, the x path: eq. 14's second line).
    """
    return _RULES[structure](x0, transforms)


class OptNet(nn.Module):
    """``depth`` layers T_k(x) = sigmoid(W_k x) wired by one of the five update rules.

    W_k is a bias-free ``width x width`` full connection: the paper's T is Phi(W x), linear.
    """

    def __init__(self, structure: str, depth: int, width: int = 100):
        super().__init__()
        if structure not in STRUCTURES:
            raise ConfigError(f"structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
        if depth < 1 or width < 1:
            raise ConfigError(f"depth and width must be positive, got depth={depth!r}, width={width!r}")
        self.structure = structure
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        transforms = [lambda x, layer=layer: torch.sigmoid(layer(x)) for layer in self.layers]
        return propagate(self.structure, x0, transforms)


# ---------------------------------------------------------------- training

@dataclass(frozen=True)
class Table2Settings:
    """One run of the simulation; the defaults are the paper's setting (section 5.3)."""

    depths: tuple[int, ...] = (10, 20, 30, 40)
    structures: tuple[str, ...] = tuple(STRUCTURES)
    pairs: int = 10_000
    width: int = 100
    epochs: int = 1_000
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    optimizer: str = field(default="adam", init=False)

    def to_dict(self) -> dict:
        return asdict(self)


def make_data(settings: Table2Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """``pairs`` inputs x_0 and targets f, independent draws from N(0, I) (seeded)."""
    generator = torch.Generator().manual_seed(settings.seed)
    inputs = torch.randn(settings.pairs, settings.width, generator=generator)
    targets = torch.randn(settings.pairs, settings.width, generator=generator)
    return inputs, targets


def train_structure(structure: str, depth: int, inputs: torch.Tensor, targets: torch.Tensor,
                    settings: Table2Settings) -> dict:
    """Trains one structure at one depth; returns its final training MSE and time.

    The initial weights depend on (seed, depth) only, so at each depth all structures start
    from the same W_k and see the same mini-batches.
    """
    device = torch.device(settings.device)
    torch.manual_seed(settings.seed * 1000 + depth)
    model = OptNet(structure, depth, settings.width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    inputs, targets = inputs.to(device), targets.to(device)
    order_generator = torch.Generator().manual_seed(settings.seed)
    started = time.perf_counter()
    for _ in range(settings.epochs):
        order = torch.randperm(len(inputs), generator=order_generator).to(device)
        for batch in order.split(settings.batch_size):
            loss = nn.functional.mse_loss(model(inputs[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():  # the training MSE over all pairs, in chunks to bound AGD2's memory
        squared = sum(nn.functional.mse_loss(model(x), f, reduction="sum").item()
                      for x, f in zip(inputs.split(1000), targets.split(1000)))
    return {"structure": structure, "depth": depth, "mse": squared / targets.numel(),
            "seconds": round(time.perf_counter() - started, 2)}


def run_table2(settings: Table2Settings, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Trains every structure at every depth of ``settings``; one result dict per pair."""
    inputs, targets = make_data(settings)
    results = []
    with one_cpu_thread(settings.device):
        for depth in settings.depths:
            for structure in settings.structures:
                result = train_structure(structure, depth, inputs, targets, settings)
                results.append(result)
                if progress is not None:
                    progress(result)
    return results


# ---------------------------------------------------------------- table, claims, figure

PAPER_ORDER = ("admm", "gd", "hb", "agd", "agd2")  # Table 2's column order


def paper_claims(results: list[dict]) -> list[dict]:
    """The three orderings section 5.3 reads off Table 2, checked on ``results``.

    ``holds`` is None where the run lacks the structures or the depth a claim needs.
    """
    by_depth: dict[int, dict[str, float]] = {}
    for row in results:
        by_depth.setdefault(row["depth"], {})[row["structure"]] = row["mse"]
    complete = {depth: mse for depth, mse in by_depth.items() if set(mse) == set(STRUCTURES)}

    def every_depth(test) -> bool | None:
        return all(test(mse) for mse in complete.values()) if complete else None

    deepest = complete.get(40)
    return [
        {"claim": "HB, AGD and AGD2 reach a lower MSE than GD at every depth",
         "holds": every_depth(lambda mse: all(mse[name] < mse["gd"] for name in ("hb", "agd", "agd2")))},
        {"claim": "ADMM has the highest MSE at every depth",
         "holds": every_depth(lambda mse: max(mse, key=mse.get) == "admm")},
        {"claim": "AGD2 has the lowest MSE at depth 40",
         "holds": None if deepest is None else min(deepest, key=deepest.get) == "agd2"},
    ]


def constant_floor(targets: torch.Tensor) -> float:
    """The MSE of the best prediction that ignores x_0: each target coordinate's mean.

    The pairs are independent draws, so anything below this is memorisation; a network that
    learned nothing sits at (or, with sigmoid outputs that cannot go negative, just above) it.
    """
    return targets.var(dim=0, unbiased=False).mean().item()
