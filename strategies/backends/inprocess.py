"""The default backend: the worker loop in this process, or ``--workers K`` processes beside it."""

from __future__ import annotations

import logging
import time

from optinas.strategies.backends.processes import run_worker_processes
from optinas.strategies.backends.worker_loop import run_worker
from optinas.strategies.config import SearchConfig
from optinas.strategies.finish import SearchSummary, summarize
from optinas.strategies.progress import SearchProgress
from optinas.strategies.results.records import append_trials, write_trials
from optinas.strategies.study import finished_trials, start_study
from optinas.strategies.trial import warm_up_kernels

__all__ = ["run_local_search", "live_updates"]


def run_local_search(config: SearchConfig, show_progress: bool = True, presets=()) -> SearchSummary:
    """Run (or resume) the search in this process, or in ``config.workers`` worker processes."""
    started = time.perf_counter()
    context, study, retried = start_study(config, presets)
    logging.getLogger("optinas").info("resumed %s (%d interrupted trials retried)", config.study, retried)
    with SearchProgress(config, already=len(finished_trials(study)), enabled=show_progress) as progress:
        progress.note(f"search space: {context.space_label}")
        if retried:
            progress.note(f"resuming: {retried} interrupted trial(s) will be retried")
        if config.workers == 1:
            warm_up_kernels(context)
            run_worker(study, context, config.trials, on_trial=live_updates(config, progress, study))
        else:
            run_worker_processes(config, study, progress)
    return summarize(config, study, started)


def live_updates(config: SearchConfig, progress, study=None):
    """The callback of an in-process worker: a progress line and one trials.jsonl row per trial.

    trials.jsonl is rewritten from ``study`` once here (a resumed search's file then holds
    every earlier trial), then grows by one appended row per finished trial, so the
    bookkeeping costs the same at trial 10,000 as at trial 1; ``finish.write_outputs``
    rewrites it once more at the end.
    """
    if study is not None:
        write_trials(config.run_dir, study)

    def on_trial(study, frozen) -> None:
        progress.trial_done(frozen)
        append_trials(config.run_dir, [frozen])
    return on_trial
