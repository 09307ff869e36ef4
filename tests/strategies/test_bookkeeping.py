"""Per-trial bookkeeping that scales: the incremental study index, appended trials.jsonl rows,
the public-API retry, Pareto filter, incremental hypervolume history, worker seeds."""

from __future__ import annotations

import itertools
import json
import random

import optuna
import pytest
from optuna.trial import TrialState

from optinas.search_space.errors import ConfigError
from optinas.search_space.packaged_spaces import SPACE_INPUTS
from optinas.search_space.space import SearchSpace
from optinas.strategies.backends.processes import worker_seed
from optinas.strategies.backends.ray.compat import check_ray_version
from optinas.strategies.objectives import dominates, pareto_indices, parse_objectives
from optinas.strategies.results.hypervolume import hypervolume, hypervolume_history
from optinas.strategies.results.records import append_trials, pareto_front, trial_rows
from optinas.strategies.samplers import make_sampler
from optinas.strategies.samplers.grouped_tpe import GroupedTPESampler, refine_groups
from optinas.strategies.status import INTERRUPTED, TrialStatus, counts_toward, trial_status
from optinas.strategies.storage import open_storage
from optinas.strategies.study import retry_trial
from optinas.strategies.study_index import StudyIndex

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _random_study(seed: int, trials: int, storage=None):
    """A study whose trials end every way a search's do, some left RUNNING, in random order."""
    rng = random.Random(seed)
    study = optuna.create_study(directions=["maximize", "minimize"], storage=storage)
    running = []
    for _ in range(trials):
        trial = study.ask()
        trial.set_user_attr("hash", f"g{rng.randrange(6)}")
        running.append(trial)
        if rng.random() < 0.6:  # finish a random running trial
            done = running.pop(rng.randrange(len(running)))
            kind = rng.choice(["trained", "infeasible", "failed", "surplus"])
            if kind == "surplus":
                done.set_user_attr("surplus", True)
                study.tell(done, state=TrialState.FAIL)
            elif kind == "failed":
                done.set_user_attr("status", "failed")
                study.tell(done, state=TrialState.FAIL)
            else:
                done.set_user_attr("status", kind)
                study.tell(done, [rng.random(), rng.random()])
    return study, running


def _slot_by_scan(study, number: int) -> int:
    return 1 + sum(1 for t in study.get_trials(deepcopy=False)
                   if t.number < number and (t.state.name == "RUNNING" or counts_toward(t)))


def _storage(kind: str, folder):
    """No storage (the index lists the study), or one the index reads trial by trial."""
    if kind == "journal":
        return open_storage(folder)  # the search's own: study.journal through optinas' JournalFile
    return None if kind == "listed" else optuna.storages.InMemoryStorage()


@pytest.mark.parametrize("kind", ["listed", "memory", "journal"])
@pytest.mark.parametrize("seed", range(3))
def test_study_index_agrees_with_a_full_scan_as_the_study_grows(seed, kind, tmp_path):
    storage = _storage(kind, tmp_path)
    study, _ = _random_study(seed, 0, storage=storage or optuna.storages.InMemoryStorage())
    rng, index = random.Random(seed), StudyIndex(study, storage)
    for step in range(6):  # the index is refreshed between batches, as a worker's is
        grown, _ = _random_study(seed * 100 + step, 15 + rng.randrange(10))
        for frozen in grown.get_trials():
            study.add_trial(frozen) if frozen.state.name != "RUNNING" else study.ask()
        trials = study.get_trials(deepcopy=False)
        counted = sum(map(counts_toward, trials))
        running = sum(t.state.name == "RUNNING" for t in trials)
        assert index.progress() == (counted, running)
        for number in rng.sample(range(len(trials)), 5):
            assert index.slot(number) == _slot_by_scan(study, number)
        for key in (f"g{i}" for i in range(6)):
            earliest = next((t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("hash") == key
                             and t.user_attrs.get("status") in ("trained", "reused")), None)
            found = index.earlier_result(key)
            assert (found is None) == (earliest is None)


@pytest.mark.parametrize("kind", ["listed", "memory", "journal"])
def test_study_index_sees_a_running_trial_finish(kind, tmp_path):
    storage = _storage(kind, tmp_path)
    study = optuna.create_study(directions=["maximize", "minimize"], storage=storage)
    index = StudyIndex(study, storage)
    trial = study.ask()
    trial.set_user_attr("hash", "h")
    assert index.progress() == (0, 1) and index.earlier_result("h") is None
    trial.set_user_attr("status", "trained")
    study.tell(trial, [0.9, 10.0])
    assert index.progress() == (1, 0) and index.earlier_result("h").number == trial.number
    assert index.earlier_result("h", own_number=trial.number) is None


def test_retry_fails_a_dead_processes_trial_through_the_public_api():
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    trial.suggest_int("depth", 1, 9)
    frozen = study.get_trials()[0]
    retry_trial(study, frozen)
    failed, queued = study.get_trials()[0], study.get_trials(states=(TrialState.WAITING,))
    assert failed.state == TrialState.FAIL and trial_status(failed) == TrialStatus.INTERRUPTED
    assert trial_rows(study)[0]["failure"] == INTERRUPTED
    assert len(queued) == 1 and queued[0].user_attrs["retry_of"] == 0
    again = study.ask()
    assert again.number == queued[0].number and again.suggest_int("depth", 1, 9) == frozen.params["depth"]


