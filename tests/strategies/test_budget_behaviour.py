"""Budgets, by behaviour: what each flag text parses to, what is refused and how, which limit
bounds which cost, the sign and size of each violation, and how latency is timed.

Expected values are written out by hand from the units' definitions (k = 10^3, Ki = 2^10,
1 B = 8 bits, 1 uJ = 10^6 pJ), not computed from the parser's tables. Latency is timed on a
scripted clock (``time.perf_counter`` replaced for the test), so the median is exact and the
test does not depend on the machine's load.
"""

import time
from types import SimpleNamespace

import pytest
import torch

from optinas.search_space import ConfigError
from optinas.strategies.budgets import Budget, measure_latency_ms, parse_count, parse_energy, parse_storage


@pytest.mark.parametrize("text, count", [
    ("2000000", 2_000_000), ("2e6", 2_000_000), ("2E6", 2_000_000), ("2.5e+3", 2_500), ("4e-1k", 400),
    (".5k", 500), ("1.5k", 1_500), ("500k", 500_000), ("500K", 500_000), ("2m", 2_000_000),
    ("2M", 2_000_000), ("1.5g", 1_500_000_000), ("1.5G", 1_500_000_000), ("3t", 3 * 10**12),
    ("3T", 3 * 10**12), ("  7 k  ", 7_000), ("7", 7), ("2.6", 3), ("0.6", 1),
    (12, 12), (2.4, 2), (3e6, 3_000_000),
])
def test_counts_parse_to_integers(text, count):
    parsed = parse_count(text, "--max-mults")
    assert parsed == count and type(parsed) is int


@pytest.mark.parametrize("text, message", [
    ("2 M M", "--max-mults must be a count like 2000000, 2e6, 2M or 500k; got '2 M M'"),
    ("2Mi", "--max-mults must be a count like 2000000, 2e6, 2M or 500k; got '2Mi'"),
    ("-5", "--max-mults must be a count like 2000000, 2e6, 2M or 500k; got '-5'"),
    ("", "--max-mults must be a count like 2000000, 2e6, 2M or 500k; got ''"),
    ("inf", "--max-mults must be a count like 2000000, 2e6, 2M or 500k; got 'inf'"),
    (True, "--max-mults must be a count like 2000000, 2e6, 2M or 500k; got True"),
    ("0", "--max-mults must be positive and finite, got '0'"),
    ("0k", "--max-mults must be positive and finite, got '0k'"),
    (-3, "--max-mults must be positive and finite, got -3"),
    (0.0, "--max-mults must be positive and finite, got 0.0"),
    ("0.4", "--max-mults must be at least 1, got '0.4'"),
    ("1e400", "--max-mults must be positive and finite, got '1e400'"),
    ("1e300T", "--max-mults must be positive and finite, got '1e300T'"),
    (float("inf"), "--max-mults must be positive and finite, got inf"),
    (float("nan"), "--max-mults must be positive and finite, got nan"),
])
def test_bad_counts_are_one_sentence(text, message):
    with pytest.raises(ConfigError) as error:
        parse_count(text, "--max-mults")
    assert str(error.value) == message


@pytest.mark.parametrize("text, picojoules", [
    ("800pJ", 800.0), ("120nJ", 120e3), ("5uJ", 5e6), ("5µJ", 5e6), ("0.3mJ", 0.3e9), ("2J", 2e12),
    (" 2.5e-3 J ", 2.5e9), ("1E2nJ", 1e5),
])
def test_energies_parse_to_picojoules(text, picojoules):
    assert parse_energy(text) == pytest.approx(picojoules, rel=1e-15)


