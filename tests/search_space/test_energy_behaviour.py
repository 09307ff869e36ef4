"""The energy model and hardware profiles, by behaviour: every figure here is worked out by
hand from the model's definition (``optinas.search_space.cost.energy``'s docstring) and the
profile's numbers, written out in the test, not recomputed with the code under test.

A toy profile with prices that are powers of two keeps the hand arithmetic exact; the
shipped profiles are checked on a network small enough to count on paper.
"""

import copy
import math
from types import MappingProxyType

import pytest

from optinas.search_space import ConfigError, Genotype, InputSpec, LayerSpec, StageSpec, StemSpec, count_cost
from optinas.search_space.cost import Energy, HardwareProfile, LayerCost, load_profile, profile_names
from optinas.search_space.cost.energy import layer_precision, memory_plan, network_energy, op_prices
from optinas.search_space.cost.profiles import PROFILE_DIR, parse_profile

TOY = {
    "name": "toy", "description": "a toy chip", "float_precision": "fp32", "activation_bits": 32, "word_bits": 16,
    "ops": {"mul": {"fp32": 5.0, "int8": 2.0, "int4": 1.0}, "add": {"fp32": 0.5, "int8": 0.25, "int4": 0.125,
                                                                       "int1": 0.0625},
            "xnor": {"int1": 0.03125}, "shift": {"fp32": 0.75, "int8": 0.375}},
    "memory": {"sram_bytes": 1000, "sram_read_pj": 1.0, "sram_write_pj": 3.0, "dram_read_pj": 10.0,
               "dram_write_pj": 30.0},
}


def _toy(**changes):
    data = copy.deepcopy(TOY)
    for key, value in changes.items():
        if key == "memory":
            data["memory"].update(value)
        else:
            data[key] = value
    return parse_profile(data, where="toy.toml")


# A float layer, a 4-bit layer and a binary layer (the widths choose the precision).
FLOAT = LayerCost("a", "conv", (10,), mul=2, add=3, shift=4, storage_bits=160)
QUANT4 = LayerCost("b", "quant", (5,), mul=2, add=8, shift=1, storage_bits=40, weight_bits=4, activation_bits=4)
BINARY = LayerCost("c", "binary", (20,), mul=1, add=16, xnor=32, shift=2, storage_bits=64, weight_bits=1,
                   activation_bits=1)
SIZES = (10, 5, 20)


def test_each_record_is_priced_at_its_precision_plus_its_memory_traffic():
    energies, plan = network_energy((FLOAT, QUANT4, BINARY), _toy(), SIZES)
    # SRAM: weights 1 pJ per 16-bit word read (1/16 pJ per bit); activations written and
    # read, (1 + 3) / 16 pJ per bit, 32 bits per element.
    assert energies == (
        # fp32: 2 x 5 + 3 x 0.5 + 4 x 0.75; 160 bits; 10 elements.
        Energy(14.5, 160 / 16, 10 * 32 * 4 / 16),
        # int4: 2 x 1 + 8 x 0.125; no int4 shifter, so the int8 one: 1 x 0.375.
        Energy(3.375, 40 / 16, 5 * 32 * 4 / 16),
        # binary: XNORs and popcount adds at int1, the scale multiply and shift at fp32.
        Energy(1 * 5.0 + 16 * 0.0625 + 32 * 0.03125 + 2 * 0.75, 64 / 16, 20 * 32 * 4 / 16),
    )
    assert [energy.total for energy in energies] == [104.5, 45.875, 172.5]
    assert plan.weights_on_chip and plan.activations_on_chip
    assert (plan.weight_pj_per_bit, plan.activation_pj_per_bit) == (1 / 16, 4 / 16)
    assert plan.weight_bits == 160 + 40 + 64 and plan.peak_activation_bytes == 20 * 4


