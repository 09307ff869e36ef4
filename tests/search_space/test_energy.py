"""Hardware profiles and the energy model (search_space.cost.profiles, search_space.cost.energy)."""

import copy
import math

import pytest

from optinas.search_space import ConfigError, Genotype, InputSpec, LayerSpec, StageSpec, StemSpec, count_cost
from optinas.search_space.cost import load_profile, profile_names
from optinas.search_space.cost.profiles import PROFILE_DIR, parse_profile


def _shipped_data(name="horowitz45"):
    import tomllib

    return tomllib.loads((PROFILE_DIR / f"{name}.toml").read_text())


def _profile(**changes):
    """horowitz45 with top-level keys, ``ops`` tables or ``memory`` entries replaced."""
    data = copy.deepcopy(_shipped_data())
    for key, value in changes.items():
        if key in ("ops", "memory"):
            data[key].update(value)
        else:
            data[key] = value
    return parse_profile(data, where="test")


def _tiny(layer=LayerSpec("conv")):
    # stem 1->4 (3x3), one single-layer gd block 4->4, pool, fc 4->2 on a 4x4 image.
    return Genotype(InputSpec(1, 4, 4, 2), StemSpec(4), (StageSpec(1, 4, body="single", layer=layer),))


def test_shipped_profiles_and_the_default():
    assert {"horowitz45", "int8_accelerator"} <= set(profile_names())
    default = load_profile(None)
    assert default.name == "horowitz45" and count_cost(_tiny()).hardware.name == "horowitz45"
    # The 45 nm table (Horowitz, ISSCC 2014), pJ.
    expected = {("mul", "fp32"): 3.7, ("add", "fp32"): 0.9, ("mul", "fp16"): 1.1, ("add", "fp16"): 0.4,
                ("mul", "int32"): 3.1, ("add", "int32"): 0.1, ("mul", "int8"): 0.2, ("add", "int8"): 0.03,
                ("add", "int16"): 0.05}
    assert {key: default.ops[key[0]][key[1]] for key in expected} == expected
    assert (default.sram_read_pj, default.dram_read_pj, default.word_bits) == (100.0, 1300.0, 64)
    accelerator = load_profile("int8_accelerator")
    assert accelerator.float_precision == "int8" and accelerator.activation_bits == 8
    assert load_profile(PROFILE_DIR / "int8_accelerator.toml") == accelerator


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d.pop("word_bits"), "missing key 'word_bits'"),
    (lambda d: d["memory"].pop("dram_read_pj"), "missing key memory.dram_read_pj"),
    (lambda d: d["ops"].pop("xnor"), "missing key ops.xnor"),
    (lambda d: d["ops"]["mul"].update(fp32=-3.7), "ops.mul.fp32 must be a non-negative number (pJ), got -3.7"),
    (lambda d: d["memory"].update(sram_read_pj="cheap"), "memory.sram_read_pj must be a non-negative number"),
    (lambda d: d["ops"].update(mult={"fp32": 1.0}), "unknown op kind 'mult' in ops; allowed: mul, add, xnor, shift"),
    (lambda d: d["ops"]["add"].update(int12=0.1), "unknown precision 'int12' in ops.add"),
    (lambda d: d.update(colour="blue"), "unknown key 'colour'"),
    (lambda d: d.update(float_precision="fp64"), "float_precision must be one of"),
    (lambda d: d["ops"]["mul"].pop("fp32"), "ops.mul has no fp32 entry"),
    (lambda d: d.update(word_bits=0), "word_bits must be an integer in [1, 4096], got 0"),
    (lambda d: d["ops"]["xnor"].pop("int1") and d["ops"]["xnor"].update(int8=0.1), "need ops.xnor.int1"),
])
def test_bad_profiles_are_one_sentence_naming_the_key(mutate, fragment):
    data = copy.deepcopy(_shipped_data())
    mutate(data)
    with pytest.raises(ConfigError) as error:
        parse_profile(data, where="mine.toml")
    message = str(error.value)
    assert fragment in message and message.startswith("hardware profile mine.toml: ")
    assert "\n" not in message


