"""The Ray Tune backend (``optinas search --backend ray``): the same search, on a Ray cluster.

Optuna still chooses the candidates (``OptunaSearch`` with the study's sampler and a
define-by-run space, ``ray_trainable.SpaceFunction``); ASHA stops weak trials of
single-objective searches from their per-epoch validation accuracy; each trial asks for
``--cpus-per-trial`` CPUs and ``--gpus-per-trial`` GPUs (0.25: four trials share a GPU).

Results land where the Optuna backend puts them: ``RayRecorder`` (``ray_records.py``), a
Tune callback, writes every finished trial into the optinas study (``runs/<study>/``,
``storage.open_storage``) and copies its checkpoint to ``runs/<study>/checkpoints/``; then
``finish.write_outputs`` writes trials.jsonl, best/ and the report. Tune's own experiment lives
in ``runs/<study>/ray/<name>/``: rerunning the same command restores it
(``Tuner.restore(resume_errored=True)``), so trials that finished are not trained again and
the study reaches the requested number. ``FailureConfig(max_failures=1)`` retries a trial
whose worker or node died once: a candidate that kills its process (a segfault in a native
kernel, the OOM killer) crashes the retry too, and is then recorded as a failed trial rather
than retried forever. A candidate's own failure is a failed trial, never a Ray error.

Ray is imported only here and only when this backend runs.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import time
from pathlib import Path

from optinas.search_space.errors import ConfigError
from optinas.strategies import fault_hooks
from optinas.strategies.backends.ray.compat import check_ray_version, restored_run_config
from optinas.strategies.backends.ray.records import OptinasSearch, RayRecorder
from optinas.strategies.backends.ray.trainable import INDEX_KEY, PRESET_KEY, SpaceFunction, train_candidate
from optinas.strategies.config import SearchConfig
from optinas.strategies.finish import summarize
from optinas.strategies.progress import SearchProgress
from optinas.strategies.samplers import make_sampler
from optinas.strategies.study import create_study, finished_trials, prepare_run_dir

__all__ = ["run_ray_search", "experiment_dir", "MAX_FAILURES"]

MAX_FAILURES = 1  # retries of a trial whose worker or node died (as study.MAX_CRASHES: two deaths)
_EXPERIMENT = "tune"  # runs/<study>/ray/tune, then tune-2, ... when more trials are requested


def experiment_dir(config: SearchConfig, round_: int = 1) -> Path:
    return (config.run_dir / "ray" / (_EXPERIMENT if round_ == 1 else f"{_EXPERIMENT}-{round_}")).resolve()


def _init_ray(config: SearchConfig) -> bool:
    """Connect to (or start) Ray; False when the caller had already done so."""
    import ray

    if ray.is_initialized():
        return False
    # Snapshot the experiment state every 2 s (default: >= 10 s): a finished trial enters
    # the study only once a snapshot knowing it is on disk (RayRecorder.on_step_end).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # A failed candidate reports no objective values; Tune would call that a user error.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        # "local" starts a private Ray: a bare ray.init() would join whichever cluster
        # `ray start` last left on this machine.
        # Trial processes do not inherit this process's environment: a test's hooks go along.
        hooks = fault_hooks.forwarded_environment()
        ray.init(address=config.address or "local", include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=True,
                 runtime_env={"env_vars": hooks} if hooks else None)
    except ConnectionError as error:
        raise ConfigError(f"--address {config.address!r}: no Ray cluster answered there ({error}); "
                          "start one with `ray start --head` or leave --address out") from None
    return True


def _searcher(config: SearchConfig, space_function):

    objectives = config.objective_list
    metric = [o.name for o in objectives] if len(objectives) > 1 else objectives[0].name
    mode = ["max" if o.maximize else "min" for o in objectives] if len(objectives) > 1 else \
        ("max" if objectives[0].maximize else "min")
    return OptinasSearch(space=space_function, metric=metric, mode=mode,
                         sampler=make_sampler(config.sampler, config.seed, len(objectives)))


def _scheduler(config: SearchConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if not config.prunes:
        return FIFOScheduler()
    # time_attr "epoch": rungs at 1, 3, 9, ... epochs (reduction factor 3); a trial that
    # reaches max_t has finished its training anyway.
    return ASHAScheduler(time_attr="epoch", metric="accuracy", mode="max", max_t=config.epochs,
                         grace_period=1, reduction_factor=3)


def _trial_dirname(trial) -> str:
    """runs/<study>/ray/<round>/trial-<id>: Tune's default name lists every parameter."""
    return f"trial-{trial.trial_id}"


def _trainable(config: SearchConfig):
    from ray import tune

    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_candidate, search=config, cwd=os.getcwd()), resources)


def _run_round(config: SearchConfig, round_: int, samples: int, space_function, recorder) -> None:
    """Run (or restore and finish) one Tune experiment of ``samples`` trials."""
    from ray import tune

    path = experiment_dir(config, round_)
    if path.exists():
        _drop_torn_snapshots(path)
    if not tune.Tuner.can_restore(str(path)):
        from ray.tune import FailureConfig, RunConfig

        run_config = RunConfig(name=path.name, storage_path=str(path.parent), callbacks=[recorder], verbose=0,
                               failure_config=FailureConfig(max_failures=MAX_FAILURES))
        tuner = tune.Tuner(
            _trainable(config), run_config=run_config,
            tune_config=tune.TuneConfig(search_alg=_searcher(config, space_function),
                                        scheduler=_scheduler(config), num_samples=samples,
                                        reuse_actors=True, trial_dirname_creator=_trial_dirname))
    else:
        from optinas.strategies.backends.ray.trainable import SpaceFunction

        SpaceFunction.resume_after(*_used_by_trials(path))
        tuner = tune.Tuner.restore(str(path), trainable=_trainable(config), resume_errored=True)
        # A restored Tuner brings back the callback pickled with it, an empty stub
        # (RayRecorder.__getstate__); this run's recorder holds the open study.
        restored_run_config(tuner).callbacks = [recorder]
    recorder.experiment = path
    grid = tuner.fit()
    recorder.reconcile(grid)