def test_an_integer_chip_runs_float_layers_at_its_float_precision_and_stores_them_narrower():
    chip = _toy(float_precision="int8", activation_bits=8)
    energies, plan = network_energy((FLOAT, QUANT4, BINARY), chip, SIZES)
    assert energies == (
        # The float layer runs at int8 (2, 0.25, 0.375 pJ) and its 160 float bits are stored in 40.
        Energy(2 * 2.0 + 3 * 0.25 + 4 * 0.375, 40 / 16, 10 * 8 * 4 / 16),
        # Quantised and binary weights keep their widths; the binary scale runs at int8.
        Energy(3.375, 40 / 16, 5 * 8 * 4 / 16),
        Energy(1 * 2.0 + 16 * 0.0625 + 32 * 0.03125 + 2 * 0.375, 64 / 16, 20 * 8 * 4 / 16),
    )
    assert plan.weight_bits == 40 + 40 + 64 and plan.peak_activation_bytes == 20


@pytest.mark.parametrize("weight_bits, activation_bits, precision, prices", [
    (32, 32, "fp32", (5.0, 0.5, 0.03125, 0.75)),
    (4, 32, "fp32", (5.0, 0.5, 0.03125, 0.75)),   # float activations: the layer computes in float
    (8, 8, "int8", (2.0, 0.25, 0.03125, 0.375)),
    (4, 8, "int8", (2.0, 0.25, 0.03125, 0.375)),   # the wider operand decides
    (4, 4, "int4", (1.0, 0.125, 0.03125, 0.375)),  # no int4 shifter: the int8 one
    (3, 2, "int3", (1.0, 0.125, 0.03125, 0.375)),  # an odd width runs on the next integer unit
    (2, 2, "int2", (1.0, 0.125, 0.03125, 0.375)),
    (1, 1, "int1", (5.0, 0.0625, 0.03125, 0.75)),  # binary: scale mul and shift stay float
])
def test_precision_and_prices_by_bit_width(weight_bits, activation_bits, precision, prices):
    assert layer_precision(weight_bits, activation_bits, _toy()) == precision
    assert op_prices(weight_bits, activation_bits, _toy()) == prices


def test_prices_on_the_shipped_profiles():
    # Horowitz (ISSCC 2014), 45 nm: fp32 mul 3.7, add 0.9; int8 mul 0.2, add 0.03.
    horowitz = load_profile("horowitz45")
    assert op_prices(32, 32, horowitz) == (3.7, 0.9, 0.001875, 0.03)
    assert op_prices(8, 8, horowitz) == (0.2, 0.03, 0.001875, 0.03)
    assert op_prices(16, 16, horowitz) == (0.8, 0.05, 0.001875, 0.05)
    assert op_prices(1, 1, horowitz) == (3.7, 0.00375, 0.001875, 0.03)
    accelerator = load_profile("int8_accelerator")
    assert layer_precision(32, 32, accelerator) == "int8"
    assert op_prices(32, 32, accelerator) == (0.2, 0.03, 0.001875, 0.03)
    assert op_prices(1, 1, accelerator) == (0.2, 0.00375, 0.001875, 0.03)


def _one(size, storage_bits):
    return [LayerCost("x", "conv", (size,), mul=1, storage_bits=storage_bits)], [size]


@pytest.mark.parametrize("sram_bytes, storage_bits, weights_on_chip, activations_on_chip", [
    # 100 fp32 elements are 400 bytes; a layer's input and output at once, 800.
    (1000, 1600, True, True),     # 200 + 800 bytes fill the SRAM exactly
    (1000, 1608, False, True),    # one byte more: the weights stream from DRAM
    (800, 0, True, True),         # the activations alone fill it exactly
    (799, 6392, True, False),     # activations spill; 799 bytes of weights then fit on their own
    (799, 6400, False, False),
])
def test_sram_or_dram_at_the_boundaries(sram_bytes, storage_bits, weights_on_chip, activations_on_chip):
    records, sizes = _one(100, storage_bits)
    plan = memory_plan(records, _toy(memory={"sram_bytes": sram_bytes}), sizes)
    assert (plan.weights_on_chip, plan.activations_on_chip) == (weights_on_chip, activations_on_chip)
    # Reads at 1 (SRAM) or 10 (DRAM) pJ per 16-bit word; activations also write, at 3 or 30.
    assert plan.weight_pj_per_bit == (1 / 16 if weights_on_chip else 10 / 16)
    assert plan.activation_pj_per_bit == (4 / 16 if activations_on_chip else 40 / 16)
    energy = network_energy(records, _toy(memory={"sram_bytes": sram_bytes}), sizes)[0][0]
    assert energy.weights == storage_bits * plan.weight_pj_per_bit
    assert energy.activations == 100 * 32 * plan.activation_pj_per_bit


