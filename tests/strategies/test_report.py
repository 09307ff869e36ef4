"""optinas report: the page rebuilt from a study's storage, its sections, numbers and errors.

Studies are built without training: trials are sampled from the real search space and carry
the user attributes strategies/trial.py writes, with a synthetic accuracy.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil

import optuna
import pytest

from optinas.search_space import InputSpec, SearchSpace, count_cost
from optinas.search_space.presets import preset
from optinas.strategies.cli import main
from optinas.strategies.report.breakdown import PARTS, energy_breakdown
from optinas.strategies.storage import open_storage

DIGITS = InputSpec(1, 8, 8, 10)
MAX_MULTS = 1_000_000
TRACEBACK_REASON = "RuntimeError: boom (traceback in logs/trial-{}.txt)"


def write_config(path, data):
    """config.toml as SearchConfig.to_dict() gives it (a JSON array is a valid TOML array)."""
    path.write_text("".join(f"{json.dumps(key)} = {json.dumps(value)}\n" for key, value in data.items()))


def _add(study, objectives, genotype, status, accuracy, params=None, distributions=None, **extra):
    """Store a finished trial the way the driver leaves it (values in objective order)."""
    cost = count_cost(genotype, "horowitz45")
    values = {"accuracy": accuracy, "mults": float(cost.mults), "energy": cost.total["energy_pj"],
              "params": float(cost.params)}
    study.add_trial(optuna.trial.create_trial(
        params=params or {}, distributions=distributions or {}, values=[values[name] for name in objectives],
        user_attrs={"genotype": genotype.to_dict(), "hash": genotype.hash, "hardware": "horowitz45",
                    "cost": cost.total, "status": status, **extra}))


def make_study(run_dir, objectives=("accuracy", "mults"), sampled=8, seed=0, config_extra=None, storage=None):
    """A study folder as optinas search leaves it: config.toml and the storage, with sampled
    trained trials, a preset, two infeasible, two failed (one reason), one pruned, one interrupted
    and one running."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir / "config.toml", {
        "study": "demo", "task": "digits", "trials": 40, "seed": seed, "sampler": "random", "epochs": 1,
        "objectives": list(objectives), "budget.max_mults": MAX_MULTS, **(config_extra or {})})
    study = optuna.create_study(study_name="demo", storage=storage or open_storage(run_dir),
                                directions=["maximize" if name == "accuracy" else "minimize" for name in objectives])
    # Candidates come from the real space through a scratch study, so params and their
    # (conditional) distributions are what a search records.
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = SearchSpace.from_toml(DIGITS)
    feasible = infeasible = 0
    while feasible < sampled or infeasible < 2:
        trial = scratch.ask()
        genotype = space.sample(trial)
        mults = count_cost(genotype).mults
        sampled_as = {"params": trial.params, "distributions": trial.distributions}
        if mults > MAX_MULTS and infeasible < 2:
            infeasible += 1
            _add(study, objectives, genotype, "infeasible", 0.0, **sampled_as,
                 constraints={"max_mults": mults / MAX_MULTS - 1})
        elif mults <= MAX_MULTS and feasible < sampled:
            feasible += 1
            accuracy = 0.5 + 0.4 * math.log(mults) / math.log(MAX_MULTS) + 0.01 * (feasible % 3)
            _add(study, objectives, genotype, "trained", min(accuracy, 0.99), **sampled_as,
                 constraints={"max_mults": mults / MAX_MULTS - 1}, metrics={"test_accuracy": 0.9})
    _add(study, objectives, preset("resnet20", DIGITS), "trained", 0.995, preset="resnet20",
         metrics={"test_accuracy": 0.99})
    for number in range(2):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={
            "status": "failed", "failure": TRACEBACK_REASON.format(number)}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={
        "status": "pruned", "pruned_at_epoch": 1}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={
        "interrupted": True, "failure": "interrupted: the process running this trial stopped"}))
    study.ask()  # left RUNNING, as a search in progress leaves its current trial
    return study


@pytest.fixture(scope="module")
def study_page(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "demo"
    study = make_study(run_dir)
    journal = (run_dir / "study.journal").read_bytes()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "study.journal").read_bytes() == journal, "report must not write to the storage"
    return run_dir, study, (run_dir / "report.html").read_text()


