"""``--workers K``: K worker processes on one study, watched by the search process.

Each worker is a fresh (spawned) Python process running ``worker.run_worker`` against the
study's storage, with its own sampler seed so that the workers do not propose the same
candidates. Small trials then share a machine (or a GPU) instead of queueing, and a worker
that dies (a native crash in a kernel, the OOM killer) costs only its current trial: the
parent fails and re-queues that trial and starts a replacement worker. A candidate that kills
a second worker is recorded as failed instead of queued again (``study.retry_trial``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import socket
import sys
import time

from optinas.strategies.backends.worker_loop import run_worker
from optinas.strategies.results.records import append_trials, write_trials
from optinas.strategies.samplers import make_sampler
from optinas.strategies.study import finished_trials, make_pruner, open_study, prepare, recover_interrupted
from optinas.strategies.trial import warm_up_kernels

__all__ = ["run_worker_processes", "worker_seed"]

_POLL_S = 0.5
_SEED_STRIDE = 1_000_003  # worker i samples with seed + i * stride


def worker_seed(seed: int, index: int) -> int:
    """The sampler seed of worker ``index`` of a study seeded ``seed`` (worker 0: the seed itself)."""
    return seed + index * _SEED_STRIDE


def _exit(code: int) -> str:
    """``exit code 1``, or ``killed by SIGABRT`` for a worker a signal ended."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the search process dies, even by kill -9,
    so that a rerun never races orphaned workers of the old one."""

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _worker_main(config, index: int, threads: int) -> None:
    """Entry point of one worker process (importable, so that ``spawn`` can start it)."""
    _die_with_parent()

    context = prepare(config, threads=threads)
    warm_up_kernels(context)  # once per worker: each process compiles its own kernels
    sampler = make_sampler(config.sampler, worker_seed(config.seed, index), len(config.objectives))
    study = open_study(config.run_dir, config.study, sampler=sampler, url=config.storage,
                       pruner=make_pruner(config))
    run_worker(study, context, config.trials)


def run_worker_processes(config, study, progress, max_restarts: int | None = None) -> None:
    """Run ``config.workers`` worker processes until the study is full; report each trial.

    Args:
        config: The search's ``SearchConfig``.
        study: The study, opened in this process (to watch it and recover lost trials).
        progress: ``SearchProgress``; one line per counted trial as workers finish them.
        max_restarts: Replacement workers allowed in all (default: twice the workers), so a
            candidate that kills every process that trains it cannot loop forever.
    """

    context = multiprocessing.get_context("spawn")  # CUDA and fork do not mix
    threads = max(1, config.cpu_threads // config.workers)
    restarts_left = 2 * config.workers if max_restarts is None else max_restarts
    host = socket.gethostname()
    reported = {trial.number for trial in finished_trials(study)}
    write_trials(config.run_dir, study)  # once; then one appended row per finished trial

    def start(index: int):
        process = context.Process(target=_worker_main, args=(config, index, threads),
                                  name=f"optinas-worker-{index}", daemon=True)
        process.start()
        return process

    workers = {index: start(index) for index in range(config.workers)}
    next_index = config.workers
    try:
        while workers:
            time.sleep(_POLL_S)
            for index, process in list(workers.items()):
                if process.is_alive():
                    continue
                del workers[index]
                if process.exitcode != 0:
                    # Its trial is queued again, or, when its candidate had already killed a
                    # worker before, recorded as failed (study.retry_trial counts the crashes).
                    lost = recover_interrupted(study, worker=f"{host}:{process.pid}")
                    progress.note(f"worker {index} stopped ({_exit(process.exitcode)}); "
                                  f"{lost} trial(s) interrupted")
                    if len(finished_trials(study)) < config.trials and restarts_left > 0:
                        restarts_left -= 1
                        workers[next_index] = start(next_index)
                        next_index += 1
            new = [trial for trial in finished_trials(study) if trial.number not in reported]
            for trial in sorted(new, key=lambda trial: trial.number):
                progress.trial_done(trial)
                reported.add(trial.number)
            append_trials(config.run_dir, sorted(new, key=lambda trial: trial.number))  # one row each
        missing = config.trials - len(finished_trials(study))
        if missing > 0:
            progress.note(f"workers kept dying; {missing} trial(s) short of {config.trials} "
                          "(rerun the command to continue)")
    finally:
        for process in workers.values():  # Ctrl-C or an error here: leave no orphans
            process.terminate()
        for process in workers.values():
            process.join(timeout=10)
        for process in workers.values():  # stopped by us, not by their candidates
            recover_interrupted(study, worker=f"{host}:{process.pid}", crashed=False)
