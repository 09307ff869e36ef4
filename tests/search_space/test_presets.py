"""Named genotypes of the source papers: shapes, costs, the CLI, and seeding a search with them."""

import importlib.util
import json

import optuna
import pytest
import torch

from optinas.search_space import Genotype, GenotypeError, InputSpec, build_model, count_cost, load_genotype
from optinas.search_space.presets import PRESET_SUMMARIES, PRESETS, preset
from optinas.search_space.registry import layer_kinds
from optinas.strategies.cli import main

REQUIRED = {"resnet20", "resnet32", "resnet56", "vgg-small", "hb-net20", "agd-net", "dmrnet20", "resnet18",
            "resnet50"} | {f"resnet{d}{v}" for d in (20, 32, 56) for v in ("-adder", "-binary", "-quant4")}
VARIANT_KINDS = {"-adder": "adder", "-binary": "binary", "-quant4": "quant"}


def _available(name):
    suffix = next((s for s in VARIANT_KINDS if name.endswith(s)), None)
    return suffix is None or VARIANT_KINDS[suffix] in layer_kinds()


def test_every_preset_is_named_and_described():
    assert set(PRESETS) == REQUIRED
    assert set(PRESET_SUMMARIES) == set(PRESETS)
    with pytest.raises(GenotypeError, match="unknown preset 'resnet21'; choose one of: resnet20"):
        preset("resnet21")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_presets_build_their_paper_input(name):
    if not _available(name):
        pytest.skip(f"layer kind of {name} is not registered")
    genotype = preset(name)
    imagenet = name in ("resnet18", "resnet50")
    assert genotype.input == (InputSpec(3, 224, 224, 1000) if imagenet else InputSpec(3, 32, 32, 10))
    assert Genotype.from_json(genotype.to_json()) == genotype
    # First and last layers stay float in every variant (AdderNet, section 4.2).
    assert genotype.stem.layer.kind == "conv" and genotype.head.layer.kind == "conv"
    for suffix, kind in VARIANT_KINDS.items():
        if name.endswith(suffix):
            assert {stage.layer.kind for stage in genotype.stages} == {kind}
    assert count_cost(genotype).params > 0


def test_addernet_counts():
    # AdderNet omits the first and last layers. ResNet-20 (option A): 40.11M multiplications
    # (Table 2 prints 41.17M); VGG-small 0.60G (0.65G); ResNet-18 1.70G (1.8G); ResNet-50 3.97G (3.9G).
    paper = {name: count_cost(preset(name)).paper for name in ("resnet20", "resnet32", "resnet18", "resnet50")}
    assert paper["resnet20"]["mul"] == 40_108_032 and paper["resnet20"]["add"] == 40_108_032
    assert paper["resnet32"]["mul"] == 68_419_584
    assert paper["resnet18"]["mul"] == 1_695_547_392
    assert paper["resnet50"]["mul"] == 3_969_122_304
    if "adder" in layer_kinds():
        adder = count_cost(preset("resnet20-adder")).paper
        assert adder["mul"] == 0 and adder["add"] == 2 * paper["resnet20"]["mul"]  # Table 2: 0 and 82.34M
    if "binary" in layer_kinds():
        assert count_cost(preset("resnet20-binary")).paper["xnor"] == paper["resnet20"]["mul"]


def test_presets_adapt_to_a_task():
    digits = InputSpec(1, 8, 8, 10)
    for name in PRESETS:
        if _available(name):
            genotype = preset(name, digits)
            assert genotype.input == digits and genotype.stages == preset(name).stages
            assert count_cost(genotype).input_shape == (1, 8, 8)
    for name in ("resnet20", "agd-net", "dmrnet20"):  # the small ones; tests elsewhere build the rest
        assert build_model(preset(name, digits))(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(GenotypeError, match="preset 'vgg-small' does not fit input"):
        preset("vgg-small", InputSpec(1, 2, 2, 10))


def test_agd_net_shape():
    genotype = preset("agd-net")
    assert [stage.depth for stage in genotype.stages] == [12, 12, 12]  # L = 40: 36 layers + stem + 2 + fc
    assert all(stage.block.pattern == "agd_dense" and stage.body == "single" for stage in genotype.stages)
    alpha, beta = genotype.stages[0].block.coefficients
    assert (alpha.mode, alpha.init, beta.mode) == ("learnable", "paper", "paper")


def test_load_genotype_and_the_cli_take_preset_names(tmp_path, capsys, monkeypatch):
    assert load_genotype("resnet20") == preset("resnet20")
    own = tmp_path / "resnet20"
    own.write_text(preset("hb-net20").to_json())
    assert load_genotype(own) == preset("hb-net20")  # an existing file wins over the preset name
    with pytest.raises(GenotypeError, match="does not exist and is not a preset name"):
        load_genotype(tmp_path / "nothing.json")

    assert main(["cost", "resnet20", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)
    assert cost["total"]["params"] == 269_722
    monkeypatch.chdir(tmp_path)
    assert main(["export", "dmrnet20", "-o", "m.py"]) == 0
    capsys.readouterr()
    spec = importlib.util.spec_from_file_location("dmrnet_export", tmp_path / "m.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build_model()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_enqueued_presets_are_the_first_trials():
    from optinas.strategies.study import enqueue_presets
    from optinas.strategies.trial import candidate

    class Context:  # what ``candidate`` reads of a TrialContext
        space = type("Space", (), {"input": InputSpec(1, 8, 8, 10), "sample": lambda self, trial: None})()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert enqueue_presets(study, ["resnet20", "hb-net20"]) == 2
    assert enqueue_presets(study, ["resnet20", "hb-net20"]) == 0  # a resumed study: not again
    first, second = study.ask(), study.ask()
    assert candidate(first, Context) == preset("resnet20", InputSpec(1, 8, 8, 10))
    assert candidate(second, Context) == preset("hb-net20", InputSpec(1, 8, 8, 10))


def test_search_starts_from_presets(tmp_path):
    from optinas.strategies import Budget, SearchConfig, run_search

    # A parameter budget no preset meets: both are recorded with their cost, nothing trains.
    config = SearchConfig(study="p", trials=2, epochs=1, device="cpu", runs_dir=tmp_path, sampler="random",
                          budget=Budget(max_params=1000))
    run_search(config, show_progress=False, presets=("resnet20", "dmrnet20"))
    rows = [json.loads(line) for line in (config.run_dir / "trials.jsonl").read_text().splitlines()]
    digits = InputSpec(1, 8, 8, 10)
    assert [Genotype.from_dict(row["genotype"]) for row in rows] == [preset("resnet20", digits),
                                                                       preset("dmrnet20", digits)]
    assert [row["status"] for row in rows] == ["infeasible", "infeasible"]
    # Resuming with more trials does not enqueue them again: the third trial is sampled.
    run_search(SearchConfig(**{**config.__dict__, "trials": 3}), show_progress=False, presets=("resnet20",))
    rows = [json.loads(line) for line in (config.run_dir / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and Genotype.from_dict(rows[2]["genotype"]) != preset("resnet20", digits)


def test_unknown_preset_in_a_search_is_one_line(tmp_path, capsys):
    assert main(["search", "--presets", "resnet20,resnet7", "--runs-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'resnet7'" in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())
