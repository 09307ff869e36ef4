"""Packaged spaces from the command line: `optinas space --space NAME|FILE` and the search's choice."""

import json

import numpy as np
import pytest
from PIL import Image

from optinas.strategies.cli import main
from optinas.strategies.config import SearchConfig
from optinas.strategies.study import prepare


def _genotypes(capsys, *args):
    assert main(["space", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _kinds(genotypes):
    return {(stage.get("layer") or {}).get("kind", "conv") for genotype in genotypes for stage in genotype["stages"]}


def test_cifar_space_samples_cifar_inputs(capsys):
    (genotype,) = _genotypes(capsys, "--space", "cifar", "--sample", "1")
    assert genotype["input"] == {"channels": 3, "height": 32, "width": 32, "classes": 10}


@pytest.mark.parametrize("space", [None, "cifar", "imagenet"])
def test_each_packaged_space_samples_at_least_three_layer_kinds_in_40_draws(capsys, space):
    genotypes = _genotypes(capsys, *(["--space", space] if space else []), "--sample", "40", "--seed", "0")
    assert len(genotypes) == 40
    assert len(_kinds(genotypes)) >= 3


def test_the_old_config_flag_still_names_a_space_file(tmp_path, capsys):
    space = tmp_path / "mine.toml"
    space.write_text('[stages]\nlayers = ["binary"]\nwidths = [8]\n')
    assert _kinds(_genotypes(capsys, "--config", str(space), "--sample", "5")) == {"binary"}
    assert main(["space", "--space", str(space)]) == 0
    assert str(space) in capsys.readouterr().out


def test_an_unknown_space_is_one_sentence(capsys):
    assert main(["space", "--space", "cifra"]) == 2
    error = capsys.readouterr().err.strip()
    assert "cifra" in error and "digits, cifar, imagenet" in error and len(error.splitlines()) == 1


def _rgb_folder(root, size):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.png")
    return root


@pytest.mark.parametrize("size, space", [(32, "cifar"), (8, "digits")])
def test_a_search_without_space_takes_the_one_sized_for_its_task(tmp_path, size, space):
    folder = _rgb_folder(tmp_path / "images", size)
    context = prepare(SearchConfig(task=str(folder), runs_dir=tmp_path / "runs", device="cpu"))
    assert context.space_label.startswith(f"{space} (the packaged space for the task's 3x{size}x{size} images")
    assert context.space.input.channels == 3 and context.space.input.classes == 2
    assert not (tmp_path / "runs").exists()


def test_a_named_space_is_used_as_given(tmp_path):
    context = prepare(SearchConfig(space="cifar", runs_dir=tmp_path / "runs", device="cpu"))  # digits task
    assert context.space_label == "cifar"
    assert context.space.input.height == 8  # the task's input, the space's choices
