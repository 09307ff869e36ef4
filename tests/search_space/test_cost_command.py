"""`optinas cost`: the per-layer table, --json, --hardware, --input, and one-line errors."""

import json

import pytest

from optinas.search_space import count_cost
from optinas.search_space.presets import preset
from optinas.strategies.cli import main


def _run(capsys, *args):
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_layers_total_and_paper_with_the_required_keys(capsys):
    code, out, _ = _run(capsys, "cost", "resnet20", "--json")
    data = json.loads(out)
    assert code == 0 and {"layers", "total", "paper"} <= set(data)
    for view in ("total", "paper"):
        assert {"mul", "add", "xnor", "bops", "params", "storage_bits", "energy_pj"} <= set(data[view])
    expected = count_cost(preset("resnet20"))
    assert data["total"] == json.loads(json.dumps(expected.total))
    assert [layer["name"] for layer in data["layers"]] == [record.name for record in expected.records]
    assert data["hardware"] == "horowitz45"
    assert sum(layer["energy_pj"] for layer in data["layers"]) == pytest.approx(data["total"]["energy_pj"])


def test_table_lists_every_layer_and_both_totals(capsys, tmp_path):
    genotype = preset("resnet20-binary")
    path = tmp_path / "g.json"
    path.write_text(genotype.to_json())
    code, out, _ = _run(capsys, "cost", str(path), "--hardware", "int8_accelerator")
    assert code == 0
    lines = out.splitlines()
    header = lines[0].split()
    assert header == ["layer", "type", "output", "mul", "add", "xnor", "BOPs", "params", "bits", "energy"]
    cost = count_cost(genotype, "int8_accelerator")
    names = [line.split()[0] for line in lines[2:2 + len(cost.records)]]
    assert names == [record.name for record in cost.records]
    assert any(line.startswith("total ") for line in lines)
    assert any(line.startswith("AdderNet view") for line in lines)
    assert "energy on int8_accelerator" in out and "binary*" in out


def test_input_overrides_the_genotype_size(capsys):
    code, out, _ = _run(capsys, "cost", "resnet18", "--input", "3x64x64", "--json")
    data = json.loads(out)
    assert code == 0 and data["input_shape"] == [3, 64, 64]
    at_224 = count_cost(preset("resnet18")).total["macs"]
    # Every layer's output shrinks 224/64 = 3.5x per side (the head's fc stays the same).
    fc = 512 * 1000
    assert data["total"]["macs"] - fc == pytest.approx((at_224 - fc) / 3.5 ** 2, rel=0.02)


@pytest.mark.parametrize("args, fragment", [
    (["--input", "3x32"], "--input must be CxHxW with positive integers, e.g. 3x32x32; got '3x32'"),
    (["--input", "0x32x32"], "--input must be CxHxW"),
    (["--hardware", "tpu9"], "unknown hardware profile 'tpu9'"),
    (["--hardware", "missing.toml"], "hardware profile file 'missing.toml' does not exist"),
])
def test_bad_flags_are_one_line_and_exit_2(capsys, args, fragment):
    code, out, err = _run(capsys, "cost", "resnet20", *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1 and not out


def test_a_bad_profile_file_is_one_line(capsys, tmp_path):
    from optinas.search_space.cost.profiles import PROFILE_DIR

    bad = tmp_path / "bad.toml"
    bad.write_text((PROFILE_DIR / "horowitz45.toml").read_text().replace("fp32 = 3.7", "fp32 = -3.7"))
    code, _, err = _run(capsys, "cost", "resnet20", "--hardware", str(bad))
    assert code == 2 and "ops.mul.fp32 must be a non-negative number (pJ), got -3.7" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_target_names_the_presets(capsys):
    code, _, err = _run(capsys, "cost", "resnet21")
    assert code == 2 and "unknown preset 'resnet21'" in err and "resnet20" in err


@pytest.mark.parametrize("args, fragment", [
    (["--max-energy", "5"], "--max-energy must be a number with a unit"),
    (["--max-storage", "lots"], "--max-storage must be a number with a unit"),
    (["--max-params", "-3"], "--max-params must be"),
    (["--max-latency-ms", "soon"], "--max-latency-ms must be a number of milliseconds"),
    (["--max-energy", "5uJ", "--hardware", "tpu9"], "unknown hardware profile 'tpu9'"),
])
def test_bad_budget_flags_are_one_line_and_write_nothing(capsys, tmp_path, args, fragment):
    runs = tmp_path / "runs"
    code, _, err = _run(capsys, "search", "--runs-dir", str(runs), *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not runs.exists()