def test_appended_rows_equal_the_rewritten_file(tmp_path):
    study, _ = _random_study(7, 40)
    finished = [t for t in study.get_trials() if t.state.name != "RUNNING"]
    for trial in finished:
        append_trials(tmp_path, [trial])
    lines = (tmp_path / "trials.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == json.loads(json.dumps(trial_rows(study)))


def _front_by_pairs(points, objectives):
    return [i for i, p in enumerate(points) if not any(dominates(q, p, objectives) for q in points)]


@pytest.mark.parametrize("names", ["accuracy,mults", "mults,accuracy", "accuracy,mults,energy,params"])
def test_pareto_indices_equal_pairwise_dominance(names):
    objectives = parse_objectives(names)
    rng = random.Random(3)
    points = [[round(rng.random(), 1) for _ in objectives] for _ in range(60)]  # rounded: ties
    assert pareto_indices(points, objectives) == _front_by_pairs(points, objectives)


def test_pareto_front_reads_accuracy_by_name():
    objectives = parse_objectives("mults,accuracy")
    rows = [{"number": n, "status": "trained", "hash": str(n), "values": values}
            for n, values in enumerate([[100.0, 0.9], [50.0, 0.8], [200.0, 0.85], [50.0, 0.7]])]
    assert [row["number"] for row in pareto_front(rows, objectives)] == [1, 0]


def test_hypervolume_history_is_the_from_scratch_hypervolume_at_every_trial():
    objectives = parse_objectives("accuracy,mults,energy")
    rng = random.Random(5)
    rows = [{"number": n, "status": rng.choice(["trained", "reused", "infeasible"]),
             "values": [rng.random(), rng.random() * 2, rng.random()]} for n in range(80)]
    reference = {"accuracy": 0.0, "mults": 1.5, "energy": 1.0}
    history = hypervolume_history(rows, objectives, reference)
    for n, volume in history:
        points = [(1 - r["values"][0], r["values"][1] / 1.5, r["values"][2]) for r in rows[:n + 1]
                  if r["status"] in ("trained", "reused")]
        assert volume == pytest.approx(hypervolume(points, (1.0, 1.0, 1.0)), abs=1e-12)
    assert [n for n, _ in history] == list(range(80)) and history[-1][1] > 0


def test_worker_seeds_come_from_the_study_seed_and_index():
    seeds = {worker_seed(42, index) for index in range(50)}
    assert len(seeds) == 50 and worker_seed(42, 0) == 42 and worker_seed(42, 3) == worker_seed(42, 3)
    assert all(a != b for a, b in itertools.combinations(sorted(seeds), 2))


def test_ray_outside_the_tested_versions_is_refused():
    check_ray_version("2.60.0")
    with pytest.raises(ConfigError, match="Ray 2.61.1 is installed"):
        check_ray_version("2.61.1")
    with pytest.raises(ConfigError, match="Ray 2.9.3"):
        check_ray_version("2.9.3")


def _tpe_samples(sampler, trials: int = 30) -> list[dict]:
    """The packaged digits space sampled by one process, told a score of each candidate."""
    space = SearchSpace.from_toml(SPACE_INPUTS["digits"], "digits")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for _ in range(trials):
        trial = study.ask()
        genotype = space.sample(trial)
        size = len(genotype.to_json())
        trial.set_constraint("energy", float(size % 7 - 3))  # some candidates over a budget
        if size % 5 == 0:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, [(size % 101) / 100, float(size % 53)])
    return [trial.params for trial in study.trials]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # group=True
def test_a_study_sampled_alone_draws_the_same_candidates_as_optunas_grouped_tpe():
    # Alone, make_sampler drops the constant liar and keeps the parameter groups between
    # trials; neither may change a sample. Past the 8 start-up trials TPE is at work.
    alone = _tpe_samples(make_sampler("tpe", 5, 2, concurrent=False))
    concurrent = _tpe_samples(make_sampler("tpe", 5, 2, concurrent=True))
    optunas = _tpe_samples(optuna.samplers.TPESampler(seed=5, multivariate=True, group=True, n_startup_trials=8,
                                                      constant_liar=False))
    assert isinstance(make_sampler("tpe", 5, 2, concurrent=False), GroupedTPESampler)
    assert alone == concurrent == optunas
    assert len({json.dumps(params, sort_keys=True) for params in alone[8:]}) > 15


def test_parameter_groups_refine_as_optunas_do():
    dist = optuna.distributions.CategoricalDistribution((1, 2))
    groups = []
    for names in (["a", "b", "c"], ["a", "b", "d"], ["a", "e"], ["a", "b", "c"]):
        groups = refine_groups(groups, {name: dist for name in names})
    assert [sorted(group) for group in groups] == [["a"], ["b"], ["c"], ["d"], ["e"]]