def test_no_records_cost_nothing():
    assert network_energy((), _toy(), ()) == ((), memory_plan((), _toy(), ()))
    plan = memory_plan((), _toy(), ())
    assert plan.peak_activation_bytes == 0 and plan.weight_bits == 0 and plan.activations_on_chip
    assert Energy(1.0, 2.0, 4.0).total == 7.0


def _tiny(layer=LayerSpec("conv")):
    # stem 1->4 (3x3), one single-layer gd block 4->4, pool, fc 4->2 on a 4x4 image.
    return Genotype(InputSpec(1, 4, 4, 2), StemSpec(4), (StageSpec(1, 4, body="single", layer=layer),))


def test_a_tiny_float_network_on_horowitz45_by_hand():
    # Records: stem conv (9 x 64 MACs), its BN (64), block conv (36 x 64 MACs), its BN (64),
    # average pool (4 muls, 4 x 15 adds), fc 4->2 with bias (8 MACs). 206 parameters at 32 bits.
    cost = count_cost(_tiny())
    total = cost.total
    assert (total["mul"], total["add"], total["params"], total["storage_bits"]) == (3020, 3076, 206, 6592)
    assert (total["activations"], total["peak_activation"]) == (64 * 4 + 4 + 2, 64)
    # fp32: 3.7 pJ per mul, 0.9 per add; everything in SRAM (100 pJ per 64-bit read or write).
    assert total["energy_compute_pj"] == pytest.approx(3.7 * 3020 + 0.9 * 3076, rel=1e-12)
    assert total["energy_weights_pj"] == pytest.approx(6592 * 100 / 64, rel=1e-12)
    assert total["energy_activations_pj"] == pytest.approx(262 * 32 * 200 / 64, rel=1e-12)
    assert cost.energy_pj == pytest.approx(13942.4 + 10300 + 26200, rel=1e-12)


def test_a_tiny_float_network_on_the_int8_accelerator_by_hand():
    cost = count_cost(_tiny(), "int8_accelerator")
    total = cost.total
    # int8 arithmetic (0.2, 0.03 pJ), weights stored in 8 bits (6592 / 4), activations in 8
    # bits; 128 KiB SRAM at 38 pJ per 64-bit access.
    assert total["energy_compute_pj"] == pytest.approx(0.2 * 3020 + 0.03 * 3076, rel=1e-12)
    assert total["energy_weights_pj"] == pytest.approx(1648 * 38 / 64, rel=1e-12)
    assert total["energy_activations_pj"] == pytest.approx(262 * 8 * 76 / 64, rel=1e-12)
    assert cost.memory.weight_bits == 1648 and cost.memory.peak_activation_bytes == 64
    assert cost.energy_pj == pytest.approx(696.28 + 978.5 + 2489, rel=1e-12)


# -- profiles ------------------------------------------------------------------------------


def test_a_profile_holds_what_its_file_says():
    profile = _toy()
    assert isinstance(profile, HardwareProfile)
    assert (profile.name, profile.description, profile.sources, profile.origin) == ("toy", "a toy chip", (), "toy.toml")
    assert (profile.float_precision, profile.activation_bits, profile.word_bits) == ("fp32", 32, 16)
    assert (profile.sram_bytes, profile.sram_read_pj, profile.sram_write_pj, profile.dram_read_pj,
            profile.dram_write_pj) == (1000, 1.0, 3.0, 10.0, 30.0)
    assert {kind: dict(table) for kind, table in profile.ops.items()} == TOY["ops"]
    assert isinstance(profile.ops, MappingProxyType) and isinstance(profile.ops["mul"], MappingProxyType)
    whole = _toy(ops={**TOY["ops"], "mul": {"fp32": 5, "int8": 0}})
    assert type(whole.ops["mul"]["fp32"]) is float and whole.ops["mul"]["int8"] == 0.0
    assert _toy(sources=["a", "b"]).sources == ("a", "b")