def _drop_torn_snapshots(path: Path) -> None:
    """Remove snapshot files a killed driver left half-copied, so Tune restores an older one.

    Tune copies its snapshot into runs/<study>/ray/ in the background; a driver killed
    mid-copy leaves a truncated file, and Tune restores from the newest file of each kind.
    """

    def readable(file: Path) -> bool:
        data = file.read_bytes()
        try:
            json.loads(data)  # experiment_state-*.json
            return True
        except ValueError:
            pass
        try:
            pickle.loads(data)  # search_gen_state-*.json and searcher-state-*.pkl are pickles
            return True
        except Exception:  # any snapshot that neither format reads is torn
            return False

    for pattern in ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl"):
        for file in path.glob(pattern):
            if not readable(file):
                logging.getLogger("optinas").warning("dropping torn Ray snapshot %s", file)
                file.unlink()


def _auto_address() -> str:
    """What ``ray.init(address="auto")`` joins, as its docstring says: RAY_ADDRESS, else the
    cluster the last ``ray start`` on this machine recorded (checked before anything is written:
    ``ray.init`` itself fails only after runs/STUDY/ exists)."""
    found = os.environ.get("RAY_ADDRESS", "").strip()
    if not found:
        record = Path(os.environ.get("RAY_TMPDIR") or "/tmp") / "ray" / "ray_current_cluster"
        found = record.read_text().strip() if record.is_file() else ""
    if not found:
        raise ConfigError("--address auto: no Ray cluster found (RAY_ADDRESS is unset and no `ray start` "
                          "cluster is recorded on this machine); start one with `ray start --head`, or "
                          "leave --address out to start a local Ray")
    return found


def check_address(address: str | None) -> None:
    """Refuse a malformed or silent ``--address`` at once (``ray.init`` retries for minutes)."""
    if address is None:
        return
    if address == "auto":
        address = _auto_address()
    address = address.removeprefix("ray://")  # Ray Client: HOST:PORT of the head's client server

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address must be auto or HOST:PORT (the head's GCS port), got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        raise ConfigError(f"--address {address}: no Ray head answers there ({error.strerror or error}); "
                          "start one with `ray start --head --port PORT`, or leave --address out "
                          "to start a local Ray") from None


def _used_by_trials(path: Path) -> tuple[list[int], list[str]]:
    """The trial indices and presets that the trials of an experiment were given."""

    indices, presets = [], []
    for params in path.glob("trial-*/params.json"):
        try:
            values = json.loads(params.read_text())
        except (OSError, ValueError):
            continue  # a file the killed driver left half-written
        indices.append(int(values.get(INDEX_KEY, -1)))
        if values.get(PRESET_KEY):
            presets.append(values[PRESET_KEY])
    return indices, presets


def _start_study(config: SearchConfig, presets):
    """Validate, then create or resume the optinas study (as ``optuna_driver.start_study``).

    Unlike the Optuna backend, no trial of this study is ever RUNNING in its storage (a
    Ray trial is written once it has finished), so there is nothing to recover here, and
    the presets go to the searcher (``SpaceFunction``) rather than the study's queue.
    """

    if config.storage is not None:
        raise ConfigError("--storage is for `optinas worker` with the optuna backend; with --backend ray "
                          "the study lives in runs/STUDY/ and Ray spreads the trials over the cluster")
    if config.workers != 1:
        raise ConfigError(f"--workers {config.workers} is for the optuna backend; with --backend ray use "
                          "--cpus-per-trial and --gpus-per-trial to pack trials onto the cluster")
    check_address(config.address)
    check_ray_version()  # before anything is written: the private attributes in compat.py
    return prepare_run_dir(config, presets), create_study(config)


def run_ray_search(config: SearchConfig, show_progress: bool = True, presets=()):
    """Run (or restore) the search on Ray until the study holds ``config.trials`` trials.

    Args:
        config: The search; ``config.address`` picks the cluster (None starts a local Ray).
        show_progress: One line per finished trial and a progress bar.
        presets: Preset names evaluated as the first trials of a fresh study.

    Returns:
        The same ``SearchSummary`` as ``optuna_driver.run_search``.
    """
    started = time.perf_counter()
    context, study = _start_study(config, presets)
    started_ray = _init_ray(config)
    try:
        return _run_rounds(config, context, study, presets, show_progress, started)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _run_rounds(config: SearchConfig, context, study, presets, show_progress: bool, started: float):
    """Restore and finish each existing Tune experiment, then add one for missing trials.

    Round 1 is the experiment of the requested trials; a later command asking for more
    trials (a larger ``--trials``) adds round 2, 3, ... under runs/<study>/ray/tune-N.
    """
    from ray import tune

    with SearchProgress(config, already=len(finished_trials(study)), enabled=show_progress) as progress:
        recorder = RayRecorder(config, study, progress)
        round_ = 1
        while True:
            path = experiment_dir(config, round_)
            before = len(finished_trials(study))
            if not tune.Tuner.can_restore(str(path)):
                if before >= config.trials:
                    break
                space_function = SpaceFunction(context.space, presets if round_ == 1 else (),
                                               recorder.next_index())
                _run_round(config, round_, config.trials - before, space_function, recorder)
                if len(finished_trials(study)) == before:
                    break  # nothing finished (every trial errored out in Ray): do not loop
            else:
                _run_round(config, round_, 0, None, recorder)
            round_ += 1
    return summarize(config, study, started)
