"""Budgets: units, constraint values, and the guarantee that no feasible candidate breaks one."""

import random
import statistics
import time
from pathlib import Path

import pytest
import torch

from optinas.search_space import ConfigError, InputSpec, SearchSpace, build_model, count_cost
from optinas.search_space.presets import preset
from optinas.search_space.space import RandomTrial
from optinas.strategies.budgets import Budget, measure_latency_ms, parse_energy, parse_storage
from optinas.strategies.trial import TrialContext, screen


@pytest.mark.parametrize("text, picojoules", [
    ("5uJ", 5e6), ("5 µJ", 5e6), ("120nJ", 1.2e5), ("0.3mJ", 3e8), ("1J", 1e12), ("800pJ", 800.0),
    ("2e3 nJ", 2e6),
])
def test_energy_units(text, picojoules):
    assert parse_energy(text) == pytest.approx(picojoules)


@pytest.mark.parametrize("text, bits", [
    ("200KB", 1_600_000), ("200kB", 1_600_000), ("1.5MiB", 12_582_912), ("800kbit", 800_000),
    ("12b", 12), ("1B", 8), ("2GB", 16_000_000_000), ("3 KiB", 24_576),
])
def test_storage_units(text, bits):
    assert parse_storage(text) == bits


@pytest.mark.parametrize("parse, text, fragment", [
    (parse_energy, "5", "must be a number with a unit (pJ, nJ, uJ, µJ, mJ, J), e.g. 5uJ; got '5'"),
    (parse_energy, "5kJ", "got '5kJ'"),
    (parse_energy, "-3uJ", "got '-3uJ'"),
    (parse_energy, "0uJ", "--max-energy must be positive"),
    (parse_storage, "200", "e.g. 200KB; got '200'"),
    (parse_storage, "200KiBs", "got '200KiBs'"),
])
def test_bad_units_are_one_sentence(parse, text, fragment):
    with pytest.raises(ConfigError) as error:
        parse(text)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_budget_from_flags_and_identity():
    budget = Budget.from_flags(max_mults="2M", max_energy="5uJ", max_params="50k", max_storage="200KB",
                               max_latency_ms="12.5", hardware="int8_accelerator")
    assert budget.limits() == {"max_mults": 2_000_000, "max_energy": 5e6, "max_params": 50_000,
                               "max_storage": 1_600_000, "max_latency_ms": 12.5}
    assert budget.identity()["budget.hardware"] == "int8_accelerator"
    assert "budget.hardware" not in Budget(max_params=10).identity()  # energy unbounded: no matter
    with pytest.raises(ConfigError, match="--max-latency-ms must be a number of milliseconds, got 'soon'"):
        Budget.from_flags(max_latency_ms="soon")
    with pytest.raises(ConfigError, match="unknown hardware profile 'tpu9'"):
        Budget(hardware="tpu9")


def test_violations_are_relative_and_their_sign_is_exact():
    cost = count_cost(preset("resnet20"))
    at_limit = Budget(max_mults=cost.mults, max_energy=cost.energy_pj, max_params=cost.params,
                      max_storage=cost.storage_bits)
    assert set(at_limit.violations(cost).values()) == {0.0}
    tight = Budget(max_mults=cost.mults - 1, max_params=cost.params * 2)
    violations = tight.violations(cost)
    # One multiplication over 40.7M: the ratio rounds to ~2.5e-8, still strictly positive.
    assert 0 < violations["max_mults"] < 1e-7 and violations["max_params"] == pytest.approx(-0.5)


class _RecordingTrial(RandomTrial):
    """RandomTrial (the space's fast sampling path) that records what ``screen`` stores."""

    def __init__(self, rng, number):
        super().__init__(rng)
        self.number, self.user_attrs, self.constraints = number, {}, {}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value

    def set_constraint(self, key, value):
        assert key not in self.constraints
        self.constraints[key] = float(value)


def _every_kind_space():
    return SearchSpace(InputSpec(1, 8, 8, 10), layers=("conv", "adder", "binary", "quant"),
                       bodies=("basic", "bottleneck", "single"), head_layers=("conv", "quant"),
                       stem_layers=("conv", "binary"), overrides=True)


def _context(space, budget):
    return TrialContext(space=space, task=None, fidelity=None, budget=budget, device=torch.device("cpu"),
                        seed=0, run_dir=Path("unused"))


def test_no_candidate_recorded_feasible_exceeds_any_budget():
    # CPU time, not wall time: the sandbox is shared, and its load says nothing about this code.
    started = time.process_time()
    space = _every_kind_space()
    # Limits at quantiles of the space's own costs, so that each one binds for some candidates.
    probe = [count_cost(genotype) for genotype in space.sample_random(400, seed=1)]
    def quantile(values, q):
        return sorted(values)[int(q * (len(values) - 1))]
    budget = Budget(max_mults=quantile([c.mults for c in probe], 0.6),
                    max_energy=quantile([c.energy_pj for c in probe], 0.7),
                    max_params=quantile([c.params for c in probe], 0.8),
                    max_storage=quantile([c.storage_bits for c in probe], 0.6))
    context = _context(space, budget)
    rng = random.Random(7)
    feasible = 0
    broken = {name: 0 for name in budget.limits()}
    for number in range(10_000):
        trial = _RecordingTrial(rng, number)
        screened = screen(trial, context)
        cost, constraints = trial.user_attrs["cost"], trial.constraints
        measured = {"max_mults": cost["mul"], "max_energy": cost["energy_pj"], "max_params": cost["params"],
                    "max_storage": cost["storage_bits"]}
        assert set(constraints) == set(budget.limits())
        over = {name for name, limit in budget.limits().items() if measured[name] > limit}
        for name in over:
            broken[name] += 1
        if screened.feasible:
            feasible += 1
            assert not over, (number, over)
            assert all(value <= 0 for value in constraints.values())
            assert "status" not in trial.user_attrs
        else:
            assert over and trial.user_attrs["status"] == "infeasible"
            assert all(constraints[name] > 0 for name in over)
    assert 1000 < feasible < 9000 and all(broken.values())  # the budgets really split the space
    assert time.process_time() - started < 60