def test_integer_precisions_round_up_to_the_narrowest_wider_integer_unit():
    profile = _toy(ops={**TOY["ops"], "mul": {"fp32": 5.0, "fp16": 4.0, "int32": 3.0, "int8": 2.0}})
    assert profile.op_energy("mul", "int8") == 2.0
    assert profile.op_energy("mul", "int4") == 2.0   # int8, not int32
    assert profile.op_energy("mul", "int12") == 3.0  # int32: fp16 is not an integer unit
    assert profile.op_energy("mul", "fp32") == 5.0
    with pytest.raises(ConfigError) as error:
        profile.op_energy("mul", "int64")
    assert str(error.value) == ("hardware profile 'toy' has no ops.mul energy for int64 or a wider integer "
                                "(it has: fp32, fp16, int32, int8); add ops.mul.int64 to the profile")
    with pytest.raises(ConfigError, match=r"^hardware profile 'toy' has no ops.xnor energy for bf16 or a wider "
                                          r"integer \(it has: int1\); add ops.xnor.bf16 to the profile$"):
        profile.op_energy("xnor", "bf16")


def test_a_profile_built_in_code_with_no_entries_says_so():
    bare = HardwareProfile("bare", "", (), "fp32", 32, 64, MappingProxyType({"mul": {}}), 1, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match=r"^hardware profile 'bare' has no ops.mul energy for int8 or a wider "
                                          r"integer \(it has: none\); add ops.mul.int8 to the profile$"):
        bare.op_energy("mul", "int8")


def test_profiles_by_name_path_or_object(tmp_path):
    names = profile_names()
    assert names == sorted(names) and {"horowitz45", "int8_accelerator"} <= set(names)
    assert all((PROFILE_DIR / f"{name}.toml").is_file() for name in names)
    default = load_profile()
    assert default.name == "horowitz45" and load_profile(None) is default
    assert load_profile("horowitz45") is default  # read once, then shared
    assert default.origin == str(PROFILE_DIR / "horowitz45.toml")
    toy = _toy()
    assert load_profile(toy) is toy
    # A file of any name loads, given by a string or a Path.
    chip = tmp_path / "chip.cfg"
    chip.write_text((PROFILE_DIR / "horowitz45.toml").read_text().replace('name = "horowitz45"', 'name = "chip"'))
    assert load_profile(str(chip)).name == "chip" and load_profile(chip).origin == str(chip)


def test_unreadable_profiles_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_profile("tpu9")
    assert str(error.value) == ("unknown hardware profile 'tpu9'; use one of "
                                f"{', '.join(profile_names())} or the path of a .toml profile")
    with pytest.raises(ConfigError, match=r"^hardware profile file '.*missing\.toml' does not exist$"):
        load_profile(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"^hardware profile file '.*' is a folder, not a file$"):
        load_profile(str(tmp_path))
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"^cannot read hardware profile '.*latin\.toml': 'utf-8' codec"):
        load_profile(str(latin))
    bad = tmp_path / "bad.toml"
    bad.write_text((PROFILE_DIR / "horowitz45.toml").read_text().replace("word_bits = 64", "word_bits = 0"))
    with pytest.raises(ConfigError) as error:
        load_profile(str(bad))
    assert str(error.value) == f"hardware profile {bad}: word_bits must be an integer in [1, 4096], got 0"


def _refused(data):
    with pytest.raises(ConfigError) as error:
        parse_profile(data, where="p.toml")
    message = str(error.value)
    assert "\n" not in message
    return message


