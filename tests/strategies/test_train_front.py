"""``optinas train runs/STUDY --front``: every front model retrained, proxy vs final table."""

from __future__ import annotations

import json

import pytest
from scipy.stats import spearmanr

from optinas.strategies.cli import main
from optinas.strategies.training.front import rank_correlation

from .test_train import _FLAGS, tiny_genotype


def _study(tmp_path, proxies: dict[int, float]):
    """A finished study's files: config.toml, trials.jsonl and best/N/genotype.json."""
    study = tmp_path / "runs" / "demo"
    study.mkdir(parents=True)
    (study / "config.toml").write_text('study = "demo"\ntask = "digits"\nseed = 0\n'
                                       'objectives = ["mults", "accuracy"]\n')
    rows = []
    for index, (number, proxy) in enumerate(proxies.items()):
        folder = study / "best" / str(number)
        folder.mkdir(parents=True)
        genotype = tiny_genotype(folder / "genotype.json", factor=0.125 * (index + 1))
        rows.append({"number": number, "status": "trained", "values": [1000.0 * (index + 1), proxy],
                     "genotype": json.loads(genotype.read_text())})
    rows.append({"number": 99, "status": "failed", "values": None, "genotype": None})
    (study / "trials.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return study


def test_front_retrains_each_model_and_tables_proxy_against_final_accuracy(tmp_path, capsys):
    study = _study(tmp_path, {3: 0.61, 7: 0.74, 12: 0.55})
    assert main(["train", str(study), "--front", "--epochs", "1", *_FLAGS]) == 0
    table = json.loads((study / "final" / "front.json").read_text())
    assert [row["model"] for row in table["models"]] == ["demo/best/3", "demo/best/7", "demo/best/12"]
    # The proxy accuracy is the objective named accuracy (second here), from trials.jsonl.
    assert [row["proxy_accuracy"] for row in table["models"]] == [0.61, 0.74, 0.55]
    for number, row in zip((3, 7, 12), table["models"]):
        metrics = json.loads((study / "final" / str(number) / "metrics.json").read_text())
        assert row["final_test_accuracy"] == metrics["test_accuracy"]
        assert (study / "final" / str(number) / "model.py").is_file()
    expected = spearmanr([0.61, 0.74, 0.55], [row["final_test_accuracy"] for row in table["models"]]).statistic
    assert table["spearman"] == pytest.approx(expected) and table["count"] == 3
    markdown = (study / "final" / "front.md").read_text()
    assert "| demo/best/7 | 0.7400 |" in markdown and "Spearman rank correlation" in markdown
    assert "Spearman rho" in capsys.readouterr().out


def test_one_best_model_goes_to_final_n_with_its_proxy_accuracy(tmp_path):
    study = _study(tmp_path, {4: 0.5})
    assert main(["train", str(study / "best" / "4"), "--epochs", "1", *_FLAGS]) == 0
    assert json.loads((study / "final" / "4" / "metrics.json").read_text())["test_accuracy"] > 0


def test_a_study_folder_without_front_or_models_is_one_sentence(tmp_path, capsys):
    study = _study(tmp_path, {4: 0.5})
    assert main(["train", str(study), "--epochs", "1"]) == 2
    assert "add --front" in capsys.readouterr().err
    (study / "best" / "4" / "genotype.json").unlink()
    (study / "best" / "4").rmdir()
    assert main(["train", str(study), "--front", "--epochs", "1"]) == 2
    assert "has no models in best/" in capsys.readouterr().err
    assert not (study / "final").exists()


def test_rank_correlation_matches_a_hand_count_and_is_none_when_undefined():
    # Ranks (1, 2, 3) vs (1, 3, 2): d^2 = 0 + 1 + 1, rho = 1 - 6 * 2 / (3 * 8) = 0.5.
    assert rank_correlation([0.1, 0.2, 0.3], [0.5, 0.9, 0.7]) == pytest.approx(0.5)
    assert rank_correlation([0.1], [0.2]) is None
    assert rank_correlation([0.1, 0.2], [0.5, 0.5]) is None