def test_profile_files_and_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown hardware profile 'tpu9'; use one of .*horowitz45"):
        load_profile("tpu9")
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile(str(tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_profile(str(broken))
    mine = tmp_path / "mine.toml"
    mine.write_text((PROFILE_DIR / "horowitz45.toml").read_text().replace('name = "horowitz45"', 'name = "mine"'))
    assert load_profile(str(mine)).name == "mine"


def test_compute_energy_is_counts_times_energy_per_op():
    free_memory = {"sram_read_pj": 0.0, "sram_write_pj": 0.0, "dram_read_pj": 0.0, "dram_write_pj": 0.0}
    cost = count_cost(_tiny(), _profile(memory=free_memory))
    total = cost.total
    assert total["energy_weights_pj"] == total["energy_activations_pj"] == 0.0
    # Every record of a float network is priced at fp32: mul 3.7, add 0.9 (shift/xnor: none).
    assert total["energy_pj"] == pytest.approx(3.7 * total["mul"] + 0.9 * total["add"], rel=1e-12)
    for record, energy in zip(cost.records, cost.energies):
        assert energy.compute == pytest.approx(3.7 * record.mul + 0.9 * record.add, rel=1e-12)


def test_memory_traffic_follows_the_documented_model():
    # 1 pJ per 64-bit word read, 3 per write: weights cost 1/64 pJ per bit, activations
    # (written once, read once) 4/64 pJ per bit at 32 bits per element.
    free_ops = {"mul": {"fp32": 0.0}, "add": {"fp32": 0.0, "int1": 0.0}, "shift": {"fp32": 0.0},
                "xnor": {"int1": 0.0}}
    on_chip = _profile(ops=free_ops, memory={"sram_read_pj": 1.0, "sram_write_pj": 3.0})
    cost = count_cost(_tiny(), on_chip)
    assert cost.memory.weights_on_chip and cost.memory.activations_on_chip
    assert cost.total["energy_weights_pj"] == pytest.approx(cost.total["storage_bits"] / 64)
    assert cost.total["energy_activations_pj"] == pytest.approx(cost.total["activations"] * 32 * 4 / 64)
    assert cost.total["energy_compute_pj"] == 0.0
    # An SRAM smaller than two of the largest activations (2 x 64 elements x 4 bytes) moves
    # everything to DRAM; the weights then no longer fit beside them either.
    small = _profile(ops=free_ops, memory={"sram_bytes": 511, "dram_read_pj": 10.0, "dram_write_pj": 30.0})
    spilled = count_cost(_tiny(), small)
    assert not spilled.memory.activations_on_chip and not spilled.memory.weights_on_chip
    assert spilled.total["energy_activations_pj"] == pytest.approx(cost.total["energy_activations_pj"] * 10)


def test_precision_follows_the_layer_bit_widths():
    quant = _tiny(LayerSpec("quant", {"w_bits": 4, "a_bits": 4}))
    record = count_cost(quant).by_name()["stages.0.blocks.0.body.layer1"]
    energy = dict(zip(count_cost(quant).by_name(), count_cost(quant).energies))[record.name]
    # 4-bit operands on horowitz45: int4 mul 0.05 and add 0.015 (per-input quantisation ops
    # are priced with the layer).
    assert energy.compute == pytest.approx(record.mul * 0.05 + record.add * 0.015)
    # Without an int4 multiplier the multiply runs on the next wider unit (int8, 0.2 pJ).
    no_int4 = copy.deepcopy(_shipped_data())
    del no_int4["ops"]["mul"]["int4"], no_int4["ops"]["mul"]["int2"]
    wider = count_cost(quant, parse_profile(no_int4, "no-int4"))
    energy = dict(zip(wider.by_name(), wider.energies))[record.name]
    assert energy.compute == pytest.approx(record.mul * 0.2 + record.add * 0.015)

    binary = count_cost(_tiny(LayerSpec("binary", {"scale": "channel"})))
    record = binary.by_name()["stages.0.blocks.0.body.layer1"]
    energy = dict(zip(binary.by_name(), binary.energies))[record.name]
    # XNORs and popcount bits at int1; the scale multiplications stay fp32.
    assert energy.compute == pytest.approx(record.xnor * 0.001875 + record.add * 0.00375 + record.mul * 3.7)


def test_an_int8_accelerator_runs_float_layers_at_int8():
    float_net = count_cost(_tiny(), "int8_accelerator")
    total = float_net.total
    assert total["energy_compute_pj"] == pytest.approx(0.2 * total["mul"] + 0.03 * total["add"])
    # Float weights are stored at 8 bits, activations at 8 bits: a quarter of fp32 traffic.
    ref = count_cost(_tiny(), _profile(float_precision="int8", activation_bits=8,
                                       ops={"mul": {"int8": 0.2}, "add": {"int8": 0.03, "int1": 0.00375},
                                            "shift": {"int8": 0.03}}))
    assert ref.total["energy_compute_pj"] == pytest.approx(total["energy_compute_pj"])
    assert float_net.memory.weight_bits == pytest.approx(total["storage_bits"] / 4)


def test_a_width_the_profile_cannot_run_is_one_sentence():
    narrow = copy.deepcopy(_shipped_data())
    narrow["ops"]["mul"] = {"fp32": 3.7, "int4": 0.05}  # no integer multiplier of 8 bits or more
    profile = parse_profile(narrow, "narrow")
    with pytest.raises(ConfigError, match=r"has no ops.mul energy for int8 or a wider .* add ops.mul.int8"):
        count_cost(_tiny(LayerSpec("quant", {"w_bits": 8, "a_bits": 8})), profile).total


def test_adder_network_saves_the_multiplier_energy():
    from optinas.search_space.presets import preset

    cnn = count_cost(preset("resnet20")).paper
    adder = count_cost(preset("resnet20-adder")).paper
    # AdderNet's point in energy: per MAC, mul + add (3.7 + 0.9 pJ) becomes two adds (2 x 0.9).
    assert adder["energy_compute_pj"] / cnn["energy_compute_pj"] == pytest.approx(1.8 / 4.6, rel=1e-12)
    assert math.isclose(adder["energy_weights_pj"], cnn["energy_weights_pj"])