def _with(change):
    data = copy.deepcopy(TOY)
    change(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(name="  "), "name must be a non-empty string, got '  '"),
    (lambda d: d.update(description=3), "description must be a non-empty string, got 3"),
    (lambda d: d.update(sources="Horowitz"), "sources must be a list of strings, got 'Horowitz'"),
    (lambda d: d.update(sources=["a", 2]), "sources must be a list of strings, got ['a', 2]"),
    (lambda d: d.update(ops=[1]), "ops must be a table of op kinds, got [1]"),
    (lambda d: d["ops"].update(mul={}), "ops.mul must be a non-empty table of precision = pJ"),
    (lambda d: d["ops"].update(add=0.5), "ops.add must be a non-empty table of precision = pJ"),
    (lambda d: d["ops"]["add"].pop("fp32"), "float_precision is 'fp32' but ops.add has no fp32 entry; "
                                            "add ops.add.fp32"),
    (lambda d: d["ops"]["shift"].pop("fp32"), "float_precision is 'fp32' but ops.shift has no fp32 entry; "
                                              "add ops.shift.fp32"),
    (lambda d: d["ops"]["add"].pop("int1"), "binary layers need ops.xnor.int1 and ops.add.int1 "
                                            "(pJ per XNOR and per popcount bit)"),
    (lambda d: d["ops"]["mul"].update(int8=True), "ops.mul.int8 must be a non-negative number (pJ), got True"),
    (lambda d: d["ops"]["mul"].update(int12=1.0), "unknown precision 'int12' in ops.mul; allowed: fp32, fp16, bf16, "
                                                  "int32, int16, int8, int4, int2, int1"),
    (lambda d: d["ops"]["mul"].update(int8=math.inf), "ops.mul.int8 must be a non-negative number (pJ), got inf"),
    (lambda d: d["ops"]["mul"].update(int8=math.nan), "ops.mul.int8 must be a non-negative number (pJ), got nan"),
    (lambda d: d["ops"]["mul"].update(int8=-0.5), "ops.mul.int8 must be a non-negative number (pJ), got -0.5"),
    (lambda d: d.update(memory=5), "memory must be a table, got 5"),
    (lambda d: d["memory"].update(sram_kb=1), "unknown key memory.sram_kb; allowed: sram_bytes, sram_read_pj, "
                                              "sram_write_pj, dram_read_pj, dram_write_pj"),
    (lambda d: d["memory"].pop("sram_write_pj"), "missing key memory.sram_write_pj"),
    (lambda d: d["memory"].update(dram_write_pj=False), "memory.dram_write_pj must be a non-negative number (pJ), "
                                                        "got False"),
    (lambda d: d["memory"].update(sram_bytes=0), "memory.sram_bytes must be an integer in [1, 1125899906842624], "
                                                 "got 0"),
    (lambda d: d["memory"].update(sram_bytes=2**50 + 1), "memory.sram_bytes must be an integer in [1, "
                                                         "1125899906842624], got 1125899906842625"),
    (lambda d: d["memory"].update(sram_bytes=1000.0), "memory.sram_bytes must be an integer in [1, "
                                                      "1125899906842624], got 1000.0"),
    (lambda d: d.update(activation_bits=33), "activation_bits must be an integer in [1, 32], got 33"),
    (lambda d: d.update(activation_bits=True), "activation_bits must be an integer in [1, 32], got True"),
    (lambda d: d.update(word_bits=4097), "word_bits must be an integer in [1, 4096], got 4097"),
    (lambda d: d.pop("name"), "missing key 'name'"),
    (lambda d: d.pop("memory"), "missing key 'memory'"),
    (lambda d: d.update(Name="x"), "unknown key 'Name'; allowed: name, description, sources, float_precision, "
                                   "activation_bits, word_bits, ops, memory"),
    (lambda d: d.update(float_precision="int8") or d["ops"]["shift"].pop("int8"),
     "float_precision is 'int8' but ops.shift has no int8 entry; add ops.shift.int8"),
    (lambda d: d.update(float_precision="fp8"), "float_precision must be one of fp32, fp16, bf16, int32, int16, "
                                                "int8, int4, int2, int1; got 'fp8'"),
])
def test_bad_profiles_say_what_and_where(change, message):
    assert _refused(_with(change)) == f"hardware profile p.toml: {message}"


def test_a_profile_from_plain_data_is_named_as_such():
    data = _with(lambda d: d.update(word_bits=0))
    with pytest.raises(ConfigError, match=r"^hardware profile <profile>: word_bits must be an integer"):
        parse_profile(data)
    assert parse_profile(copy.deepcopy(TOY)).origin == "<profile>"


@pytest.mark.parametrize("change", [
    lambda d: d.update(activation_bits=1), lambda d: d.update(activation_bits=32),
    lambda d: d.update(word_bits=1), lambda d: d.update(word_bits=4096),
    lambda d: d["memory"].update(sram_bytes=1), lambda d: d["memory"].update(sram_bytes=2**50),
    lambda d: d["memory"].update(dram_read_pj=0), lambda d: d.pop("sources", None),
])
def test_limits_of_the_ranges_are_allowed(change):
    parse_profile(_with(change), where="p.toml")