@pytest.mark.parametrize("text, bits", [
    ("12b", 12), ("12bit", 12), ("12bits", 12), ("3kb", 3_000), ("3kbit", 3_000), ("2Mb", 2_000_000),
    ("2Mbit", 2_000_000), ("1Gb", 10**9), ("1Gbit", 10**9), ("5B", 40), ("5kB", 40_000), ("5KB", 40_000),
    ("5MB", 40_000_000), ("5GB", 40 * 10**9), ("5KiB", 5 * 8 * 1024), ("5MiB", 5 * 8 * 1024**2),
    ("5GiB", 5 * 8 * 1024**3), ("0.1b", 1), ("1.01b", 2), (" 3 KiB ", 24_576),
])
def test_storage_parses_to_whole_bits_rounded_up(text, bits):
    parsed = parse_storage(text)
    assert parsed == bits and type(parsed) is int


@pytest.mark.parametrize("parse, text, message", [
    (parse_energy, "5uj", "--max-energy must be a number with a unit (pJ, nJ, uJ, µJ, mJ, J), e.g. 5uJ; got '5uj'"),
    (parse_energy, "5 UJ", "--max-energy must be a number with a unit (pJ, nJ, uJ, µJ, mJ, J), e.g. 5uJ; got '5 UJ'"),
    (parse_energy, "uJ", "--max-energy must be a number with a unit (pJ, nJ, uJ, µJ, mJ, J), e.g. 5uJ; got 'uJ'"),
    (parse_energy, "0pJ", "--max-energy must be positive and finite, got '0pJ'"),
    (parse_energy, "1e400J", "--max-energy must be positive and finite, got '1e400J'"),
    (parse_energy, "1e301J", "--max-energy must be positive and finite, got '1e301J'"),
    (parse_storage, "5kib", "--max-storage must be a number with a unit (b, bit, bits, kb, kbit, Mb, Mbit, Gb, Gbit, "
                            "B, kB, KB, MB, GB, KiB, MiB, GiB), e.g. 200KB; got '5kib'"),
    (parse_storage, "5 Kb", "got '5 Kb'"),
    (parse_storage, "0KiB", "--max-storage must be positive and finite, got '0KiB'"),
    (parse_storage, "1e400B", "--max-storage must be positive and finite, got '1e400B'"),
])
def test_bad_units_and_sizes_are_one_sentence(parse, text, message):
    with pytest.raises(ConfigError) as error:
        parse(text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_flag_name_is_the_one_given():
    with pytest.raises(ConfigError, match="^--cap must be positive and finite, got '0J'$"):
        parse_energy("0J", "--cap")
    with pytest.raises(ConfigError, match="^--room must be positive and finite, got '0B'$"):
        parse_storage("0B", "--room")


def test_from_flags_parses_each_limit_on_its_own():
    assert Budget.from_flags() == Budget() and Budget.from_flags().limits() == {}
    assert Budget.from_flags(max_mults="2M").limits() == {"max_mults": 2_000_000}
    assert Budget.from_flags(max_energy="5uJ").limits() == {"max_energy": 5e6}
    assert Budget.from_flags(max_params="50k").limits() == {"max_params": 50_000}
    assert Budget.from_flags(max_storage="1KiB").limits() == {"max_storage": 8_192}
    assert Budget.from_flags(max_latency_ms=" 12.5 ").limits() == {"max_latency_ms": 12.5}
    assert Budget.from_flags(max_latency_ms=3).max_latency_ms == 3.0
    assert Budget.from_flags(max_latency_ms="0.5").max_latency_ms == 0.5  # under a millisecond is a limit too
    assert Budget.from_flags(hardware="int8_accelerator") == Budget(hardware="int8_accelerator")


@pytest.mark.parametrize("flags, message", [
    ({"max_mults": "lots"}, "--max-mults must be a count like 2000000, 2e6, 2M or 500k; got 'lots'"),
    ({"max_params": "-1"}, "--max-params must be a count like 2000000, 2e6, 2M or 500k; got '-1'"),
    ({"max_params": "0"}, "--max-params must be positive and finite, got '0'"),
    ({"max_energy": "5"}, "--max-energy must be a number with a unit"),
    ({"max_storage": "5"}, "--max-storage must be a number with a unit"),
    ({"max_latency_ms": "soon"}, "--max-latency-ms must be a number of milliseconds, got 'soon'"),
    ({"max_latency_ms": "0"}, "--max-latency-ms must be positive and finite, got '0'"),
    ({"max_latency_ms": "-2"}, "--max-latency-ms must be positive and finite, got '-2'"),
    ({"max_latency_ms": "nan"}, "--max-latency-ms must be positive and finite, got 'nan'"),
    ({"max_latency_ms": "inf"}, "--max-latency-ms must be positive and finite, got 'inf'"),
    ({"max_latency_ms": "1e400"}, "--max-latency-ms must be positive and finite, got '1e400'"),
    ({"max_energy": "5uJ", "hardware": "tpu9"}, "unknown hardware profile 'tpu9'"),
])
def test_bad_flags_name_the_flag(flags, message):
    with pytest.raises(ConfigError) as error:
        Budget.from_flags(**flags)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("field, value, message", [
    ("max_mults", 0, "--max-mults must be positive and finite, got 0"),
    ("max_energy", -1.5, "--max-energy must be positive and finite, got -1.5"),
    ("max_energy", float("inf"), "--max-energy must be positive and finite, got inf"),
    ("max_params", -3, "--max-params must be positive and finite, got -3"),
    ("max_storage", 0, "--max-storage must be positive and finite, got 0"),
    ("max_latency_ms", float("nan"), "--max-latency-ms must be positive and finite, got nan"),
])
def test_a_budget_refuses_limits_that_are_not_positive_and_finite(field, value, message):
    with pytest.raises(ConfigError) as error:
        Budget(**{field: value})
    assert str(error.value) == message


def test_small_limits_are_limits():
    assert Budget(max_params=1, max_latency_ms=0.5, max_energy=1e-3).limits() == {
        "max_energy": 1e-3, "max_params": 1, "max_latency_ms": 0.5}


def test_limits_identity_and_latency_need():
    assert Budget().limits() == {} and Budget().identity() == {} and not Budget().needs_latency
    every = Budget(max_mults=5, max_energy=6.0, max_params=7, max_storage=8, max_latency_ms=9.0,
                   hardware="int8_accelerator")
    assert list(every.limits().items()) == [("max_mults", 5), ("max_energy", 6.0), ("max_params", 7),
                                            ("max_storage", 8), ("max_latency_ms", 9.0)]
    assert every.needs_latency
    assert every.identity() == {"budget.max_mults": 5, "budget.max_energy": 6.0, "budget.max_params": 7,
                                "budget.max_storage": 8, "budget.max_latency_ms": 9.0,
                                "budget.hardware": "int8_accelerator"}
    # Energies depend on the profile, so it is part of the identity exactly when energy is bounded.
    assert Budget(max_energy=6.0).identity() == {"budget.max_energy": 6.0, "budget.hardware": "horowitz45"}
    assert Budget(max_params=7, hardware="int8_accelerator").identity() == {"budget.max_params": 7}
    assert not Budget(max_params=7, hardware="horowitz45").needs_latency


# A candidate's costs; each value differs from the others so a limit bound to the wrong one shows.
COST = SimpleNamespace(mults=1_000, energy_pj=2_000.0, params=300, storage_bits=4_000)


def test_each_limit_bounds_its_own_cost():
    budget = Budget(max_mults=10, max_energy=20.0, max_params=30, max_storage=40, max_latency_ms=50.0)
    assert budget.measured(COST) == {"max_mults": 1_000, "max_energy": 2_000.0, "max_params": 300,
                                     "max_storage": 4_000}  # latency not measured: not reported
    assert budget.measured(COST, latency_ms=7.5)["max_latency_ms"] == 7.5
    assert Budget(max_params=30).measured(COST, latency_ms=7.5) == {"max_params": 300}


def test_violations_are_relative_excess_with_an_exact_sign():
    budget = Budget(max_mults=500, max_energy=8_000.0, max_params=300, max_storage=3_200, max_latency_ms=10.0)
    assert budget.violations(COST, latency_ms=2.5) == {
        "max_mults": pytest.approx(1.0), "max_energy": pytest.approx(-0.75), "max_params": 0.0,
        "max_storage": pytest.approx(0.25), "max_latency_ms": pytest.approx(-0.75)}
    assert set(budget.violations(COST)) == {"max_mults", "max_energy", "max_params", "max_storage"}
    # Over the limit by less than a double can resolve: still infeasible, by the floor 1e-12.
    huge = 2**60
    over = Budget(max_mults=huge).violations(SimpleNamespace(**{**COST.__dict__, "mults": huge + 1}))
    assert over == {"max_mults": 1e-12}
    under = Budget(max_mults=huge + 1).violations(SimpleNamespace(**{**COST.__dict__, "mults": huge}))
    assert under == {"max_mults": 0.0}


class _Scripted(torch.nn.Module):
    """A model whose forward pass takes ``durations[i]`` seconds on the scripted clock."""

    def __init__(self, clock, durations):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.clock, self.durations, self.seen = clock, list(durations), []

    def forward(self, image):
        self.seen.append((tuple(image.shape), image.device.type, float(image.abs().sum()) if
                          image.device.type != "meta" else None, self.training, torch.is_grad_enabled()))
        self.clock.now += self.durations[len(self.seen) - 1]
        return image * self.weight


@pytest.fixture
def clock(monkeypatch):
    """``time.perf_counter`` replaced by a clock that only the model advances."""
    state = SimpleNamespace(now=100.0)
    monkeypatch.setattr(time, "perf_counter", lambda: state.now)
    return state


def test_latency_is_the_median_of_the_timed_passes_after_one_untimed_one(clock):
    # Warm-up 0.5 s (not timed), then 2, 8, 3, 7, 1 ms: median 3 (mean 4.2; with the
    # warm-up the median would be 5).
    model = _Scripted(clock, [0.5, 0.002, 0.008, 0.003, 0.007, 0.001])
    assert measure_latency_ms(model, (3, 4, 5), torch.device("cpu")) == pytest.approx(3.0)
    assert len(model.seen) == 6
    # Batch-1 zero images of the given shape, in eval mode, without autograd.
    assert set(model.seen) == {((1, 3, 4, 5), "cpu", 0.0, False, False)}
    assert model.training  # the mode it had before


def test_latency_repeats_and_mode(clock):
    model = _Scripted(clock, [1.0, 0.004, 0.002, 0.009])
    model.eval()
    assert measure_latency_ms(model, (2,), torch.device("cpu"), repeats=3) == pytest.approx(4.0)
    assert len(model.seen) == 4 and not model.training


def test_latency_moves_the_model_to_the_device_and_restores_its_mode_on_failure(clock):
    # The meta device runs the pass without data: it shows that the model and the image
    # are both put on the device given.
    model = _Scripted(clock, [0.1] + [0.001] * 5)
    measure_latency_ms(model, (1, 2, 2), torch.device("meta"))
    assert model.weight.device.type == "meta" and {seen[1] for seen in model.seen} == {"meta"}

    class Broken(torch.nn.Module):
        def forward(self, image):
            raise RuntimeError("no kernel")

    broken = Broken()
    with pytest.raises(RuntimeError, match="no kernel"):
        measure_latency_ms(broken, (1,), torch.device("cpu"))
    assert broken.training


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_passes_are_timed_between_synchronisations(monkeypatch):
    # CUDA runs kernels asynchronously: without a synchronisation on each side of a pass the
    # clock would time the launch, not the work.
    device = torch.device("cuda", torch.cuda.current_device())
    synchronised = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda where=None: synchronised.append(where) or real(where))
    model = torch.nn.Linear(8, 8)
    assert measure_latency_ms(model, (8,), device, repeats=3) > 0
    assert synchronised == [device] * 8  # before and after each of the 4 passes
    assert model.weight.device == device and model.training
