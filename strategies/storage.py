"""Where a study's trials live: a journal file in runs/<study>/, or a database URL.

- No URL: ``runs/<study>/study.journal``, Optuna's JournalStorage on a file. Its appends are
  serialised by a lock file, so several worker processes on one machine (``--workers K``)
  can share it safely, unlike SQLite under contention. A study created before the journal
  existed (``study.db``) keeps its SQLite file.
- A URL (``postgresql://...``, ``mysql+pymysql://...``): Optuna's RDBStorage with a
  heartbeat, for workers on many machines (``optinas worker``). A worker that dies stops
  beating; the next worker to start a trial fails the stale one and retries it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

__all__ = ["HEARTBEAT_S", "GRACE_S", "open_storage", "describe", "is_database_url"]

# Seconds between a running trial's heartbeats, and of silence after which it is stale (four
# missed beats). OPTINAS_HEARTBEAT_S scales both, e.g. for tests that kill a worker.
HEARTBEAT_S = int(os.environ.get("OPTINAS_HEARTBEAT_S", "10"))
GRACE_S = 4 * HEARTBEAT_S
_LOCK_GRACE_S = 30  # a journal lock older than this was left by a killed process


def is_database_url(url: str | None) -> bool:
    return bool(url) and "://" in str(url)


def open_storage(run_dir: Path, url: str | None = None,
                 on_stale: Callable | None = None):
    """The storage of the study in ``run_dir``, or at ``url`` when one is given.

    ``on_stale(study, frozen_trial)`` is called for each trial the heartbeat fails (database
    storages only); the driver uses it to retry the trial.
    """

    if is_database_url(url):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in use
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=on_stale,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)
    legacy = run_dir / "study.db"
    if legacy.exists():
        return optuna.storages.RDBStorage(f"sqlite:///{legacy.resolve()}")

    path = str((run_dir / "study.journal").resolve())
    return optuna.storages.JournalStorage(
        JournalFileBackend(path, lock_obj=JournalFileOpenLock(path, grace_period=_LOCK_GRACE_S)))


def describe(run_dir: Path, url: str | None = None) -> str:
    """Where the trials are, for messages and config.toml (a URL's password is hidden)."""
    if is_database_url(url):
        import re

        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
    legacy = run_dir / "study.db"
    return str(legacy if legacy.exists() else run_dir / "study.journal")