def test_latency_is_measured_before_training_and_reuses_the_model():
    model = build_model(preset("resnet20"))
    latency = measure_latency_ms(model, (3, 32, 32), torch.device("cpu"), repeats=3)
    assert 0 < latency < 10_000 and model.training  # mode restored
    space = SearchSpace(InputSpec(1, 8, 8, 10))
    loose = _context(space, Budget(max_latency_ms=60_000.0))
    trial = _RecordingTrial(random.Random(0), 0)
    screened = screen(trial, loose)
    assert screened.feasible and screened.model is not None
    assert trial.user_attrs["latency_ms"] > 0 and trial.constraints["max_latency_ms"] < 0
    tight = _context(space, Budget(max_latency_ms=1e-6))
    trial = _RecordingTrial(random.Random(0), 1)
    assert not screen(trial, tight).feasible and trial.constraints["max_latency_ms"] > 0
    # A candidate over an analytic limit is not built, so it has no latency at all.
    over = _context(space, Budget(max_params=1, max_latency_ms=60_000.0))
    trial = _RecordingTrial(random.Random(0), 2)
    screened = screen(trial, over)
    assert not screened.feasible and screened.model is None and "latency_ms" not in trial.user_attrs
    assert set(trial.constraints) == {"max_params"}


def test_median_latency_is_a_median(monkeypatch):
    # A scripted clock that only the forward pass advances: 4 ms for the untimed warm-up,
    # then 1, 4, 1, 4, 1 ms. The median is 1 ms exactly (the mean would be 2.2, and counting
    # the warm-up the median of 4, 1, 4, 1, 4, 1 would be 2.5), whatever the machine's load.
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    calls = []

    class Clock(torch.nn.Module):
        def forward(self, x):
            calls.append(1)
            now[0] += 0.004 if len(calls) % 2 else 0.001
            return x

    value = measure_latency_ms(Clock(), (1, 2, 2), torch.device("cpu"), repeats=5)
    assert len(calls) == 6  # one untimed warm-up pass
    assert value == pytest.approx(1.0)


class _Result:
    """What ``optinas.evaluator.evaluate`` returns, for a search whose training is not under test."""

    val_accuracy = 0.5

    def to_dict(self):
        return {"val_accuracy": self.val_accuracy, "test_accuracy": 0.5}


def test_a_search_under_several_budgets_trains_only_feasible_candidates(tmp_path, monkeypatch):
    import json

    from optinas.strategies import SearchConfig, run_search
    from optinas.strategies import trial as trial_module
    from optinas.strategies.study import open_study

    trained = []
    monkeypatch.setattr(trial_module, "evaluate", lambda model, *args, **kwargs: trained.append(model) or _Result())
    space = SearchSpace(InputSpec(1, 8, 8, 10))
    probe = [count_cost(genotype, "int8_accelerator") for genotype in space.sample_random(200, seed=0)]
    budget = Budget(max_energy=statistics.median(c.energy_pj for c in probe),
                    max_storage=int(statistics.median(c.storage_bits for c in probe) * 1.5),
                    hardware="int8_accelerator")
    config = SearchConfig(study="b", trials=12, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          budget=budget)
    summary = run_search(config, show_progress=False)
    rows = [json.loads(line) for line in (config.run_dir / "trials.jsonl").read_text().splitlines()]
    infeasible = [row for row in rows if row["status"] == "infeasible"]
    assert infeasible and summary.infeasible == len(infeasible) and len(trained) == summary.trained
    for row in rows:
        over = (row["cost"]["energy_pj"] > budget.max_energy or row["cost"]["storage_bits"] > budget.max_storage)
        assert (row["status"] == "infeasible") == over
        assert set(row["constraints"]) == {"max_energy", "max_storage"}
    for row in infeasible:
        assert row["metrics"] is None
        assert not (config.run_dir / "checkpoints" / f"{row['number']}.pt").exists()
    study = open_study(config.run_dir, "b")
    assert [t.constraints for t in study.get_trials()] == [row["constraints"] for row in rows]
    assert f"{len(infeasible)} infeasible" in (config.run_dir / "report.html").read_text()
    # Energies are priced on the study's hardware; resuming on another profile is refused.
    assert 'budget.hardware" = "int8_accelerator"' in (config.run_dir / "config.toml").read_text()
    other = SearchConfig(**{**config.__dict__, "budget": Budget(max_energy=budget.max_energy,
                                                                max_storage=budget.max_storage)})
    with pytest.raises(ConfigError, match="created with budget.hardware = 'int8_accelerator', not 'horowitz45'"):
        run_search(other, show_progress=False)