def test_page_has_every_section_and_embeds_plotly_once(study_page):
    _, _, page = study_page
    for heading in ("Pareto front", "Hypervolume over trials", "Parameter importances",
                    "Energy breakdown of the front", "How the trials ended"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("plotly.js v") == 1  # the bundle's banner: embedded once, so the page works offline
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing fetched from the network


def test_preset_is_labelled_and_reference_point_stated(study_page):
    _, _, page = study_page
    assert '"name":"preset resnet20 (on the front)"' in page and '"text":["resnet20"]' in page
    assert ("Reference point: validation accuracy 0; multiplications per image 1,000,000 "
            "(the --max-mults budget)") in page


def test_counts_budgets_and_grouped_reasons(study_page):
    _, _, page = study_page
    assert ("14 finished trials: 9 trained, 0 reused, 2 infeasible, 1 pruned, 2 failed; "
            "1 interrupted (retried, not counted); 1 running now") in page
    assert "RuntimeError: boom: 2 trials (" in page  # two tracebacks, one reason
    assert "pruned after epoch 1: 1 trial (" in page
    assert "<td>--max-mults</td><td>2</td>" in page


def test_front_table_and_importances(study_page):
    run_dir, study, page = study_page
    assert "not exported yet" in page  # no best/ folder: the search has not ended
    assert "fANOVA over 8 trained trials" in page


def test_front_table_links_exported_models(study_page, tmp_path):
    from optinas.strategies.report.page import build_report

    run_dir = shutil.copytree(study_page[0], tmp_path / "demo")
    summary = build_report(run_dir)
    for number in summary.front:
        (run_dir / "best" / str(number)).mkdir(parents=True)
        (run_dir / "best" / str(number) / "model.py").write_text("# exported\n")
    page = build_report(run_dir).path.read_text()
    for number in summary.front:
        assert f'<a href="best/{number}/model.py">' in page


def test_front_breakdowns_sum_to_each_models_recorded_energy(study_page):
    from optinas.strategies.results.records import pareto_front, trial_rows

    _, study, _ = study_page
    front = pareto_front(trial_rows(study))
    assert len(front) >= 2
    for row in front:
        split = energy_breakdown(row["genotype"], row["hardware"])
        assert math.fsum(split.parts.values()) == pytest.approx(row["cost"]["energy_pj"], rel=1e-12)


def test_breakdown_parts_sum_to_the_recorded_energy(genotypes):
    for genotype in genotypes(12, seed=3):
        for hardware in ("horowitz45", "int8_accelerator"):
            split = energy_breakdown(genotype.to_dict(), hardware)
            energy = count_cost(genotype, hardware).total["energy_pj"]
            assert set(split.parts) == set(PARTS)
            assert math.fsum(split.parts.values()) == pytest.approx(energy, rel=1e-12)
            assert math.fsum(split.kinds.values()) == pytest.approx(energy, rel=1e-12)
            assert min(split.parts.values()) >= 0


def test_binary_layers_spend_on_xnor_and_float_layers_do_not():
    binary = energy_breakdown(preset("resnet20-binary", DIGITS))
    float_net = energy_breakdown(preset("resnet20", DIGITS))
    assert binary.parts["XNOR/popcount"] > 0 and float_net.parts["XNOR/popcount"] == 0
    assert binary.kinds["binary"] > 0 and "binary" not in float_net.kinds


def test_too_few_trials_give_a_sentence_not_a_figure(tmp_path):
    make_study(tmp_path / "few", sampled=2)
    assert main(["report", str(tmp_path / "few")]) == 0
    page = (tmp_path / "few" / "report.html").read_text()
    assert "Parameter importances need at least 5 trained, sampled trials; this study has 2 so far." in page


@pytest.mark.parametrize("varying", [False, True])
def test_single_valued_parameters_are_left_out_of_importances(tmp_path, varying):
    run_dir = tmp_path / "flat"
    run_dir.mkdir()
    write_config(run_dir / "config.toml", {"study": "demo", "objectives": ["accuracy", "mults"]})
    study = optuna.create_study(study_name="demo", storage=open_storage(run_dir), directions=["maximize", "minimize"])
    distributions = {"kernel": optuna.distributions.CategoricalDistribution([3, 5]),
                     "width": optuna.distributions.IntDistribution(4, 64)}
    for number in range(6):
        params = {"kernel": 3, "width": 8 * (number + 1) if varying else 16}
        _add(study, ("accuracy", "mults"), preset("resnet20", DIGITS), "trained", 0.5 + 0.05 * number,
             params=params, distributions=distributions)
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    if varying:
        assert '"y":["width"]' in page
        assert "fANOVA over 6 trained trials and 1 parameter; left out: 0 conditional" in page
    else:
        assert "No parameter varies across all 6 trained trials (0 conditional (not sampled in every trial), " \
               "2 with a single value or with ranges that vary)" in page


def test_three_objectives_use_a_scatter_matrix(tmp_path):
    make_study(tmp_path / "three", objectives=("accuracy", "energy", "params"), sampled=4)
    assert main(["report", str(tmp_path / "three")]) == 0
    page = (tmp_path / "three" / "report.html").read_text()
    assert '"type":"splom"' in page
    assert "energy per image (pJ)" in page and "(the largest value any trial measured so far)" in page


def test_accuracy_alone_is_drawn_against_multiplications(tmp_path):
    make_study(tmp_path / "one", objectives=("accuracy",), sampled=3)
    assert main(["report", str(tmp_path / "one")]) == 0
    page = (tmp_path / "one" / "report.html").read_text()
    assert "context: the only objective is accuracy" in page
    assert "Reference point: validation accuracy 0." in page


@pytest.mark.parametrize("where", ["config", "flag"])
def test_database_url_from_config_or_flag(tmp_path, where):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    run_dir = tmp_path / "db"
    make_study(run_dir, sampled=2, config_extra={"storage": url} if where == "config" else None, storage=url)
    assert not (run_dir / "study.journal").exists()
    assert main(["report", str(run_dir)] + (["--storage", url] if where == "flag" else [])) == 0
    assert "<h2>Pareto front</h2>" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize("layout, message", [
    ("missing", "is not a folder"),
    ("empty", "holds no optinas study (no config.toml)"),
    ("no-storage", "has a config.toml but no trials"),
    ("wrong-name", "study 'other' is not in"),
])
def test_bad_folders_are_one_sentence_and_write_nothing(tmp_path, capsys, layout, message):
    run_dir = tmp_path / "study"
    if layout != "missing":
        run_dir.mkdir()
    if layout in ("no-storage", "wrong-name"):
        write_config(run_dir / "config.toml", {"study": "other", "task": "digits"})
    if layout == "wrong-name":
        make_study(tmp_path / "real", sampled=1)
        (run_dir / "study.journal").write_bytes((tmp_path / "real" / "study.journal").read_bytes())
    before = sorted(path.name for path in run_dir.iterdir()) if run_dir.exists() else None
    assert main(["report", str(run_dir)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert (sorted(path.name for path in run_dir.iterdir()) if run_dir.exists() else None) == before


def test_report_of_a_real_tiny_search(tmp_path):
    from optinas.strategies import SearchConfig, run_search

    config = SearchConfig(study="tiny", trials=3, epochs=1, threads=1, device="cpu", runs_dir=tmp_path,
                          sampler="random", seed=1)
    summary = run_search(config, show_progress=False)
    (summary.run_dir / "report.html").unlink()
    assert main(["report", str(summary.run_dir)]) == 0
    page = (summary.run_dir / "report.html").read_text()
    assert "3 finished trials" in page
    for number in summary.front:
        assert f'<a href="best/{number}/model.py">' in page


def test_front_table_gives_each_models_train_command(study_page, tmp_path):
    import shlex

    from optinas.strategies.report.page import build_report

    run_dir = shutil.copytree(study_page[0], tmp_path / "a folder")  # a space: the command must quote it
    summary = build_report(run_dir)
    page = summary.path.read_text()
    assert summary.front
    for number in summary.front:
        command = f"optinas train {shlex.quote(str(run_dir / 'best' / str(number)))}"
        assert f"<code>{html.escape(command)}</code>" in page
        assert shlex.split(command)[2] == str(run_dir / "best" / str(number))
