"""Objectives, Pareto dominance and hypervolume, against independent references."""

import itertools
import random

import pytest

from optinas.search_space.errors import ConfigError
from optinas.strategies.objectives import dominates, objective_values, pareto_indices, parse_objectives
from optinas.strategies.results.hypervolume import front_hypervolume, hypervolume, hypervolume_history, reference_point


def _inclusion_exclusion(points, reference):
    """Exact hypervolume by inclusion-exclusion over every subset (exponential; tiny inputs only)."""
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = [max(p[d] for p in subset) for d in range(len(reference))]
            volume = 1.0
            for value, bound in zip(corner, reference):
                volume *= max(0.0, bound - value)
            total += (-1) ** (size + 1) * volume
    return total


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_hypervolume_equals_inclusion_exclusion(dims):
    rng = random.Random(dims)
    for _ in range(20):
        points = [tuple(rng.random() for _ in range(dims)) for _ in range(rng.randint(1, 7))]
        reference = tuple(rng.uniform(0.8, 1.2) for _ in range(dims))
        assert hypervolume(points, reference) == pytest.approx(_inclusion_exclusion(points, reference), abs=1e-12)


def test_hypervolume_by_hand():
    # Two rectangles 0.8 x 0.5 overlapping in 0.5 x 0.5: 0.4 + 0.4 - 0.25.
    assert hypervolume([(0.2, 0.5), (0.5, 0.2)], (1, 1)) == pytest.approx(0.55)
    assert hypervolume([(1.5, 0.1)], (1, 1)) == 0.0  # outside the reference box
    assert hypervolume([], (1, 1)) == 0.0


def test_parse_objectives():
    assert [o.name for o in parse_objectives("accuracy,energy")] == ["accuracy", "energy"]
    assert [o.direction for o in parse_objectives("accuracy,latency")] == ["maximize", "minimize"]
    for bad in ("", "accuracy,speed", "mults", "accuracy,accuracy"):
        with pytest.raises(ConfigError):
            parse_objectives(bad)


def test_dominance_and_front_follow_directions():
    objectives = parse_objectives("accuracy,mults")
    assert dominates((0.9, 10), (0.8, 20), objectives)
    assert not dominates((0.9, 30), (0.8, 20), objectives)
    assert not dominates((0.9, 10), (0.9, 10), objectives)
    points = [(0.9, 30), (0.8, 20), (0.7, 25), (0.95, 100)]
    assert pareto_indices(points, objectives) == [0, 1, 3]


def test_objective_values_read_the_cost():
    objectives = parse_objectives("accuracy,energy,params,latency")
    total = {"mul": 5, "energy_pj": 7.5, "params": 11, "storage_bits": 99}
    assert objective_values(objectives, total, 0.5, latency_ms=2.0) == (0.5, 7.5, 11.0, 2.0)


def test_front_hypervolume_uses_the_stated_reference():
    objectives = parse_objectives("accuracy,mults")
    rows = [{"number": 0, "status": "trained", "values": [0.5, 50.0]},
            {"number": 1, "status": "infeasible", "values": [0.0, 400.0]},
            {"number": 2, "status": "trained", "values": [0.8, 100.0]}]
    reference = reference_point(objectives, rows)
    assert reference == {"accuracy": 0.0, "mults": 400.0}  # the largest cost seen
    # Normalised points (0.5, 0.125) and (0.2, 0.25) in the unit box.
    expected = 0.5 * 0.875 + 0.3 * 0.75
    assert front_hypervolume(rows, objectives, reference) == pytest.approx(expected)
    history = hypervolume_history(rows, objectives, reference)
    assert [number for number, _ in history] == [0, 1, 2]
    assert history[0][1] == pytest.approx(0.5 * 0.875) and history[-1][1] == pytest.approx(expected)
