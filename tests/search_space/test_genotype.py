import json

import pytest

from optinas.search_space import BlockSpec, Coefficient, Genotype, GenotypeError, InputSpec, LayerSpec, StageSpec, StemSpec


def _plain_dict():
    return {"input": {"channels": 1, "height": 8, "width": 8, "classes": 10},
            "stem": {"width": 8}, "stages": [{"depth": 2, "width": 16, "stride": 2,
                                               "block": {"pattern": "hb"}}]}


def test_round_trip_and_stable_hash(genotypes):
    for genotype in genotypes(30, seed=1):
        again = Genotype.from_json(genotype.to_json())
        assert again == genotype
        assert again.hash == genotype.hash
        assert Genotype.from_json(genotype.to_json(indent=2)).hash == genotype.hash


def test_defaults_are_filled_so_equal_architectures_share_a_hash():
    short = Genotype.from_dict(_plain_dict())
    explicit = _plain_dict()
    explicit["stages"][0]["block"]["coefficients"] = [{"name": "b2", "value": 0}, {"name": "b1", "value": 1}]
    explicit["stages"][0]["layer"] = {"kind": "conv", "options": {}}
    assert Genotype.from_dict(explicit).hash == short.hash
    assert short.stages[0].block.coefficient("b1").value == 1.0


def test_hash_is_a_pure_function_of_the_content():
    # Pinned: a change here means stored study hashes and file names no longer match.
    genotype = Genotype(InputSpec(1, 8, 8, 10), StemSpec(8), (StageSpec(1, 8),))
    assert genotype.hash == Genotype.from_json(json.dumps(genotype.to_dict())).hash
    assert len(genotype.hash) == 16 and int(genotype.hash, 16) >= 0


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["stages"][0].update(width=0), "stage 1: width must be an integer in [1, 4096], got 0"),
    (lambda d: d["stages"][0].update(widht=8), "stage 1: unknown field 'widht'"),
    (lambda d: d["stages"][0].update(depth=True), "stage 1: depth must be an integer"),
    (lambda d: d["stages"][0].update(kernel_size=4), "kernel_size must be odd"),
    (lambda d: d["stages"][0].update(stride=3), "stride must be an integer in [1, 2]"),
    (lambda d: d["stages"][0]["block"].update(pattern="lbfgs"), "unknown block pattern 'lbfgs'"),
    (lambda d: d["stages"][0]["block"].update(coefficients=[{"name": "b9", "value": 1}]), "unknown coefficient 'b9'"),
    (lambda d: d["stages"][0]["block"].update(coefficients=[{"name": "b1", "value": float("nan")}]), "finite number"),
    (lambda d: d["stages"][0].update(layer={"kind": "fft"}), "unknown layer kind 'fft'"),
    (lambda d: d["stages"][0].update(layer={"kind": "conv", "options": {"bits": 4}}), "unknown option 'bits'"),
    (lambda d: d["stages"][0].update(shortcut="pad", width=4), "shortcut 'pad' needs width >= the previous width"),
    (lambda d: d.pop("stem"), "missing required field 'stem'"),
    (lambda d: d.update(stages=[]), "stages must be a non-empty list"),
    (lambda d: d.update(schema_version=99), "schema_version 99 is not supported"),
    (lambda d: d["input"].update(classes="ten"), "input: classes must be an integer"),
])
def test_malformed_genotypes_get_one_clear_sentence(mutate, message):
    data = _plain_dict()
    mutate(data)
    with pytest.raises(GenotypeError) as raised:
        Genotype.from_dict(data)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_bad_json_is_a_genotype_error():
    with pytest.raises(GenotypeError, match="not valid JSON"):
        Genotype.from_json("{stages: ")


def test_genotype_is_frozen():
    genotype = Genotype.from_dict(_plain_dict())
    with pytest.raises(AttributeError):
        genotype.stem = StemSpec(4)  # type: ignore[misc]
    assert isinstance(genotype.stages, tuple)
    assert LayerSpec("conv") == LayerSpec("conv", ())
    assert BlockSpec("hb", (Coefficient("b1", 1),)) == BlockSpec("hb")
